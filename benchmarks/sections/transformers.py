"""Transformers and width pruning (`benchmarks/transformers.py`,
`benchmarks/vit_width.py`)."""

import numpy as np

from benchmarks import goals
from benchmarks.sections import shared


def transformers_section():
    lines = ["## 9. Transformers: width pruning (feed-forward neurons, attention heads)", ""]
    vit = shared.load("vit_width.json")
    lines += ["### A small ViT on real MNIST", ""]
    if not vit:
        lines += ["Not measured yet: `python -m benchmarks.vit_width`.", ""]
    else:
        r = vit[0]
        seeds = sorted(r["seeds"])
        lines += [shared.prov_line(r["provenance"]), "",
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
                  "temperature 2, student loss weight 0.5); 'progressive during "
                  "distillation': the same distillation from the dense model, its student "
                  "that dense model wrapped with channel masks rising from 0 to 50% over "
                  "the first half, ranked by activations, then shrunk. Final-epoch test accuracy, "
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
        later = {}
        for s in seeds:
            for arm, c in r["seeds"][s].items():
                if "git" in c:
                    later.setdefault((arm, c["git"]), []).append(s)
        if later:
            lines += ["", "Arms added after a seed was measured, run on their own for that "
                      "seed: " + "; ".join(f"{arm} at {rev} (seeds {', '.join(ss)})"
                                          for (arm, rev), ss in sorted(later.items()))
                      + ". Every other cell comes from its seed's full run."]
        again = [(s, arm, c["teacher_retrained_accuracy"]) for s in seeds
                 for arm, c in r["seeds"][s].items() if "teacher_retrained_accuracy" in c]
        if again:
            lines += ["", "Seeds measured before the dense weights were cached: the dense "
                      "model was trained again as the teacher of the later arm, scoring "
                      + "; ".join(f"{acc:.2%} (seed {s}, {arm})" for s, arm, acc in again)
                      + " (the dense row keeps the first run's)."]
        latency = r.get("latency_ms_b32") or {}
        if latency:
            lines += ["", f"CPU latency at batch 32 (alternating, median): dense "
                      f"{latency['dense']:.2f} ms, shrunk {latency['shrunk']:.2f} ms "
                      f"({latency['dense'] / latency['shrunk']:.2f}x)"
                      + (f", measured at {r['latency_git']}." if r.get("latency_git") else ".")]
        scratch = stats["from scratch"][0]
        lines += ["", "| goal | measured | met? |", "| --- | --- | --- |"]
        for arm in [a for a in r["arms"] if a not in ("dense", "from scratch")]:
            points = 100 * (dense - stats[arm][0])
            above = 100 * (stats[arm][0] - scratch)
            lines.append(f"| {arm}: within {goals.WIDTH_VIT_POINTS} points of dense, above "
                         f"from scratch | {points:+.2f} below dense, {above:+.2f} vs scratch | "
                         f"{shared.met(points <= goals.WIDTH_VIT_POINTS and above > 0)} |")
        lines.append("")
    speed = shared.load("transformers.json")
    lines += ["### CPU latency: BERT- and GPT-2-shaped", ""]
    if not speed:
        return lines + ["Not measured yet: `python -m benchmarks.transformers`.", ""]
    r = speed[0]
    lines += [shared.prov_line(r["provenance"]), "",
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
                     f"{shared.met(min(row['speedup_wall'], row['speedup_cpu']) >= goals.WIDTH_SPEEDUP)} |")
    return lines + ["", "On a GPU: not measured; `python -m benchmarks.transformers` on a GPU "
                    "machine measures it.", ""]
