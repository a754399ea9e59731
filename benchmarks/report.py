"""Generates BENCHMARKS.md (and the accuracy plots) from benchmarks/results.

Never edit BENCHMARKS.md by hand: rerun `make bench-report`.

    python -m benchmarks.report [--grid=full|quick]
"""

import collections
import glob
import json
import os

from absl import app
from absl import flags
import numpy as np

from benchmarks import common
from benchmarks import goals
from keras_progprune_cli import BACKENDS

FLAGS = flags.FLAGS
flags.DEFINE_enum("grid", "full", ["full", "quick"], "Which grid's cells to report.")
flags.DEFINE_string("out", os.path.join(os.path.dirname(common.RESULTS_DIR), "..",
                                        "BENCHMARKS.md"), "Markdown file to write.")

ORDER = ["dense", "progressive_global", "progressive_layer", "progressive_2of4", "lottery",
         "snip", "grasp", "synflow", "random"]
CHANNEL_METHODS = ("progressive_channel", "scratch_channel",
                   "progressive_channel_shrinking")  # their own sections
GRID_COMMANDS = {"full": "make bench  (python -m benchmarks.grid --grid=full)",
                 "quick": "make bench-quick  (python -m benchmarks.grid --grid=quick)"}


def _load(pattern):
    out = []
    for path in sorted(glob.glob(os.path.join(common.RESULTS_DIR, pattern))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def _prov_line(prov):
    v = prov["versions"]
    backend = v.get("backend")
    extra = "".join(f", {name} {v[key]}" for name, key in (("JAX", "jax"), ("PyTorch", "torch"))
                    if v.get(key) and backend == key)
    return (f"Command: `{prov['command']}`; date {prov['date']}; CPU {prov['cpu']} "
            f"({prov['cores']} cores); GPU {prov['gpu'] or 'none'}; "
            + (f"backend {backend}; " if backend else "")
            + f"TensorFlow {v['tensorflow']}, Keras {v['keras']}{extra}, NumPy {v['numpy']}, "
            f"Python {v['python']}; git {prov['git']}.")


def _cells(grid):
    cells = _load(os.path.join("grid" if grid == "full" else "grid_quick", "*.json"))
    cells = [c for c in cells if "method" in c]  # not the saved architectures
    table = collections.defaultdict(list)
    for c in cells:
        table[(c["model"], c["method"], c["sparsity"])].append(c)
    return cells, table


def _mean_std(values):
    """(mean, sample std), the std 0 for a single value."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _stats(cells):
    mean, std = _mean_std([c["test_accuracy"] for c in cells])
    return {
        "mean": mean, "std": std,
        "n": len(cells), "steps": float(np.mean([c["steps"] for c in cells])),
        "wall": float(np.mean([c["wall_time_s"] for c in cells])),
    }


def _plot(model, rows, path):
    """Accuracy against the weights left (log axis), all of it on the left
    and the top 3 points below dense on the right, where the methods differ.
    The 50% points (the N:M comparison) are left out: the table has them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    dense = rows.get(("dense", 0.0))
    for ax in axes:
        for method in ORDER[1:]:
            points = sorted((s, st) for (m, s), st in rows.items() if m == method and s >= 0.9)
            if not points:
                continue
            ax.errorbar([(1 - s) * 100 for s, _ in points],
                        [st["mean"] * 100 for _, st in points],
                        yerr=[st["std"] * 100 for _, st in points], marker="o", capsize=3,
                        label=method)
        if dense:
            ax.axhline(dense["mean"] * 100, color="k", linestyle="--", label="dense")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xticks([10, 5, 2, 1])
        ax.set_xticklabels(["10", "5", "2", "1"])
        ax.set_xlabel("weights left (%), log scale")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final-epoch test accuracy (%)")
    axes[0].set_title(f"{model} on MNIST")
    if dense:
        top = dense["mean"] * 100
        axes[1].set_ylim(top - 3, top + 0.5)
    axes[1].set_title("zoom: within 3 points of dense")
    axes[0].legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def grid_section(grid):
    cells, table = _cells(grid)
    if not cells:
        return [f"## 1. Accuracy against sparsity\n\nNo grid results yet: run `{GRID_COMMANDS[grid]}`.\n"]
    lines = ["## 1. Accuracy against sparsity (real MNIST)", ""]
    models = sorted({c["model"] for c in cells}, key=lambda m: (m != "lenet_300_100", m))
    verdicts = []
    for model in models:
        recipe = next(c["recipe"] for c in cells if c["model"] == model
                      and c["method"] == "dense")
        rows = {(m, s): _stats(v) for (mm, m, s), v in table.items() if mm == model}
        own = [c for c in cells if c["model"] == model and c["method"] not in CHANNEL_METHODS]
        latest = max(own, key=lambda c: c["provenance"]["date"])
        commands = sorted({c["provenance"]["command"] for c in own})
        lines += [f"### {model}", "",
                  "Commands: " + "; ".join(f"`{c}`" for c in commands) + ". Latest cell: "
                  + _prov_line(latest["provenance"]).split("; ", 1)[1], "",
                  "Recipe (every method, every run; lottery: every round): "
                  + ", ".join(f"{k}={v}" for k, v in sorted(recipe.items())
                              if not (k == "train_examples" and not v)) + "."
                  + _recipe_exceptions(own, recipe), "",
                  "| method | sparsity | test accuracy (final epoch), mean ± std | seeds | "
                  "total training steps | wall time (s) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for method in ORDER:
            for (m, s), st in sorted(rows.items(), key=lambda kv: kv[0][1]):
                if m != method:
                    continue
                lines.append(f"| {m} | {s:.0%} | {st['mean']:.2%} ± {st['std']:.2%} | "
                             f"{st['n']} | {st['steps']:,.0f} | {st['wall']:.0f} |")
        plot = os.path.join(common.RESULTS_DIR, f"accuracy_{model}{'' if grid == 'full' else '_quick'}.png")
        _plot(model, rows, plot)
        rel = os.path.relpath(plot, os.path.dirname(os.path.abspath(FLAGS.out)))
        lines += ["", f"![{model} accuracy against sparsity]({rel})", ""]
        verdicts += _verdicts(model, rows)
    lines += ["### Targets", "", "| target | measured | met? |", "| --- | --- | --- |"]
    lines += verdicts
    lines.append("")
    if grid == "full":
        lines += tune_lines()
    return lines


def tune_lines():
    """Progressive's settings tried on the validation split (`benchmarks/tune.py`)."""
    cells = _load(os.path.join("tune", "*.json"))
    if not cells:
        return []
    table = collections.defaultdict(list)
    for c in cells:
        table[(c["model"], c["sparsity"], c["variant"])].append(c)
    lines = ["### Progressive's settings, tried on the validation split", "",
             "`benchmarks/tune.py` changes one setting of progressive_global at a time "
             "and records only the final epoch's validation accuracy (the last 5,000 "
             "training images); the test set is never evaluated there. `base` is the "
             "grid's progressive_global cell before this study (plain cosine learning "
             "rate); `hold_lr` won and is now progressive's default (see the notes). "
             "Variants: `end_f`: the target reached at fraction f of "
             "training (base: 2/3); `erk`: per-layer sparsities from the "
             "Erdos-Renyi-Kernel distribution (RigL) instead of one global threshold; "
             "`output_half`: the output layer pruned at half the rate (the Lottery "
             "Ticket paper), one global threshold for the rest; `hold_lr`: the "
             "learning rate held until the target is reached, then a cosine decay "
             "over the rest; `every_25`: masks updated every 25 steps instead of 100; "
             "`double_epochs`: twice the recipe's epochs.", ""]
    commands = sorted({c["provenance"]["command"] for c in cells})
    latest = max(cells, key=lambda c: c["provenance"]["date"])
    lines += ["Commands: " + "; ".join(f"`{c}`" for c in commands) + ". Latest cell: "
              + _prov_line(latest["provenance"]).split("; ", 1)[1], "",
              "| model | sparsity | variant | validation accuracy (final epoch), mean ± std | seeds | "
              "last layer's sparsity |", "| --- | --- | --- | --- | --- | --- |"]
    for (model, s, variant), group in sorted(table.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2] != "base", kv[0][2])):
        mean, std = _mean_std([c["final_val_accuracy"] for c in group])
        last = np.mean([list(c["layer_sparsity"].values())[-1] for c in group])
        lines.append(f"| {model} | {s:.0%} | {variant} | {mean:.2%} ± {std:.2%} | "
                     f"{len(group)} | {last:.0%} |")
    return lines + [""]


def _recipe_exceptions(cells, recipe):
    """' Except: ...' for the cells whose recipe differs from `recipe`."""
    def plain(r):  # train_examples=0 (all) is what older cells leave out
        return {k: v for k, v in r.items() if not (k == "train_examples" and not v)}

    recipe = plain(recipe)
    changed = collections.defaultdict(lambda: collections.defaultdict(set))
    for c in cells:
        for k, v in sorted(plain(c["recipe"]).items()):
            if recipe.get(k) != v:
                changed[(k, v)][c["method"]].add(c["sparsity"])
    if not changed:
        return ""
    return " Except: " + "; ".join(
        f"{k}={v} for " + ", ".join(
            f"{m} ({', '.join(f'{s:.0%}' for s in sorted(sp))})" for m, sp in sorted(by.items()))
        for (k, v), by in sorted(changed.items())) + "."


def _verdicts(model, rows):
    out = []
    sparsities = sorted({s for (m, s) in rows if m != "dense"})
    for s in sparsities:
        for variant in ("progressive_global", "progressive_layer"):
            mine = rows.get((variant, s))
            if not mine:
                continue
            baselines = {m: st for (m, ss), st in rows.items()
                         if ss == s and m not in ("dense", "progressive_global",
                                                  "progressive_layer", "progressive_2of4")
                         + CHANNEL_METHODS}
            if not baselines:
                continue  # e.g. the 50% cells, which compare 2:4 only
            worse = [m for m, st in baselines.items() if mine["mean"] + mine["std"] < st["mean"]]
            out.append(f"| {model} {s:.0%}: {variant} at least as accurate as every "
                       f"baseline (within one std) | {mine['mean']:.2%} ± {mine['std']:.2%}"
                       f"{'; beaten by ' + ', '.join(worse) if worse else ''} | "
                       f"{'no' if worse else 'yes'} |")
        if (model, s) in goals.ACCURACY_TARGETS:
            need, ref = goals.ACCURACY_TARGETS[(model, s)]
            best = rows.get(("progressive_global", s))
            if best:
                out.append(f"| {model} {s:.0%}: progressive >= {need:.1%} ({ref}) | "
                           f"{best['mean']:.2%} | {'yes' if best['mean'] >= need else 'no'} |")
        nm, unstructured = rows.get(("progressive_2of4", s)), rows.get(("progressive_global", s))
        if nm and unstructured:
            dense_row = rows.get(("dense", 0.0))
            out.append(f"| {model} 2:4 against 50% unstructured (no target; dense "
                       f"{dense_row['mean']:.2%}) | " if dense_row else
                       f"| {model} 2:4 against 50% unstructured (no target) | ")
            out[-1] += (f"{nm['mean']:.2%} ± {nm['std']:.2%} vs {unstructured['mean']:.2%} ± "
                        f"{unstructured['std']:.2%} | - |")
        lot, prog = rows.get(("lottery", s)), rows.get(("progressive_global", s))
        if s == 0.98 and lot and prog:
            ratio = prog["steps"] / lot["steps"]
            out.append(f"| {model} 98%: progressive costs <= 1/{1 / goals.LOTTERY_STEP_RATIO:.0f} "
                       f"of lottery's steps | "
                       f"{prog['steps']:,.0f} vs {lot['steps']:,.0f} steps (1/{1 / ratio:.1f}) | "
                       f"{'yes' if ratio <= goals.LOTTERY_STEP_RATIO else 'no'} |")
    dense = rows.get(("dense", 0.0))
    if dense:
        need = goals.DENSE_TARGETS.get(model)
        if need:
            out.append(f"| {model}: dense recipe reaches {need:.1%} | {dense['mean']:.2%} | "
                       f"{'yes' if dense['mean'] >= need else 'no'} |")
    return out


def small_files_section():
    found = _load("small_files.json")
    if not found:
        return []
    r = found[0]
    lines = ["## 3. Small files: sizes, LiteRT latency, quantized accuracy", "",
             _prov_line(r["provenance"]), "",
             "Recipes (short, for size; not the grid's): " + "; ".join(
                 f"{m}: " + ", ".join(f"{k}={v}" for k, v in sorted(rc.items()))
                 for m, rc in r["recipes"].items())
             + ". Unstructured rows: global progressive pruning; `2:4`: progressive with "
             "`structure=\"2:4\"`. Sizes in KB; `x` = dense `.keras` (or dense float "
             "`.tflite`) divided by the file. Accuracy: final-epoch MNIST test set.", "",
             "| model | variant | .keras | .keras compressed | SavedModel | .tflite float | "
             ".tflite sparse | .tflite sparse+int8 | .tflite sparse+int8, size | "
             "Keras int8 .keras | acc float | "
             "acc sparse+int8 tflite | acc Keras int8 | LiteRT ms b1/b32: float, sparse, sparse+int8 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    goals_rows = []
    for key, row in r["rows"].items():
        if row["variant"].startswith("ch"):
            continue  # the shrunk rows have their own table
        dense = r["rows"][f"{row['model']}/dense"]["sizes"]
        sz = row["sizes"]

        def kb(name, ref):
            return f"{sz[name] / 1e3:,.0f} ({dense[ref] / sz[name]:.1f}x)"

        lat = row["latency_ms"]

        def ms(name):
            return (f"{lat[name + '_b1']:.3f}/{lat[name + '_b32']:.2f}"
                    + ("" if lat[name + "_xnnpack"] else "*"))
        acc = row["accuracy"]
        lines.append(
            f"| {row['model']} | {row['variant']} | {kb('keras', 'keras')} | "
            f"{kb('keras_compressed', 'keras')} | {kb('saved_model', 'saved_model')} | "
            f"{kb('tflite_float', 'tflite_float')} | {kb('tflite_sparse', 'tflite_float')} | "
            f"{kb('tflite_sparse_int8', 'tflite_float')} | "
            f"{kb('tflite_size_int8', 'tflite_float') if 'tflite_size_int8' in sz else 'n/a'} | "
            f"{kb('keras_int8', 'keras')} | "
            f"{acc['keras_float']:.2%} | {acc['tflite_sparse_int8']:.2%} | "
            f"{acc['keras_int8']:.2%} | {ms('tflite_float')}, {ms('tflite_sparse')}, "
            f"{ms('tflite_sparse_int8')} |")
        if row["variant"] == "95%":
            checks = [
                (".keras compressed <= 1/12 of dense .keras",
                 dense["keras"] / sz["keras_compressed"], 12),
                (".tflite sparse <= 1/10 of dense float", dense["tflite_float"] / sz["tflite_sparse"], 10),
                (".tflite sparse+int8 (optimize_for='size') <= 1/18 of dense float",
                 dense["tflite_float"] / sz.get("tflite_size_int8", sz["tflite_sparse_int8"]), 18),
                ("Keras int8 >= 30x smaller than dense .keras", dense["keras"] / sz["keras_int8"], 30),
            ]
            for text, ratio, need in checks:
                goals_rows.append(f"| {row['model']} 95%: {text} | {ratio:.1f}x | "
                                  f"{'yes' if ratio >= need else 'no'} |")
            for name in ("tflite_sparse_int8", "keras_int8"):
                drop = acc["keras_float"] - acc[name]
                goals_rows.append(f"| {row['model']} 95%: {name} accuracy within 0.5 points of "
                                  f"float | {drop * 100:+.2f} points | "
                                  f"{'yes' if drop <= 0.005 else 'no'} |")
        if row["variant"] == "2:4":
            goals_rows.append(f"| {row['model']} 2:4: pattern holds (weights) | "
                              f"{row['m_by_n_holds']} | see note |")
    lines += ["", "Goals:", "", "| goal | measured | met? |", "| --- | --- | --- |"] + goals_rows
    current = any("tflite_size_int8" in row["sizes"] for row in r["rows"].values())
    files = ("Sparse files are the default `optimize_for=\"latency\"` export (see the next "
             "tables; its int8 weights are dense); `size` = `optimize_for=\"size\"` (sparse "
             "int8 weights, builtin kernels). " if current else
             "**This table was measured before `optimize_for` existed (git "
             f"{r['provenance'].get('git', '?')})**: its sparse columns are today's "
             "`optimize_for=\"size\"` files, whose CSR weights XNNPACK leaves to builtin "
             "kernels (the slow rows; see the encodings table below). Rerun `python -m "
             "benchmarks.small_files` for the default files and the channel-shrunk rows "
             "(not measured yet). ")
    lines += ["", "LiteRT latency: batch 1 / batch 32, median of 200 / 50 `invoke()` calls, "
              "a row's files (and the dense float file) timed side by side in alternating "
              "blocks of 10 calls, "
              "2 threads; `*` = XNNPACK could not prepare the file and LiteRT's builtin "
              "kernels ran it. " + files + "XNNPACK's sparse kernels are disabled on x86 "
              "CPUs with AVX, so on x86 the gain of an unstructured sparse file is size, not "
              "speed. A 2:4 LeNet-5 leaves its first conv (1 input channel) dense: N:M "
              "needs the input axis to be a multiple of 4."]
    return lines + [""] + shrunk_lines(r) + litert_encoding_lines()


def shrunk_lines(r):
    """The channel-shrunk rows, their goals, and the size/latency frontier."""
    shrunk = {k: row for k, row in r["rows"].items() if row["variant"].startswith("ch")}
    if not shrunk:
        return []
    lines = ["### Channel-shrunk models in every format", "",
             "`chX%`: X% of the channels of every layer removed (progressive, "
             "`structure=\"channel\"`, layer scope, same recipe), then `kp.shrink`: a "
             "plain, smaller model. `chX%+90%`: that shrunk model pruned again to 90% of "
             "its weights (global progressive, the same recipe once more): channels first, "
             "then weights. `x` = the dense model's file divided by this one (dense float "
             "`.tflite` for every `.tflite` column); speed-up = dense float `.tflite` "
             "latency / this file's, both timed in the same alternating run. int8 "
             "(latency) = `export_litert(quantize=\"dynamic_int8\")` (the converter's dynamic int8, dense int8 weights); int8 "
             "(size) = the same with `optimize_for=\"size\"` (sparse int8 weights); Keras "
             "int8 = `quantize(\"int8\")` then `kp.save_model`.", "",
             "| model | variant | params | .keras compressed | .tflite float | .tflite "
             "sparse | int8 (latency) | int8 (size) | Keras int8 | acc float / int8 tflite "
             "/ Keras int8 | b1 ms: float, int8 (latency), int8 (size) | b32 ms: float, "
             "int8 (latency), int8 (size) | b32 speed-up of int8 (latency) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    goal_rows = []
    for key, row in list(r["rows"].items()):
        if not (row["variant"] == "dense" or key in shrunk):
            continue
        dense = r["rows"][f"{row['model']}/dense"]
        sz, ds, lat, acc = row["sizes"], dense["sizes"], row["latency_ms"], row["accuracy"]

        def x(name, ref, sz=sz, ds=ds):
            return f"{sz[name] / 1e3:,.1f} ({ds[ref] / sz[name]:.1f}x)"

        def ms(batch, lat=lat):
            return ", ".join(f"{lat[f'{n}_b{batch}']:.3f}" + ("" if lat[f"{n}_xnnpack"] else "*")
                             for n in ("tflite_float", "tflite_sparse_int8", "tflite_size_int8"))
        speedup = lat.get("reference_b32", dense["latency_ms"]["tflite_float_b32"]) / lat["tflite_sparse_int8_b32"]
        lines.append(
            f"| {row['model']} | {row['variant']} | {row.get('parameters', 0):,} | "
            f"{x('keras_compressed', 'keras')} | {x('tflite_float', 'tflite_float')} | "
            f"{x('tflite_sparse', 'tflite_float')} | {x('tflite_sparse_int8', 'tflite_float')} | "
            f"{x('tflite_size_int8', 'tflite_float')} | {x('keras_int8', 'keras')} | "
            f"{acc['keras_float']:.2%} / {acc['tflite_sparse_int8']:.2%} / "
            f"{acc['keras_int8']:.2%} | {ms(1)} | {ms(32)} | {speedup:.2f}x |")
        if "+" in row["variant"]:
            for name, label in (("tflite_sparse_int8", "int8 (latency)"),
                                ("tflite_size_int8", "int8 (size)")):
                smaller = ds["tflite_float"] / sz[name]
                faster = lat.get("reference_b32", dense["latency_ms"]["tflite_float_b32"]) / lat[f"{name}_b32"]
                # Both int8 files hold the same int8 weights (only their
                # encoding differs), so they share one accuracy.
                drop = (dense["accuracy"]["keras_float"] - acc["tflite_sparse_int8"]) * 100
                ok = smaller >= 50 and faster >= 4 and drop <= 0.5
                goal_rows.append(
                    f"| {row['model']} {row['variant']}, {label} | {smaller:.1f}x | "
                    f"{faster:.2f}x | {drop:+.2f} | {_met(ok)} |")
    plot = _frontier_plot(r)
    lines += ["", "Goal (issue 22): channels, then weights, then int8 at least 50x smaller "
              "than the dense float `.tflite` and at least 4x faster at batch 32, within 0.5 "
              "points of dense accuracy. Every candidate is listed (nothing chosen on the "
              "test set). The accuracy here is the short recipe's, not the grid's: under "
              "the grid's recipe it is not measured, so that part of the goal is NOT met "
              "(not measured).", "",
              "| combination | smaller | faster (b32) | points below dense | goal |",
              "| --- | --- | --- | --- | --- |"] + goal_rows + [""]
    if plot:
        lines += [f"![size, latency and accuracy frontier]({plot})", "",
                  "Each point is one file: its size against its batch-32 LiteRT latency, "
                  "labelled with the variant and the Keras float model's test accuracy.", ""]
    return lines


def _frontier_plot(r):
    """Size against batch-32 latency for every model's `.tflite` files."""
    try:
        import matplotlib  # noqa: PLC0415
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    models = sorted({row["model"] for row in r["rows"].values()})
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.8), squeeze=False)
    kinds = (("tflite_float", "float", "o"), ("tflite_sparse_int8", "int8 (latency)", "s"),
             ("tflite_size_int8", "int8 (size)", "^"))
    for ax, model in zip(axes[0], models):
        rows = [row for row in r["rows"].values() if row["model"] == model]
        for name, label, marker in kinds:
            xs = [row["sizes"][name] / 1e3 for row in rows]
            ys = [row["latency_ms"][f"{name}_b32"] for row in rows]
            ax.scatter(xs, ys, marker=marker, label=label)
            if name == "tflite_sparse_int8":
                for row, xv, yv in zip(rows, xs, ys):
                    ax.annotate(f"{row['variant']} {row['accuracy']['keras_float']:.1%}",
                                (xv, yv), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(".tflite size (KB, log)")
        ax.set_ylabel("LiteRT batch-32 latency (ms, log)")
        ax.set_title(f"{model}: size, latency, accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(common.RESULTS_DIR, "small_files_frontier.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.path.relpath(path, os.path.dirname(os.path.dirname(common.RESULTS_DIR)))


def litert_encoding_lines():
    found = _load("litert_encoding.json")
    lines = ["### LiteRT encodings: `optimize_for=\"latency\"` (default) and `\"size\"`", ""]
    if not found:
        return lines + ["Not measured yet: run `python -m benchmarks.litert_encoding`.", ""]
    r = found[0]
    lines += [_prov_line(r["provenance"]), "",
              f"Pruned to {r['sparsity']:.0%} (global progressive, {r['steps']} steps of real "
              "MNIST, for trained-like weights). Every file timed side by side, alternating, "
              f"in one process: LiteRT interpreter (ai-edge-litert), 2 threads, median of "
              f"{r['repeats']} `invoke()` calls; `*` = XNNPACK could not prepare the file and "
              "LiteRT's builtin kernels ran it. `x smaller`: against the dense float file; latency ratios: against the dense float file (int8 rows: "
              "against the dense int8 file). Goals for the default: latency <= 1.1x dense at "
              "batch 1 and 32, and >= 10x smaller at 95%.", "",
              "| model | file | KB | x smaller | batch 1 ms | x dense | batch 32 ms | x dense |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    goals = []
    for model, row in r["rows"].items():
        for variant in ("dense", "latency", "size", "dense_int8", "latency_int8", "size_int8"):
            base = "dense_int8" if variant.endswith("int8") else "dense"
            size = row["bytes"][variant]
            lat = row["latency_ms"]
            b1, b32 = lat[f"{variant}_b1"], lat[f"{variant}_b32"]
            star = "" if row["xnnpack"][variant] else "*"
            lines.append(
                f"| {model} | {variant}{star} | {size / 1e3:,.1f} | "
                f"{row['bytes']['dense'] / size:.1f}x | {b1:.4f} | {b1 / lat[base + '_b1']:.2f}x "
                f"| {b32:.4f} | {b32 / lat[base + '_b32']:.2f}x |")
        lat = row["latency_ms"]
        r1 = lat["latency_b1"] / lat["dense_b1"]
        r32 = lat["latency_b32"] / lat["dense_b32"]
        smaller = row["bytes"]["dense"] / row["bytes"]["latency"]
        goals += [f"| {model}: default latency <= 1.1x dense (b1, b32) | {r1:.2f}x, {r32:.2f}x | "
                  f"{'met' if max(r1, r32) <= 1.1 else 'NOT met'} |",
                  f"| {model}: default >= 10x smaller than dense | {smaller:.1f}x | "
                  f"{'met' if smaller >= 10 else 'NOT met'} |"]
    lines += ["", "| goal | measured | met? |", "| --- | --- | --- |"] + goals + [
        "", "Cause of the slow sparse files (BUILD_NOTES.md): XNNPACK runs the converter's "
        "own encodings (1x4-block FullyConnected weights, CSR convolutions) at dense speed, "
        "but not the plain-CSR FullyConnected weights that the `size` encoding writes behind "
        "a DENSIFY op: those layers fall back to LiteRT's builtin kernels (the `size` rows "
        "time like the builtin kernels on the dense file), and sparse + dynamic int8 can't "
        "be prepared at all. `latency` keeps the converter's encoding and, with int8, dense "
        "int8 weights.", ""]
    return lines


def applications_section():
    rows = _load(os.path.join("applications", "*.json"))
    if not rows:
        return []
    lines = ["## 4. keras.applications, every family", "", _prov_line(rows[0]["provenance"]), "",
             "`python -m benchmarks.applications`: one model per family, `weights=None`, the "
             "smallest input, 10 classes; global PolynomialDecay to 50% -> 2 training steps -> "
             "strip -> `.keras` round trip -> SavedModel `serve`. `ok` = ran and outputs "
             "equal the pruned model's (max abs diff <= 1e-4 of the output scale).", "",
             "| model | input | parameters | pruned fraction | prune | train | strip | "
             ".keras round trip | serve | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    passed = 0
    for r in sorted(rows, key=lambda r: r["model"]):
        checks = [r[k] for k in ("prune", "train", "strip", "keras_round_trip", "serve")]
        passed += all(c == "ok" for c in checks)
        frac = f"{r['pruned_fraction']:.1%}" if "pruned_fraction" in r else "-"
        lines.append(f"| {r['model']} | {r['input']} | {r['parameters']:,} | {frac} | "
                     + " | ".join(c.replace("|", "/") for c in checks)
                     + f" | {r['seconds']:.0f} |")
    lines += ["", f"Goal: every row passes. {passed} of {len(rows)} pass "
              f"({'met' if passed == len(rows) else 'not met'}).", ""]
    return lines


def shrink_section():
    found = _load("shrink.json")
    if not found:
        return []
    r = found[0]
    provs = {}
    for name, m in r["models"].items():
        prov = m.get("provenance", r["provenance"])
        provs.setdefault((prov["command"], prov["date"]), (prov, []))[1].append(name)
    lines = ["## 5. Channel pruning: smaller and faster models", ""]
    for prov, names in provs.values():
        lines += [f"{', '.join(names)}: " + _prov_line(prov), ""]
    lines += ["`python -m benchmarks.shrink`: channel masks at 0/25/50/75% of every coupled "
             "channel group (`scope=\"layer\"`), chosen by magnitude on a random "
             "initialization (speed doesn't depend on the values), then `kp.shrink`. Each "
             "shrunk model is checked against its masked model before timing. Latency: CPU, "
             "`model(x)` in a `tf.function`, every variant of a model timed in one process in "
             f"alternating order, median of {r['repeats']['1']} (batch 1) and "
             f"{r['repeats']['32']} (batch 32) runs. Speed-up = dense latency / shrunk "
             "latency; the MAC ratio beside it is the ideal.", "",
             "| model | input | channels removed | parameters | MACs / example | .keras | "
             "batch 1 (ms) | batch 32 (ms) | speed-up b1 | speed-up b32 | MAC ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    verdicts = []
    for name, m in r["models"].items():
        shape = "x".join(str(d) for d in m["input_shape"])
        for label, row in m["rows"].items():
            lines.append(
                f"| {name} | {shape} | {label} | {row['parameters']:,} | {row['macs']:,} | "
                f"{row['keras_bytes'] / 1e6:.1f} MB | {row['latency_ms_b1']:.1f} | "
                f"{row['latency_ms_b32']:.1f} | {row['speedup_b1']:.2f}x | "
                f"{row['speedup_b32']:.2f}x | {row['mac_ratio']:.2f}x |")
        need = goals.SHRINK_SPEEDUP_AT_HALF.get(name)
        if need and "50%" in m["rows"]:
            got = m["rows"]["50%"]["speedup_b32"]
            verdicts.append(f"| {name}: at 50% of channels, >= {need:.1f}x faster at batch 32 | "
                            f"{got:.2f}x | {'yes' if got >= need else 'no'} |")
    lines += ["", "| target | measured | met? |", "| --- | --- | --- |"] + verdicts
    lines += ["", "GPU latency (resnet18, vgg19, dense against 50%): not measured: no GPU "
              "was lent to this task.", ""]
    return lines


def channel_accuracy_section():
    cells, table = _cells("full")
    methods = ("progressive_channel", "scratch_channel")
    if not any(c["method"] in methods for c in cells):
        return []
    lines = ["## 6. Channel pruning accuracy (real MNIST)", "",
             "`python -m benchmarks.grid --grid=channel`, the full grid's recipes, 2 seeds. "
             "`progressive_channel`: progressive channel pruning, layer scope (every coupled "
             "group loses the target fraction of its channels; PolynomialDecay), then "
             "`kp.shrink`. `scratch_channel`: the "
             "same seed's shrunk architecture trained from a fresh initialization with the "
             "same recipe (Liu et al., 2019). Accuracy is the final epoch's, of the "
             "wrapped model (the shrunk model's is in the cells, equal to it).", "",
             "| model | channels removed | method | test accuracy, mean ± std | parameters | "
             "MACs / example | MACs vs dense |", "| --- | --- | --- | --- | --- | --- | --- |"]
    verdicts = []
    for model in ("lenet5", "lenet_300_100"):
        dense_cells = table.get((model, "dense", 0.0))
        dense = _stats(dense_cells) if dense_cells else None
        dense_macs = None
        for s in (0.5, 0.75):
            for method in methods:
                group = table.get((model, method, s))
                if not group:
                    continue
                st = _stats(group)
                params = np.mean([c["parameters"] for c in group])
                macs = np.mean([c["macs"] for c in group])
                dense_macs = dense_macs or next((c.get("dense_macs") for c in group
                                                 if c.get("dense_macs")), None)
                ratio = f"{macs / dense_macs:.1%}" if dense_macs else "-"
                lines.append(f"| {model} | {s:.0%} | {method} | {st['mean']:.2%} ± "
                             f"{st['std']:.2%} | {params:,.0f} | {macs:,.0f} | {ratio} |")
        if dense:
            lines.append(f"| {model} | 0% | dense | {dense['mean']:.2%} ± {dense['std']:.2%} "
                         f"| - | {dense_macs or 0:,.0f} | 100% |")
        half = table.get((model, "progressive_channel", 0.5))
        if model == "lenet5" and half and dense and dense_macs:
            st = _stats(half)
            frac = np.mean([c["macs"] for c in half]) / dense_macs
            ok = (dense["mean"] - st["mean"] <= goals.CHANNEL_LENET5_POINTS
                  and frac < goals.CHANNEL_LENET5_MAC_FRACTION)
            verdicts.append(
                f"| lenet5 at 50% of channels: within {goals.CHANNEL_LENET5_POINTS * 100:.1f} "
                f"points of dense ({dense['mean']:.2%}) with < "
                f"{goals.CHANNEL_LENET5_MAC_FRACTION:.0%} of its MACs | {st['mean']:.2%}, "
                f"{frac:.1%} of the MACs | {'yes' if ok else 'no'} |")
    lines += ["", "| target | measured | met? |", "| --- | --- | --- |"] + verdicts + [""]
    lat = _load("shrink_lenets.json")
    if lat:
        lines += ["Batch-32 CPU latency of the trained shrunk architectures "
                  "(`python -m benchmarks.shrink --lenets`, seed 0's architectures, median "
                  "of 30 alternating runs):", "",
                  "| model | channels removed | seed | dense (ms) | shrunk (ms) | speed-up |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in lat[0]["rows"]:
            lines.append(f"| {row['model']} | {row['sparsity']:.0%} | {row['seed']} | "
                         f"{row['dense_ms']:.2f} | {row['shrunk_ms']:.2f} | "
                         f"{row['dense_ms'] / row['shrunk_ms']:.2f}x |")
        lines.append("")
    return lines


def shrinking_fit_section():
    found = _load("shrinking_fit.json")
    cells, table = _cells("full")
    if not found:
        return []
    r = found[0]
    lines = ["## 7. Training that gets faster as it prunes (`kp.fit_shrinking`)", "",
             _prov_line(r["provenance"]), "",
             "`python -m benchmarks.shrinking_fit`: mock CIFAR-shaped data (timing only), "
             "batch 64, SGD with momentum; progressive channel pruning (layer scope, cubic "
             "PolynomialDecay reaching the target at the start of epoch 4 of 12). `masked` "
             "trains with `fit` (masks only); `shrinking` with `kp.fit_shrinking(..., "
             "shrink_every=1)`. One run each, in one process; epoch times include the "
             "first epoch's tracing, and a shrinking run retraces the smaller model after "
             "every shrink that removed channels. Total = the whole call, shrinks included.",
             "", "| model | run | epoch times (s) | total (s) | total vs dense | parameters "
             "at the end |", "| --- | --- | --- | --- | --- | --- |"]
    verdicts, plots = [], []
    for name, m in r["models"].items():
        for label, run in m["runs"].items():
            times = " ".join(f"{t:.1f}" for t in run["epoch_s"])
            lines.append(f"| {name} | {label} | {times} | {run['total_s']:.0f} | "
                         f"{run['total_vs_dense']:.2f}x | {run['final_parameters']:,} |")
        half = m["runs"].get("shrinking 50%")
        if half:
            ok = half["total_vs_dense"] <= goals.SHRINKING_FIT_TIME_RATIO
            verdicts.append(f"| {name}: shrinking to 50% of channels takes <= "
                            f"{goals.SHRINKING_FIT_TIME_RATIO}x the dense training time | "
                            f"{half['total_vs_dense']:.2f}x | {'yes' if ok else 'no'} |")
        plot = os.path.join(common.RESULTS_DIR, f"shrinking_fit_{name}.png")
        if os.path.exists(plot):
            rel = os.path.relpath(plot, os.path.dirname(os.path.abspath(FLAGS.out)))
            plots.append(f"![{name} epoch time]({rel})")
    lines += [""] + [p for plot in plots for p in (plot, "")]
    masked = {s: table.get(("lenet5", "progressive_channel", s)) for s in (0.5, 0.75)}
    shrunk = {s: table.get(("lenet5", "progressive_channel_shrinking", s)) for s in (0.5, 0.75)}
    rows = []
    for s in (0.5, 0.75):
        if masked[s] and shrunk[s]:
            a, b = _stats(masked[s]), _stats(shrunk[s])
            rows.append(f"| lenet5 | {s:.0%} | {a['mean']:.2%} ± {a['std']:.2%} | "
                        f"{b['mean']:.2%} ± {b['std']:.2%} |")
            ok = abs(a["mean"] - b["mean"]) <= max(a["std"], b["std"])
            verdicts.append(f"| lenet5 {s:.0%}: shrinking run as accurate as the masked "
                            f"run (within one std) | {b['mean']:.2%} vs {a['mean']:.2%} | "
                            f"{'yes' if ok else 'no'} |")
    if rows:
        lines += ["", "Accuracy on real MNIST (`python -m benchmarks.grid --grid=channel`, "
                  "the grid's LeNet-5 recipe, 2 seeds, `shrink_every=1`; these cells ran "
                  "beside other jobs, so only their accuracy is compared):", "",
                  "| model | channels removed | masked (`fit`) | shrinking |",
                  "| --- | --- | --- | --- |"] + rows
    lines += ["", "| target | measured | met? |", "| --- | --- | --- |"] + verdicts + [""]
    return lines


def _by_backend(prefix):
    """`{backend: result}` from `<prefix>_<backend>.json`."""
    found = {}
    for backend in BACKENDS:
        rows = _load(f"{prefix}_{backend}.json")
        if rows:
            found[backend] = rows[0]
    return found


def _backend_section(prefix, title):
    """(results by backend, the section's first lines): a title, plus a note
    when nothing has been measured yet."""
    found = _by_backend(prefix)
    lines = [title, ""]
    if not found:
        lines += ["Not measured yet: run `make bench-backends`.", ""]
    return found, lines


def _provenances(found):
    """One provenance line per backend's result."""
    return [f"- {backend}: " + _prov_line(r["provenance"]) for backend, r in found.items()] + [""]


def _met(ok):
    return "met" if ok else "NOT met"


def overhead_lines():
    found, lines = _backend_section(
        "overhead", "### Training overhead: pruned vs dense `fit`, on each backend")
    if not found:
        return lines
    lines += ["Alternating (dense, pruned) pairs in one process; each value is the median "
              "epoch of one `fit` after its first (compiling) epoch; the ratio is the median "
              "of the pairs' ratios. CPU time is `time.process_time()` over the epoch (all "
              "threads): on these shared machines wall-time pairs swing 0.8-1.4x for the "
              "same work, CPU-time pairs stay within a few percent, so CPU time is the figure "
              f"judged (goal <= {goals.OVERHEAD_RATIO}). Pruning: global PolynomialDecay to "
              "98%, masks updated every `frequency` steps. Real MNIST, batch 60.", ""]
    for backend, r in found.items():
        lines += [f"**{backend}**. " + _prov_line(r["provenance"]), "",
                  "| model | pairs | dense CPU s/epoch | pruned CPU s/epoch | CPU ratio (range) "
                  "| dense wall s | pruned wall s | wall ratio | goal (CPU) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for model, m in r["models"].items():
            lo, hi = m["cpu_ratio_range"]
            lines.append(
                f"| {model} | {len(m['pairs'])} | {m['median_dense_cpu_s']:.2f} | "
                f"{m['median_pruned_cpu_s']:.2f} | {m['median_cpu_ratio']:.3f} ({lo:.3f}-"
                f"{hi:.3f}) | {m['median_dense_s']:.2f} | {m['median_pruned_s']:.2f} | "
                f"{m['median_ratio']:.3f} | "
                f"{_met(m['median_cpu_ratio'] <= goals.OVERHEAD_RATIO)} |")
        lines.append("")
    model = "lenet_300_100"
    rows = [(b, r["models"][model]) for b, r in found.items() if model in r["models"]]
    if rows:
        lines += [f"#### What the backend choice costs: {model}, side by side", "",
                  "The same figures, one row per backend (each measured in its own process, "
                  "at different times: compare within a row more than across rows).", "",
                  "| backend | dense s/epoch (CPU) | pruned s/epoch (CPU) | dense s/epoch (wall) "
                  "| pruned s/epoch (wall) |", "| --- | --- | --- | --- | --- |"]
        for backend, m in rows:
            lines.append(f"| {backend} | {m['median_dense_cpu_s']:.2f} | "
                         f"{m['median_pruned_cpu_s']:.2f} | {m['median_dense_s']:.2f} | "
                         f"{m['median_pruned_s']:.2f} |")
        lines.append("")
    return lines


def refit_lines():
    found, lines = _backend_section(
        "refit", "### A later `fit` on a pruned model, on each backend")
    if not found:
        return lines
    r0 = next(iter(found.values()))
    lines += [f"{r0['model']}, mock CIFAR-shaped data, {r0['steps']} steps of batch "
              f"{r0['batch_size']} per `fit`, a new `ProgressivePruningCallback` each time; "
              "medians of alternating (dense, pruned) later fits. Goal: at most the dense "
              f"later `fit` plus {r0['goal_extra_s']} s.", "",
              "| backend | first fit dense (s) | first fit pruned (s) | later fit dense (s) "
              "| later fit pruned (s) | extra | goal |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for backend, r in found.items():
        m = r["median_later_fit_s"]
        lines.append(f"| {backend} | {r['first_fit_s']['dense']:.2f} | "
                     f"{r['first_fit_s']['pruned']:.2f} | {m['dense']:.2f} | {m['pruned']:.2f} "
                     f"| {r['extra_s']:+.2f} s | {_met(r['extra_s'] <= r['goal_extra_s'])} |")
    return lines + [""] + _provenances(found)


def mask_update_lines():
    found, lines = _backend_section(
        "mask_update", "### Mask update: one global update over ResNet-18's weights, on each backend")
    if not found:
        return lines
    r0 = next(iter(found.values()))
    lines += [f"Median of {r0['repeats']} runs after a warm-up (compilation). `ours` = "
              "scores, exact top-k and the new masks assigned; `top_k` = only the backend's "
              "own `top_k` over the same flat |w| (`tf.math.top_k`, `jax.lax.top_k`, "
              f"`torch.topk`), in the same run. Goal: <= {goals.MASK_UPDATE_SECONDS} s.", "",
              "| backend | sparsity | weights | kept (= k?) | ours (s) | top_k (s) | speedup "
              "| goal |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for backend, r in found.items():
        for row in r["rows"]:
            ref = row.get("top_k_s")
            lines.append(
                f"| {backend} | {row['sparsity']:.0%} | {row['weights']:,} | {row['kept']:,} "
                f"({'exact' if row['exact'] else 'NOT exact'}) | {row['ours_s']:.3f} | "
                + (f"{ref:.3f} | {ref / row['ours_s']:.1f}x" if ref else "- | -")
                + f" | {_met(row['ours_s'] <= goals.MASK_UPDATE_SECONDS)} |")
    return lines + [""] + _provenances(found)


def speed_section():
    lines = ["## 2. The engine's speed", ""]
    lines += overhead_lines()
    tf = _load("tfmot_compare.json")
    if tf:
        r = tf[0]
        lines += ["### Side by side with tfmot (same LeNet-300-100 recipe)", "",
                  _prov_line(r["provenance"]), "",
                  "Measured before this round's mask mechanism (the weight's constraint, "
                  "since replaced by `weight * mask` in the forward pass); tfmot needs "
                  "TensorFlow and tf_keras, so this table is TensorFlow only.", "",
                  "Recipe: " + ", ".join(f"{k}={v}" for k, v in sorted(r["recipe"].items()))
                  + f". tfmot versions: {r['tfmot']['versions']}.", "",
                  "| library | dense s/epoch | pruned s/epoch | pruned/dense (median of pairs) | "
                  "dense test acc | pruned test acc |", "| --- | --- | --- | --- | --- | --- |"]
        for name in ("tfmot", "keras_progprune"):
            m = r[name]
            lines.append(f"| {name} | {m['median_dense_epoch_s']:.2f} | "
                         f"{m['median_pruned_epoch_s']:.2f} | {m['median_ratio']:.3f} | "
                         f"{m['dense_test_accuracy']:.2%} | {m['pruned_test_accuracy']:.2%} |")
        lines.append("")
    lines += refit_lines()
    lines += mask_update_lines()
    return lines + gpu_lines()


def gpu_lines():
    """The GPU figures (`benchmarks/gpu.py`), or why there are none."""
    lines = ["### On a GPU: mask update and training steps per second", ""]
    found = _load("gpu.json")
    if not found:
        return lines + ["Not measured: no GPU. No GPU was lent to the tasks so far; "
                        "`python -m benchmarks.gpu` measures both tables on one "
                        "(`--allow_cpu --quick` smoke-tests it on a CPU and writes nothing).",
                        ""]
    r = found[0]
    lines += [_prov_line(r["provenance"]), "",
              "| model | sparsity | weights | ours (s) | tf.math.top_k (s) | speedup |",
              "| --- | --- | --- | --- | --- | --- |"]
    for model, rows in r["mask_update"].items():
        for row in rows:
            lines.append(f"| {model} | {row['sparsity']:.0%} | {row['weights']:,} | "
                         f"{row['ours_s']:.4f} | {row['top_k_s']:.4f} | "
                         f"{row['speedup']:.1f}x |")
    lines += ["", f"Training on generated CIFAR-shaped data, SGD 0.9; pruned: global "
              f"PolynomialDecay to {r['sparsity']:.0%}, mask update every 100 steps.", "",
              "| model | batch | dense steps/s | pruned steps/s | pruned/dense time (median of pairs) |",
              "| --- | --- | --- | --- | --- |"]
    for t in r["training"]:
        lines.append(f"| {t['model']} | {t['batch_size']} | {t['dense_steps_per_s']:.1f} | "
                     f"{t['pruned_steps_per_s']:.1f} | {t['pruned_over_dense_time']:.3f} |")
    return lines + [""]


HEADLINE_START = "<!-- headline:start (generated by python -m benchmarks.report) -->"
HEADLINE_END = "<!-- headline:end -->"


def headline(grid, model="lenet_300_100", sparsity=0.98):
    """The README's summary: every method at one grid cell, plus the plot."""
    cells, table = _cells(grid)
    rows = {m: _stats(v) for (mm, m, s), v in table.items() if mm == model and s == sparsity}
    dense = table.get((model, "dense", 0.0))
    if not rows:
        return None
    lines = [f"{model} on MNIST at {sparsity:.0%} sparsity, final-epoch test accuracy "
             f"(mean ± std over seeds), same recipe for every method except that "
             f"progressive holds its learning rate while it prunes "
             f"(full tables: BENCHMARKS.md):", "",
             "| method | test accuracy | training steps |", "| --- | --- | --- |"]
    if dense:
        st = _stats(dense)
        lines.append(f"| dense (0%) | {st['mean']:.2%} ± {st['std']:.2%} | {st['steps']:,.0f} |")
    for method in ORDER[1:]:
        if method in rows:
            st = rows[method]
            spread = "(1 seed)" if st["n"] == 1 else f"± {st['std']:.2%}"
            lines.append(f"| {method} | {st['mean']:.2%} {spread} | {st['steps']:,.0f} |")
    plot = f"benchmarks/results/accuracy_{model}.png"
    lines += ["", f"![{model} accuracy against sparsity]({plot})"]
    return "\n".join(lines)


def update_readme(text, path):
    with open(path) as f:
        readme = f.read()
    if HEADLINE_START not in readme or HEADLINE_END not in readme:
        return False
    head, rest = readme.split(HEADLINE_START, 1)
    _, tail = rest.split(HEADLINE_END, 1)
    with open(path, "w") as f:
        f.write(head + HEADLINE_START + "\n" + text + "\n" + HEADLINE_END + tail)
    return True


def distribution_section():
    found = _load("distribution.json")
    lines = ["## 8. `keras.distribution` (JAX): DataParallel and ModelParallel", ""]
    if not found:
        return lines + ["Not measured yet: `python -m benchmarks.distribution --devices=2`.", ""]
    r = found[0]
    lines += [_prov_line(r["provenance"]), "",
              f"On {r['devices']} host CPU devices "
              "(`XLA_FLAGS=--xla_force_host_platform_device_count`), which share the "
              "machine's 2 cores: this measures what pruning adds under a distribution, "
              "not how distribution scales.", "",
              "### Pruned against dense epochs under DataParallel", "",
              "Alternating (dense, pruned) pairs in one process, both under `DataParallel`; "
              "each value is the median epoch of one `fit` after its first (compiling) epoch "
              f"({r['epochs']} epochs per fit); the ratio is the median of the pairs' ratios, "
              "CPU time beside wall time as in section 2. Pruning: global PolynomialDecay "
              "to 90%, masks updated every `frequency` steps.", "",
              "| model | data | batch | frequency | pairs | dense CPU s | pruned CPU s | "
              "CPU ratio (range) | wall ratio | goal (CPU, <= "
              f"{goals.DATA_PARALLEL_RATIO}) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, m in r["data_parallel"].items():
        lo, hi = m["cpu_ratio_range"]
        lines.append(
            f"| {model} | {m['data']} | {m['batch_size']} | {m['frequency']} | "
            f"{len(m['pairs'])} | {m['median_dense_cpu_s']:.2f} | "
            f"{m['median_pruned_cpu_s']:.2f} | {m['median_cpu_ratio']:.3f} ({lo:.3f}-"
            f"{hi:.3f}) | {m['median_ratio']:.3f} | "
            f"{_met(m['median_cpu_ratio'] <= goals.DATA_PARALLEL_RATIO)} |")
    rows = r["model_parallel_update"]
    lines += ["", "### One global mask update under ModelParallel", "",
              f"{rows[0]['weights']:,} prunable weights in two Dense kernels, one update "
              "(|w|, exact top-k, masks assigned) on one device against the same update "
              "with both kernels and their masks sharded over the devices "
              "(`LayoutMap`). One device finds the k-th key with NumPy's introselect on "
              "the host; under the distribution it is found bit by bit where the keys lie "
              "(32 counts, each an all-reduce of one int32, then 2 more for the counts "
              "above and at the threshold; when keys tie at the threshold, about 24 more "
              "over flat indices pick the first ones): no weight, score or key crosses "
              "devices. "
              "Median of the timed updates after one compiling update.", "",
              "| sparsity | one device s (CPU s) | ModelParallel s (CPU s) | ratio | "
              "masks equal | mask shard shapes |", "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        shards = "; ".join(" ".join("x".join(map(str, s)) for s in m) for m in row["mask_shards"])
        lines.append(
            f"| {row['sparsity']} | {row['one_device_s']:.3f} ({row['one_device_cpu_s']:.3f}) | "
            f"{row['model_parallel_s']:.3f} ({row['model_parallel_cpu_s']:.3f}) | "
            f"{row['model_parallel_s'] / row['one_device_s']:.2f} | "
            f"{'yes' if row['masks_equal'] else 'NO'} | {shards} |")
    return lines + [""]


def transformers_section():
    lines = ["## 9. Transformers: width pruning (feed-forward neurons, attention heads)", ""]
    vit = _load("vit_width.json")
    lines += ["### A small ViT on real MNIST", ""]
    if not vit:
        lines += ["Not measured yet: `python -m benchmarks.vit_width`.", ""]
    else:
        r = vit[0]
        seeds = sorted(r["seeds"])
        lines += [_prov_line(r["provenance"]), "",
                  "`kp.models.vit_tiny` (KerasHub ViTBackbone: patch 7, 4 blocks, hidden 64, "
                  "4 heads of 16, MLP 128) and a Dense on the class token; half of every "
                  "block's feed-forward neurons and half its heads removed. Adam, cosine "
                  f"decay from {r['learning_rate']:g}, batch {r['batch_size']}, the first "
                  f"{r['train_examples']:,} training images, "
                  f"{r['epochs']} epochs for dense, progressive and from scratch "
                  "(progressive: masks from 0 to 50% over the first half, ranked by "
                  "magnitude, or by `kp.importance.Activation` over 2 training batches at "
                  "each update for 'progressive (activation)'); one-shot "
                  "(`kp.prune_width`, activations over 8 training batches) from the dense "
                  f"model of the same seed, then {r['recover_epochs']} epochs of fine-tuning "
                  "or of distillation from it (`keras.distillation.Distiller`, logits, "
                  "temperature 2, student loss weight 0.5). Final-epoch test accuracy, "
                  f"mean ± std over seeds {', '.join(seeds)}; nothing is chosen on the "
                  "test set. Train CPU s: `time.process_time()` of the arm's training "
                  "(the one-shot arms include the dense training they start from). MACs: "
                  "per image, transformer blocks only.", "",
                  "| arm | test accuracy | points below dense | parameters | block MACs | "
                  "train CPU s |", "| --- | --- | --- | --- | --- | --- |"]
        stats = {}
        for arm in r["arms"]:
            values = [r["seeds"][s][arm]["accuracy"] for s in seeds]
            stats[arm] = (float(np.mean(values)), float(np.std(values)))
        dense = stats["dense"][0]
        for arm in r["arms"]:
            cell = r["seeds"][seeds[0]][arm]
            cpu = np.mean([r["seeds"][s][arm]["train_cpu_s"] for s in seeds])
            mean, std = stats[arm]
            lines.append(f"| {arm} | {mean:.2%} ± {std:.2%} | {100 * (dense - mean):+.2f} | "
                         f"{cell['parameters']:,} | {cell['block_macs']:,} | {cpu:,.0f} |")
        later = sorted({(arm, c["git"]) for s in seeds for arm, c in r["seeds"][s].items()
                        if "git" in c})
        if later:
            lines += ["", "Arms added after the others were measured, run alone at: "
                      + "; ".join(f"{arm} ({rev})" for arm, rev in later)
                      + ". The other arms are cached from the first run."]
        latency = r.get("latency_ms_b32") or {}
        if latency:
            lines += ["", f"CPU latency at batch 32 (alternating, median): dense "
                      f"{latency['dense']:.2f} ms, shrunk {latency['shrunk']:.2f} ms "
                      f"({latency['dense'] / latency['shrunk']:.2f}x)."]
        scratch = stats["from scratch"][0]
        lines += ["", "| goal | measured | met? |", "| --- | --- | --- |"]
        for arm in [a for a in r["arms"] if a not in ("dense", "from scratch")]:
            points = 100 * (dense - stats[arm][0])
            above = 100 * (stats[arm][0] - scratch)
            lines.append(f"| {arm}: within {goals.WIDTH_VIT_POINTS} points of dense, above "
                         f"from scratch | {points:+.2f} below dense, {above:+.2f} vs scratch | "
                         f"{_met(points <= goals.WIDTH_VIT_POINTS and above > 0)} |")
        lines.append("")
    speed = _load("transformers.json")
    lines += ["### CPU latency: BERT- and GPT-2-shaped", ""]
    if not speed:
        return lines + ["Not measured yet: `python -m benchmarks.transformers`.", ""]
    r = speed[0]
    lines += [_prov_line(r["provenance"]), "",
              "KerasHub backbones at random init (speed doesn't depend on the values): hidden "
              "768, 12 heads of 64, feed-forward 3072, sequence 128, batch 8, "
              f"{r['rows']['bert']['layers']} blocks (not 12, to fit these 2 cores; every "
              "block is the same, so the ratio is per block) and a 1,000-token vocabulary. "
              "Dense against `kp.prune_width(ffn=0.5, heads=0.5)`, timed alternately in one "
              f"process ({r['backend']}, compiled), median of the runs; the MAC ratio of "
              "the blocks is the ideal.", "",
              "| model | parameters dense / pruned | wall ms dense / pruned | CPU ms dense / "
              "pruned | speed-up wall | speed-up CPU | MAC ratio | goal (>= "
              f"{goals.WIDTH_SPEEDUP}x) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind, row in r["rows"].items():
        name = {"bert": "BERT-base-shaped encoder", "gpt2": "GPT-2-shaped decoder"}[kind]
        p, w, c = row["parameters"], row["wall_ms"], row["cpu_ms"]
        lines.append(f"| {name} | {p['dense']:,} / {p['pruned']:,} | {w['dense']:.1f} / "
                     f"{w['pruned']:.1f} | {c['dense']:.1f} / {c['pruned']:.1f} | "
                     f"{row['speedup_wall']:.2f}x | {row['speedup_cpu']:.2f}x | "
                     f"{row['mac_ratio']:.2f}x | "
                     f"{_met(min(row['speedup_wall'], row['speedup_cpu']) >= goals.WIDTH_SPEEDUP)} |")
    return lines + ["", "On a GPU: not measured (no GPU was lent to this work).", ""]


def identity_section():
    """Written by `benchmarks.identity`, one file per backend."""
    lines = ["## 10. Wrapping is an identity (keras-io-style models)", "",
             "The corpus of `tests/user_models.py`: the largest output difference "
             "from the user's model (0 is the goal) before any mask update, then "
             "keras.applications.Xception at 80%. Command: `KERAS_BACKEND=<backend> "
             "python -m benchmarks.identity`.", ""]
    for backend in BACKENDS:
        path = os.path.join(common.RESULTS_DIR, f"identity_{backend}.md")
        if os.path.exists(path):
            with open(path) as f:
                lines += [f.read().strip(), ""]
        else:
            lines += [f"### {backend}", "", "Not measured: run `KERAS_BACKEND="
                      f"{backend} python -m benchmarks.identity`.", ""]
    return lines


def main(argv):
    del argv
    lines = ["# BENCHMARKS", "",
             "Generated by `python -m benchmarks.report` from the JSON files in "
             "`benchmarks/results/`; do not edit by hand. Accuracy is the final "
             "epoch's test accuracy; nothing is selected on the test set.", ""]
    lines += grid_section(FLAGS.grid)
    lines += speed_section()
    lines += small_files_section()
    lines += applications_section()
    lines += shrink_section()
    lines += channel_accuracy_section()
    lines += shrinking_fit_section()
    lines += distribution_section()
    lines += transformers_section()
    lines += identity_section()
    notes = os.path.join(common.RESULTS_DIR, "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            lines += ["## Notes", "", f.read().strip(), ""]
    with open(FLAGS.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", os.path.abspath(FLAGS.out))
    text = None
    if FLAGS.grid == "full":
        # Each model at the sparsity of its accuracy target.
        parts = [headline(FLAGS.grid, model, sparsity)
                 for (model, sparsity) in sorted(goals.ACCURACY_TARGETS, reverse=True)]
        text = "\n\n".join(p for p in parts if p) or None
    readme = os.path.join(os.path.dirname(common.RESULTS_DIR), "..", "README.md")
    if text and update_readme(text, readme):
        print("updated the headline in", os.path.abspath(readme))


if __name__ == "__main__":
    app.run(main)
