"""Sections 1 (the methods grid, its plots and verdicts), the channel-pruning
accuracy section and the README's headline, from `benchmarks/grid.py`."""

import collections
import os

import numpy as np

from benchmarks import common
from benchmarks import goals
from benchmarks.sections import shared
from benchmarks.sections import tune


GRID_COMMANDS = {"full": "make bench  (python -m benchmarks.grid --grid=full)",
                 "quick": "make bench-quick  (python -m benchmarks.grid --grid=quick)"}

CHANNEL_TITLE = "## 6. Channel pruning accuracy (real MNIST)"


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
        for method in shared.ORDER[1:]:
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


def grid_section(grid, out):
    cells, table = shared.cells(grid)
    if not cells:
        return [f"## 1. Accuracy against sparsity\n\nNo grid results yet: run `{GRID_COMMANDS[grid]}`.\n"]
    lines = ["## 1. Accuracy against sparsity (real MNIST)", ""]
    models = sorted({c["model"] for c in cells}, key=lambda m: (m != "lenet_300_100", m))
    verdicts = []
    for model in models:
        recipe = next(c["recipe"] for c in cells if c["model"] == model
                      and c["method"] == "dense")
        rows = {(m, s): shared.stats(v) for (mm, m, s), v in table.items() if mm == model}
        own = [c for c in cells if c["model"] == model and c["method"] not in shared.CHANNEL_METHODS]
        latest = max(own, key=lambda c: c["provenance"]["date"])
        commands = sorted({c["provenance"]["command"] for c in own})
        lines += [f"### {model}", "",
                  "Commands: " + "; ".join(f"`{c}`" for c in commands) + ". Latest cell: "
                  + shared.prov_line(latest["provenance"]).split("; ", 1)[1], "",
                  "Recipe (every method, every run; lottery: every round): "
                  + ", ".join(f"{k}={v}" for k, v in sorted(recipe.items())
                              if not (k == "train_examples" and not v)) + "."
                  + _recipe_exceptions(own, recipe), "",
                  "| method | sparsity | test accuracy (final epoch), mean ± std | seeds | "
                  "total training steps | wall time (s) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for method in shared.ORDER:
            for (m, s), st in sorted(rows.items(), key=lambda kv: kv[0][1]):
                if m != method:
                    continue
                lines.append(f"| {m} | {s:.0%} | {st['mean']:.2%} ± {st['std']:.2%} | "
                             f"{st['n']} | {st['steps']:,.0f} | {st['wall']:.0f} |")
        plot = os.path.join(common.RESULTS_DIR, f"accuracy_{model}{'' if grid == 'full' else '_quick'}.png")
        _plot(model, rows, plot)
        rel = os.path.relpath(plot, os.path.dirname(os.path.abspath(out)))
        lines += ["", f"![{model} accuracy against sparsity]({rel})", ""]
        verdicts += _verdicts(model, rows)
    lines += ["### Targets", "", "| target | measured | met? |", "| --- | --- | --- |"]
    lines += verdicts
    lines.append("")
    if grid == "full":
        lines += tune.tune_lines()
    return lines


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
                         + shared.CHANNEL_METHODS}
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


def channel_accuracy_section():
    cells, table = shared.cells("full")
    methods = ("progressive_channel", "scratch_channel")
    if not any(c["method"] in methods for c in cells):
        return [CHANNEL_TITLE, "", "Not measured: the channel cells of the full grid "
                "(`make bench`) are missing.", ""]
    lines = [CHANNEL_TITLE, "",
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
        dense = shared.stats(dense_cells) if dense_cells else None
        dense_macs = None
        for s in (0.5, 0.75):
            for method in methods:
                group = table.get((model, method, s))
                if not group:
                    continue
                st = shared.stats(group)
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
            st = shared.stats(half)
            frac = np.mean([c["macs"] for c in half]) / dense_macs
            ok = (dense["mean"] - st["mean"] <= goals.CHANNEL_LENET5_POINTS
                  and frac < goals.CHANNEL_LENET5_MAC_FRACTION)
            verdicts.append(
                f"| lenet5 at 50% of channels: within {goals.CHANNEL_LENET5_POINTS * 100:.1f} "
                f"points of dense ({dense['mean']:.2%}) with < "
                f"{goals.CHANNEL_LENET5_MAC_FRACTION:.0%} of its MACs | {st['mean']:.2%}, "
                f"{frac:.1%} of the MACs | {'yes' if ok else 'no'} |")
    lines += ["", "| target | measured | met? |", "| --- | --- | --- |"] + verdicts + [""]
    lat = shared.load("shrink_lenets.json")
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


HEADLINE_START = "<!-- headline:start (generated by python -m benchmarks.report) -->"


HEADLINE_END = "<!-- headline:end -->"


def headline(grid, model="lenet_300_100", sparsity=0.98):
    """The README's summary: every method at one grid cell, plus the plot."""
    cells, table = shared.cells(grid)
    rows = {m: shared.stats(v) for (mm, m, s), v in table.items() if mm == model and s == sparsity}
    dense = table.get((model, "dense", 0.0))
    if not rows:
        return None
    lines = [f"{model} on MNIST at {sparsity:.0%} sparsity, final-epoch test accuracy "
             f"(mean ± std over seeds), same recipe for every method except that "
             f"progressive holds its learning rate while it prunes "
             f"(full tables: BENCHMARKS.md):", "",
             "| method | test accuracy | training steps |", "| --- | --- | --- |"]
    if dense:
        st = shared.stats(dense)
        lines.append(f"| dense (0%) | {st['mean']:.2%} ± {st['std']:.2%} | {st['steps']:,.0f} |")
    for method in shared.ORDER[1:]:
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
