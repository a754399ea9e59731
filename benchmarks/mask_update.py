"""Time of one global mask update over ResNet-18's 11.2M prunable weights.

Times `PruningGroup.update` (scores |w|, exact top-k, assign masks and
weights) at several sparsities against `tf.math.top_k` over the same flat
weights, in the same run, and checks that both keep the same number of
weights. Reports the median of --repeats runs after one warm-up.

    python -m benchmarks.mask_update
"""

import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

import keras_progprune as kp
from benchmarks import common
from keras_progprune import engine
from keras_progprune import models

FLAGS = flags.FLAGS
flags.DEFINE_list("sparsities", ["0.5", "0.9", "0.98"], "Sparsities to time.")
flags.DEFINE_integer("repeats", 5, "Timed repeats per sparsity.")
flags.DEFINE_string("out", "mask_update.json", "Result file under benchmarks/results.")


def _median_time(fn, repeats):
    fn()  # warm-up: tracing
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def time_updates(model, sparsities, repeats):
    """Rows of (sparsity, weights, kept, update seconds, `tf.math.top_k`
    seconds) for one global update over `model`'s prunable weights."""
    pruned = kp.prune_low_magnitude(model, scope="global")
    (group,) = engine.build_groups(engine.collect_wrappers(pruned))
    originals = [w.numpy() for w in group.weights]

    @tf.function
    def reference(k):
        flat = tf.concat([tf.reshape(tf.abs(w), [-1]) for w in group.weights], 0)
        return tf.math.top_k(flat, k).values[-1]

    def reset():
        for m in group.masks:
            m.assign(tf.ones_like(m))
        for w, o in zip(group.weights, originals):
            w.assign(o)

    rows = []
    for s in sparsities:
        def ours():
            reset()
            group.update(s)
            return group.kept

        k = int(max(1, round(group.size * (1 - s))))
        # The reset inside `ours` is timed separately and subtracted.
        t_ours = _median_time(ours, repeats) - _median_time(reset, repeats)
        kept = ours()
        t_ref = _median_time(lambda: reference(tf.constant(k)).numpy(), repeats)
        rows.append({"sparsity": s, "weights": group.size, "kept": kept, "k": k,
                     "exact": kept == k, "ours_s": t_ours, "top_k_s": t_ref,
                     "speedup": t_ref / t_ours})
        print(f"s={s}: ours {t_ours:.3f}s, tf.math.top_k {t_ref:.3f}s, kept {kept} (k={k})",
              flush=True)
    return rows


def main(argv):
    del argv
    rows = time_updates(models.resnet18(), [float(x) for x in FLAGS.sparsities],
                        FLAGS.repeats)
    result = {"provenance": common.provenance(common.command_line()), "rows": rows,
              "repeats": FLAGS.repeats}
    print("wrote", common.write_result(FLAGS.out, result))


if __name__ == "__main__":
    app.run(main)
