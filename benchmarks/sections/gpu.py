"""The GPU figures (`benchmarks/gpu.py`)."""

from benchmarks.sections import shared


def gpu_lines():
    """The GPU figures (`benchmarks/gpu.py`), or why there are none."""
    lines = ["### On a GPU: mask update and training steps per second", ""]
    found = shared.load("gpu.json")
    if not found:
        return lines + ["Not measured: `benchmarks/results/gpu.json` is missing. On a "
                        "machine with a GPU, `make bench-gpu` (`python -m benchmarks.gpu`) "
                        "measures both tables (`--allow_cpu --quick` smoke-tests it on a "
                        "CPU and writes nothing).", ""]
    r = found[0]
    lines += [shared.prov_line(r["provenance"]), "",
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
