"""Mask update time per backend (`benchmarks/mask_update.py`)."""

from benchmarks import goals
from benchmarks.sections import shared


def mask_update_lines():
    found, lines = shared.backend_section(
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
                + f" | {shared.met(row['ours_s'] <= goals.MASK_UPDATE_SECONDS)} |")
    return lines + [""] + shared.provenances(found)
