"""Distributed pruning (`benchmarks/distribution.py`)."""

from benchmarks import goals
from benchmarks.sections import shared


def distribution_section():
    found = shared.load("distribution.json")
    lines = ["## 8. `keras.distribution` (JAX): DataParallel and ModelParallel", ""]
    if not found:
        return lines + ["Not measured yet: `python -m benchmarks.distribution --devices=2`.", ""]
    r = found[0]
    lines += [shared.prov_line(r["provenance"]), "",
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
              *([f"Measured in an earlier run: {shared.prov_line(r['data_parallel_provenance'])}",
                 ""] if "data_parallel_provenance" in r else []),
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
            f"{shared.met(m['median_cpu_ratio'] <= goals.DATA_PARALLEL_RATIO)} |")
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
              "Median of the timed updates after one compiling update. Goal: at most "
              f"{goals.MODEL_PARALLEL_RATIO}x the one-device time (wall).", "",
              *([f"Measured in an earlier run: "
                 f"{shared.prov_line(r['model_parallel_provenance'])}", ""]
                if "model_parallel_provenance" in r else []),
              "| sparsity | one device s (CPU s) | ModelParallel s (CPU s) | ratio | goal | "
              "masks equal | mask shard shapes |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        shards = "; ".join(" ".join("x".join(map(str, s)) for s in m) for m in row["mask_shards"])
        lines.append(
            f"| {row['sparsity']} | {row['one_device_s']:.3f} ({row['one_device_cpu_s']:.3f}) | "
            f"{row['model_parallel_s']:.3f} ({row['model_parallel_cpu_s']:.3f}) | "
            f"{row['model_parallel_s'] / row['one_device_s']:.2f} | "
            f"{shared.met(row['model_parallel_s'] / row['one_device_s'] <= goals.MODEL_PARALLEL_RATIO)} | "
            f"{'yes' if row['masks_equal'] else 'NO'} | {shards} |")
    return lines + [""]
