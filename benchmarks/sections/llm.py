"""KerasHub LLMs: `generate()` speed after pruning (`benchmarks/llm_generate.py`),
`prune_width`'s memory at 1B parameters (`benchmarks/llm_memory.py`), and
pruning during distillation on real text (`benchmarks/llm_distill.py`)."""

from benchmarks.sections import shared

TITLE = "## 11. KerasHub LLMs: `generate()` speed, memory, and pruning during distillation"


def _generate_lines():
    found = shared.by_backend("llm_generate")
    if not found:
        return ["### `generate()` tokens per second", "",
                "Not measured: run `python -m benchmarks.llm_generate`.", ""]
    lines = ["### `generate()` tokens per second", ""]
    for backend, r in found.items():
        goal = r["goal_speedup"]
        lines += [shared.prov_line(r["provenance"]), "",
                  f"Backend {backend}. Random-init KerasHub `CausalLM`s of about 100M "
                  "parameters (configs below), greedy `generate()` from a "
                  f"{r['prompt']}-token prompt to {r['length']} tokens, batch 1 and 8; the "
                  "compile left out, every variant timed in turn, median of "
                  f"{r['repeats']} rounds. Tokens/s counts new tokens of all sequences; "
                  "speed-up is against the dense model, from wall time (CPU time beside "
                  f"it). Goal: at least {goal}x at about half the block parameters.", "",
                  "| family | model | parameters | block parameters | b1 tok/s | b1 speed-up "
                  "(wall / CPU) | b8 tok/s | b8 speed-up (wall / CPU) | goal |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for family, f in r["families"].items():
            dense = f["rows"]["dense"]
            for name, row in f["rows"].items():
                cells, ok = [], True
                for b in ("b1", "b8"):
                    wall = row[b]["tokens_per_s_wall"] / dense[b]["tokens_per_s_wall"]
                    cpu = row[b]["tokens_per_s_cpu"] / dense[b]["tokens_per_s_cpu"]
                    ok = ok and wall >= goal
                    cells += [f"{row[b]['tokens_per_s_wall']:.1f}", f"{wall:.2f}x / {cpu:.2f}x"]
                share = row["block_parameters"] / dense["block_parameters"]
                verdict = "" if name == "dense" else shared.met(ok)
                lines.append(f"| {family} | {name} | {row['parameters'] / 1e6:.1f}M | "
                             f"{row['block_parameters'] / 1e6:.1f}M ({share:.0%}) | "
                             + " | ".join(cells) + f" | {verdict} |")
        lines += ["", "Configs: " + "; ".join(
            f"{family}: " + ", ".join(f"{k}={v}" for k, v in f["config"].items())
            for family, f in r["families"].items()) + ".", ""]
    return lines


def _memory_lines():
    found = shared.load("llm_memory.json")
    if not found:
        return ["### `prune_width` memory at about 1B parameters", "",
                "Not measured: run `python -m benchmarks.llm_memory`.", ""]
    r = found[0]
    lines = ["### `prune_width` memory", "", shared.prov_line(r["provenance"]), "",
             r["recipe"], "",
             "| parameters | model bytes | baseline RSS | peak RSS | peak / model bytes "
             "| over baseline / model bytes | time (s) | goal |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["rows"]:
        lines.append(
            f"| {row['parameters'] / 1e9:.2f}B | {row['model_bytes'] / 2**30:.2f} GiB | "
            f"{row['baseline_rss'] / 2**30:.2f} GiB | {row['peak_rss'] / 2**30:.2f} GiB | "
            f"{row['peak_rss'] / row['model_bytes']:.2f}x | "
            f"{(row['peak_rss'] - row['baseline_rss']) / row['model_bytes']:.2f}x | "
            f"{row['seconds']:.0f} | {shared.met(row['peak_rss'] <= r['goal'] * row['model_bytes'])} |")
    mask = r["rows"][-1]["mask_bytes_per_weight"]
    lines += ["", f"Masks that `prune_low_magnitude` adds: {mask:g} bytes per masked weight "
              f"(goal: at most 1): {shared.met(mask <= 1)}."]
    return lines + [""]


def _goals(rows):
    """`[(goal, met)]` of the distillation table, as fixed before the
    held-out split was read."""
    bpb = {r["arm"]: r["mean_bits_per_byte"] for r in rows}
    pruned = [a for a in bpb if a not in ("dense teacher", "from scratch")]
    best = min(pruned, key=bpb.get)
    return [
        (f"the best arm ({best}) within 10% of the teacher's bits per byte",
         bpb[best] <= 1.10 * bpb["dense teacher"]),
        ("every pruned arm better than from scratch",
         all(bpb[a] < bpb["from scratch"] for a in pruned)),
        ("progressive at least as good as one-shot width",
         bpb["progressive width"] <= bpb["one-shot width"]),
    ]


def _distill_lines():
    found = shared.load("llm_distill.json")
    title = "### Half the blocks of a small Llama 3, seven ways, on real text"
    if not found:
        return [title, "", "Not measured: run `python -m benchmarks.llm_distill`.", ""]
    r = found[0]
    seeds = r["seeds"]
    lines = [title, "", shared.prov_line(r["provenance"]), "",
             "Corpus: CPython 3.11.7's standard library source (`data/pystdlib`, "
             "pinned by SHA-256), byte tokens; held-out modules, "
             f"{r['eval_windows']} windows of {r['length']} bytes, read once per arm after "
             "its last step. Teacher: `Llama3CausalLM`, "
             + ", ".join(f"{k}={v}" for k, v in r["teacher"].items())
             + f", {r['teacher_steps']} steps of batch {r['batch']}. Every arm: "
             f"{r['steps']} steps of `keras.distillation.Distiller` on the same windows "
             f"per seed (seeds {seeds}); see `benchmarks/llm_distill.py` for each arm. "
             "Bits per byte: lower is better. CPU seconds: `time.process_time()`, all "
             "threads; generate: greedy, batch 1, 64 new tokens, wall time.", "",
             "| arm | class | parameters | blocks vs teacher | bits/byte "
             + " | ".join(f"seed {s}" for s in seeds)
             + " | mean | prune + recover CPU s | generate tok/s |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in seeds)
             + " | --- | --- | --- |"]
    for row in r["rows"]:
        c = row["cells"]
        lines.append(
            f"| {row['arm']} | {c[0]['class']} | {c[0]['parameters'] / 1e6:.2f}M | "
            f"{c[0]['block_fraction']:.0%} | "
            + " | ".join(f"{x['bits_per_byte']:.4f}" for x in c)
            + f" | {row['mean_bits_per_byte']:.4f} | "
            f"{sum(x['prune_cpu_s'] + x['recover_cpu_s'] for x in c) / len(c):.0f} | "
            f"{sum(x['generate_tokens_per_s'] for x in c) / len(c):.0f} |")
    lines += ["", "Goals (fixed before the held-out split was read):", ""]
    lines += [f"- {goal}: {shared.met(ok)}" for goal, ok in _goals(r["rows"])]
    return lines + [""]


def llm_section():
    return [TITLE, ""] + _generate_lines() + _memory_lines() + _distill_lines()
