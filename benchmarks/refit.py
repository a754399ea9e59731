"""Cost of a later `fit` on a pruned model, against a dense model's later `fit`.

A user's fine-tuning loop, Keras Tuner or `fit_shrinking` calls `fit`
again and again, each time with a new `ProgressivePruningCallback`. The
compiled train step is kept between calls, and so are the mask groups and
their compiled update, while the model's wrappers are unchanged. This
times a later `fit` (2 steps, a new callback each time) of a pruned
resnet20 and of the same dense model, alternating, in one process.

    python -m benchmarks.refit --backend=jax [--model=resnet20 --steps=2 --pairs=5]

Mock CIFAR-shaped data (random tensors): this measures time, not accuracy.
Goal (issue: every backend): at most the dense later `fit` plus 0.5 s.
"""

from benchmarks import backend_flag  # noqa: F401  (sets KERAS_BACKEND first)

import statistics  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
import keras_progprune as kp  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "resnet20", "Model zoo name (CIFAR shape).")
flags.DEFINE_integer("steps", 2, "Training steps per fit.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("pairs", 5, "Alternating (dense, pruned) pairs of later fits.")
flags.DEFINE_string("out", "", "Result file (default refit_<backend>.json).")


def _model():
    keras.utils.set_random_seed(0)
    return kp.models.get_model(FLAGS.model, input_shape=(32, 32, 3), num_classes=10)


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    n = FLAGS.steps * FLAGS.batch_size
    x = rng.standard_normal((n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, n)
    dense = _model()
    pruned = kp.prune_low_magnitude(
        _model(), kp.PolynomialDecay(0.0, 0.9, 0, 100, frequency=1), scope="global")
    for model in (dense, pruned):
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def fit(model):
        callbacks = [kp.ProgressivePruningCallback()] if model is pruned else []
        start = time.perf_counter()
        model.fit(x, y, batch_size=FLAGS.batch_size, epochs=1, verbose=0, callbacks=callbacks)
        return time.perf_counter() - start

    first = {"dense": fit(dense), "pruned": fit(pruned)}  # compile
    later = {"dense": [], "pruned": []}
    for _ in range(FLAGS.pairs):
        later["dense"].append(fit(dense))
        later["pruned"].append(fit(pruned))
    medians = {k: statistics.median(v) for k, v in later.items()}
    extra = medians["pruned"] - medians["dense"]
    backend = keras.backend.backend()
    result = {
        "provenance": common.provenance(common.command_line()), "backend": backend,
        "model": FLAGS.model, "steps": FLAGS.steps, "batch_size": FLAGS.batch_size,
        "first_fit_s": first, "later_fit_s": later, "median_later_fit_s": medians,
        "extra_s": extra, "goal_extra_s": 0.5,
    }
    print(f"{FLAGS.model} on {backend}: first fit dense {first['dense']:.2f} s, pruned "
          f"{first['pruned']:.2f} s; later fit dense {medians['dense']:.2f} s, pruned "
          f"{medians['pruned']:.2f} s (+{extra:.2f} s)")
    common.finish(FLAGS.out or f"refit_{backend}.json", result, report=False)


if __name__ == "__main__":
    app.run(main)
