"""The tuning runs' lines (`benchmarks/tune.py`), inside the grid section."""

import collections
import os

import numpy as np

from benchmarks.sections import shared


def tune_lines():
    """Progressive's settings tried on the validation split (`benchmarks/tune.py`)."""
    cells = shared.load(os.path.join("tune", "*.json"))
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
              + shared.prov_line(latest["provenance"]).split("; ", 1)[1], "",
              "| model | sparsity | variant | validation accuracy (final epoch), mean ± std | seeds | "
              "last layer's sparsity |", "| --- | --- | --- | --- | --- | --- |"]
    for (model, s, variant), group in sorted(table.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2] != "base", kv[0][2])):
        mean, std = shared.mean_std([c["final_val_accuracy"] for c in group])
        last = np.mean([list(c["layer_sparsity"].values())[-1] for c in group])
        lines.append(f"| {model} | {s:.0%} | {variant} | {mean:.2%} ± {std:.2%} | "
                     f"{len(group)} | {last:.0%} |")
    return lines + [""]
