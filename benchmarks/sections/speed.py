"""Section 2, speed: the overhead, later-fit, mask-update and GPU parts."""

from benchmarks.sections import gpu
from benchmarks.sections import mask_update
from benchmarks.sections import overhead
from benchmarks.sections import refit
from benchmarks.sections import shared


def speed_section():
    lines = ["## 2. The engine's speed", ""]
    lines += overhead.overhead_lines()
    tf = shared.load("tfmot_compare.json")
    if tf:
        r = tf[0]
        lines += ["### Side by side with tfmot (same LeNet-300-100 recipe)", "",
                  shared.prov_line(r["provenance"]), "",
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
    lines += refit.refit_lines()
    lines += mask_update.mask_update_lines()
    return lines + gpu.gpu_lines()
