"""Cost of a second `fit` on a pruned model: reused step vs. retraced step.

Until this round the callback dropped `model.train_function` at the end of
every `fit`, so each later `fit` traced the train step again. Now the
compiled step is kept behind a check that the callback is present. This
times a second `fit` both ways, in one process, alternating:

- `reused`: what the package does now;
- `retraced`: the old behaviour, forced by setting
  `model.train_function = None` before the `fit`.

    python -m benchmarks.refit [--model=resnet18 --steps=3 --pairs=3]

Mock CIFAR-shaped data (random tensors): this measures time, not accuracy.
"""

import statistics
import time

from absl import app
from absl import flags
import keras
import numpy as np

from benchmarks import common
import keras_progprune as kp

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "resnet18", "Model zoo name (CIFAR shape).")
flags.DEFINE_integer("steps", 3, "Training steps per fit.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("pairs", 3, "Alternating (reused, retraced) pairs.")


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    model = kp.models.get_model(FLAGS.model, input_shape=(32, 32, 3), num_classes=10)
    pruned = kp.prune_low_magnitude(
        model, kp.PolynomialDecay(0.0, 0.9, 0, 100, frequency=1), scope="global")
    pruned.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    n = FLAGS.steps * FLAGS.batch_size
    x = rng.standard_normal((n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, n)

    def fit():
        start = time.perf_counter()
        pruned.fit(x, y, batch_size=FLAGS.batch_size, epochs=1, verbose=0,
                   callbacks=[kp.ProgressivePruningCallback()])
        return time.perf_counter() - start

    first = fit()  # traces
    reused, retraced = [], []
    for _ in range(FLAGS.pairs):
        reused.append(fit())
        pruned.train_function = None  # the old behaviour
        retraced.append(fit())
    result = {
        "provenance": common.provenance(common.command_line()),
        "model": FLAGS.model, "steps": FLAGS.steps, "batch_size": FLAGS.batch_size,
        "first_fit_s": first, "reused_s": reused, "retraced_s": retraced,
        "median_reused_s": statistics.median(reused),
        "median_retraced_s": statistics.median(retraced),
    }
    print(f"{FLAGS.model}: first fit {first:.2f} s; second fit reused "
          f"{result['median_reused_s']:.2f} s, retraced {result['median_retraced_s']:.2f} s")
    common.write_result("refit.json", result)


if __name__ == "__main__":
    app.run(main)
