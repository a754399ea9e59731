"""Time of one global mask update over ResNet-18's 11.2M prunable weights.

Times `PruningGroup.update` (scores |w|, exact top-k, new masks assigned)
at several sparsities against the backend's own `top_k` over the same flat
weights (`keras.ops.top_k`: `tf.math.top_k`, `jax.lax.top_k`, `torch.topk`),
in the same run, and checks that both keep the same number of weights.
Reports the median of --repeats runs after one warm-up (compilation).

    python -m benchmarks.mask_update --backend=jax
"""

from benchmarks import backend_flag  # noqa: F401  (sets KERAS_BACKEND first)

import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_progprune as kp  # noqa: E402
from benchmarks import common  # noqa: E402
from keras_progprune import backend  # noqa: E402
from keras_progprune import engine  # noqa: E402
from keras_progprune import models  # noqa: E402
from keras_progprune import wrapper as wrapper_lib

FLAGS = flags.FLAGS
flags.DEFINE_list("sparsities", ["0.5", "0.9", "0.98"], "Sparsities to time.")
flags.DEFINE_integer("repeats", 15, "Timed repeats per sparsity (the median is kept).")
flags.DEFINE_boolean("reference", True, "Also time the backend's top_k.")
flags.DEFINE_string("out", "", "Result file under benchmarks/results "
                    "(default mask_update_<backend>.json).")


def _block(value):
    return keras.ops.convert_to_numpy(value)


def _median_time(fn, repeats):
    fn()  # warm-up: compilation
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def time_updates(model, sparsities, repeats, reference=True):
    """Rows of (sparsity, weights, kept, update seconds, top_k seconds) for one
    global update over `model`'s prunable weights."""
    pruned = kp.prune_low_magnitude(model, scope="global")
    (group,) = engine.build_groups(wrapper_lib.collect_wrappers(pruned))
    ones = [np.ones(m.shape, np.float32) for m in group.masks]

    top_k = backend.compile(lambda ws, k: keras.ops.top_k(keras.ops.concatenate(
        [keras.ops.reshape(keras.ops.abs(w), [-1]) for w in ws]), k)[0][-1], static=("k",))

    def reset():
        for m, one in zip(group.masks, ones):
            m.assign(one)

    rows = []
    for s in sparsities:
        def ours():
            reset()
            group.update(s)
            _block(group.masks[-1].value)
            return group.kept

        k = int(max(1, round(group.size * (1 - s))))
        # The reset inside `ours` is timed separately and subtracted.
        t_ours = _median_time(ours, repeats) - _median_time(reset, repeats)
        kept = ours()
        row = {"sparsity": s, "weights": group.size, "kept": kept, "k": k,
               "exact": kept == k, "ours_s": t_ours}
        if reference:
            values = [w.value for w in group.weights]
            t_ref = _median_time(lambda: _block(top_k(values, k=k)), min(3, repeats))
            row.update(top_k_s=t_ref, speedup=t_ref / t_ours)
        rows.append(row)
        print(f"s={s}: ours {t_ours:.3f}s"
              + (f", top_k {row['top_k_s']:.3f}s" if reference else "")
              + f", kept {kept} (k={k})", flush=True)
    return rows


def main(argv):
    del argv
    rows = time_updates(models.resnet18(), [float(x) for x in FLAGS.sparsities],
                        FLAGS.repeats, FLAGS.reference)
    result = {"provenance": common.provenance(common.command_line()),
              "backend": keras.backend.backend(), "rows": rows, "repeats": FLAGS.repeats}
    common.finish(FLAGS.out or f"mask_update_{keras.backend.backend()}.json", result,
                  report=False)


if __name__ == "__main__":
    app.run(main)
