"""Training overhead: pruned vs dense epoch time, CPU time beside wall time.

Runs alternating (dense, pruned) pairs in one process on the same data and
reports each pair's ratio of median epoch times, then the median ratio,
for CPU time (`time.process_time()`, all threads) and for wall time. On
these shared 2-core machines wall-time pairs swing 0.8-1.4x for the same
work while CPU-time pairs stay within a few percent, so CPU time is the
figure judged. The first epoch of every fit (compilation) is not timed.
Data is the real MNIST shipped in data/mnist, through
`keras_progprune.data.load` (the pipeline training uses).

    python -m benchmarks.overhead --backend=jax --pairs=5 --epochs=4

Models: LeNet-300-100 (whole epochs) and resnet20 on the same 28x28x1
images (100 steps per timed epoch by default, `--steps_per_epoch`).
"""

from benchmarks import backend_flag  # noqa: F401  (sets KERAS_BACKEND first)

import os  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_progprune as kp  # noqa: E402
from benchmarks import common  # noqa: E402
from keras_progprune import data  # noqa: E402
from keras_progprune import models  # noqa: E402

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "data", "mnist")

FLAGS = flags.FLAGS
flags.DEFINE_integer("pairs", 5, "Alternating dense/pruned pairs.")
flags.DEFINE_integer("epochs", 4, "Epochs per fit; the first is not timed.")
flags.DEFINE_integer("batch_size", 60, "Batch size.")
flags.DEFINE_integer("frequency", 100, "Mask update frequency in steps.")
flags.DEFINE_list("models", ["lenet_300_100", "resnet20"], "Models to time.")
flags.DEFINE_list("steps_per_epoch", ["resnet20:100"],
                  "name:steps for models timed on fewer steps than a whole MNIST "
                  "epoch (1000 steps of batch 60); the others run whole epochs.")
flags.DEFINE_string("out", "", "Result file under benchmarks/results "
                    "(default overhead_<backend>.json).")


class CpuEpochTimer(keras.callbacks.Callback):
    """Wall and CPU seconds (all threads of the process) of each epoch."""

    def __init__(self):
        super().__init__()
        self.wall, self.cpu = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.wall.append(time.perf_counter() - self._wall)
        self.cpu.append(time.process_time() - self._cpu)


def _steps_per_epoch(name):
    """The steps of one timed epoch of `name` (None: the whole dataset)."""
    for item in FLAGS.steps_per_epoch:
        model, _, steps = item.partition(":")
        if model == name:
            return int(steps)
    return None


def _fit_epoch_times(name, pruned, train):
    keras.utils.set_random_seed(0)
    # Every model on MNIST's 28x28x1 images (resnet20 is built for them).
    model = models.get_model(name, input_shape=(28, 28, 1))
    callbacks = []
    per_epoch = _steps_per_epoch(name)
    if pruned:
        steps = FLAGS.epochs * (per_epoch or data.steps_per_epoch(train))
        model = kp.prune_low_magnitude(
            model, kp.PolynomialDecay(0.0, 0.98, 0, steps, frequency=FLAGS.frequency),
            scope="global")
        callbacks.append(kp.ProgressivePruningCallback())
    timer = CpuEpochTimer()
    model.compile(keras.optimizers.Adam(1.2e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(train, epochs=FLAGS.epochs, steps_per_epoch=per_epoch, verbose=0,
              callbacks=callbacks + [timer])
    return float(np.median(timer.wall[1:])), float(np.median(timer.cpu[1:]))


def measure(name, train, pairs, fit_times=None):
    """Alternating (dense, pruned) pairs: one dict per pair.

    `fit_times(name, pruned, train)` gives one fit's (wall, CPU) median
    epoch; defaults to a plain fit of the zoo model.
    """
    fit_times = fit_times or _fit_epoch_times
    rows = []
    for i in range(pairs):
        dense_wall, dense_cpu = fit_times(name, False, train)
        pruned_wall, pruned_cpu = fit_times(name, True, train)
        rows.append({"dense_s": dense_wall, "pruned_s": pruned_wall,
                     "dense_cpu_s": dense_cpu, "pruned_cpu_s": pruned_cpu,
                     "ratio": pruned_wall / dense_wall, "cpu_ratio": pruned_cpu / dense_cpu})
        print(f"{name} pair {i}: wall {dense_wall:.3f}/{pruned_wall:.3f} s "
              f"({pruned_wall / dense_wall:.3f}), CPU {dense_cpu:.3f}/{pruned_cpu:.3f} s "
              f"({pruned_cpu / dense_cpu:.3f})", flush=True)
    return rows


def summarize(rows):
    med = lambda key: float(np.median([r[key] for r in rows]))  # noqa: E731
    return {"pairs": rows, "median_ratio": med("ratio"), "median_cpu_ratio": med("cpu_ratio"),
            "cpu_ratio_range": [min(r["cpu_ratio"] for r in rows),
                                max(r["cpu_ratio"] for r in rows)],
            "median_dense_s": med("dense_s"), "median_pruned_s": med("pruned_s"),
            "median_dense_cpu_s": med("dense_cpu_s"), "median_pruned_cpu_s": med("pruned_cpu_s")}


def main(argv):
    del argv
    backend = keras.backend.backend()
    train = data.load("mnist", "train", FLAGS.batch_size, data_dir=DATA_DIR, shuffle_seed=0)
    result = {"provenance": common.provenance(common.command_line()), "backend": backend,
              "models": {}}
    for name in FLAGS.models:
        row = summarize(measure(name, train, FLAGS.pairs))
        row.update(batch_size=FLAGS.batch_size, frequency=FLAGS.frequency,
                   epochs=FLAGS.epochs, steps_per_epoch=_steps_per_epoch(name))
        result["models"][name] = row
        print(f"{name} on {backend}: median CPU ratio {row['median_cpu_ratio']:.3f} "
              f"(wall {row['median_ratio']:.3f})")
    common.finish(FLAGS.out or f"overhead_{backend}.json", result, report=False)


if __name__ == "__main__":
    app.run(main)
