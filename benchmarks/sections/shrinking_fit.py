"""Shrinking while training (`benchmarks/shrinking_fit.py`)."""

import os

from benchmarks import common
from benchmarks import goals
from benchmarks.sections import shared

TITLE = "## 7. Training that gets faster as it prunes (`kp.fit_shrinking`)"


def shrinking_fit_section(out):
    found = shared.load("shrinking_fit.json")
    cells, table = shared.cells("full")
    if not found:
        return [TITLE, "", "Not measured: run `python -m benchmarks.shrinking_fit`.", ""]
    r = found[0]
    lines = [TITLE, "",
             shared.prov_line(r["provenance"]), "",
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
            rel = os.path.relpath(plot, os.path.dirname(os.path.abspath(out)))
            plots.append(f"![{name} epoch time]({rel})")
    lines += [""] + [p for plot in plots for p in (plot, "")]
    masked = {s: table.get(("lenet5", "progressive_channel", s)) for s in (0.5, 0.75)}
    shrunk = {s: table.get(("lenet5", "progressive_channel_shrinking", s)) for s in (0.5, 0.75)}
    rows = []
    for s in (0.5, 0.75):
        if masked[s] and shrunk[s]:
            a, b = shared.stats(masked[s]), shared.stats(shrunk[s])
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
