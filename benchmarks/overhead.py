"""Training overhead: pruned vs dense `fit` wall time per epoch, Keras 3.

Runs alternating (dense, pruned) pairs in one process on the same data and
reports each pair's ratio of median epoch times, then the median ratio. The
first epoch of every fit (tracing) is excluded. Data is the real MNIST
shipped in data/mnist, through `keras_progprune.data.load` (the pipeline
training uses). Feeding one big NumPy array instead makes Keras re-shuffle
190 MB at every epoch start, which stalls for up to 2 s at random on these
machines, in dense and pruned runs alike.

    python benchmarks/overhead.py --pairs=3 --epochs=3
"""


import json
import os

from absl import app
from absl import flags
import keras
import numpy as np

import keras_progprune as kp
from keras_progprune import data
from keras_progprune import models
from benchmarks import common

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "data", "mnist")

FLAGS = flags.FLAGS
flags.DEFINE_integer("pairs", 3, "Alternating dense/pruned pairs.")
flags.DEFINE_integer("epochs", 5, "Epochs per fit; the first is not timed.")
flags.DEFINE_integer("batch_size", 60, "Batch size.")
flags.DEFINE_integer("frequency", 100, "Mask update frequency in steps.")
flags.DEFINE_list("models", ["lenet_300_100", "lenet5"], "Models to time.")
flags.DEFINE_string("out", "overhead.json", "Result file under benchmarks/results.")
flags.DEFINE_boolean("merge", False, "Keep the other models' rows already in --out "
                     "(each row records the command that measured it).")


def _fit_epoch_time(name, pruned, train):
    keras.utils.set_random_seed(0)
    model = models.get_model(name)
    callbacks = []
    if pruned:
        steps = FLAGS.epochs * data.steps_per_epoch(train)
        model = kp.prune_low_magnitude(
            model,
            kp.PolynomialDecay(0.0, 0.98, 0, steps, frequency=FLAGS.frequency),
            scope="global",
        )
        callbacks.append(kp.ProgressivePruningCallback())
    timer = common.epoch_timer()
    model.compile(
        keras.optimizers.Adam(1.2e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(train, epochs=FLAGS.epochs, verbose=0, callbacks=callbacks + [timer])
    return float(np.median(timer.times[1:]))


def main(argv):
    del argv
    train = data.load("mnist", "train", FLAGS.batch_size, data_dir=DATA_DIR, shuffle_seed=0)
    result = {"provenance": common.provenance(common.command_line()), "models": {}}
    path = os.path.join(common.RESULTS_DIR, FLAGS.out)
    if FLAGS.merge and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        for name, row in old["models"].items():
            row.setdefault("command", old["provenance"]["command"])
            result["models"][name] = row
    for name in FLAGS.models:
        pairs = []
        for i in range(FLAGS.pairs):
            dense = _fit_epoch_time(name, False, train)
            pruned = _fit_epoch_time(name, True, train)
            pairs.append({"dense_s": dense, "pruned_s": pruned, "ratio": pruned / dense})
            print(f"{name} pair {i}: dense {dense:.3f}s pruned {pruned:.3f}s "
                  f"ratio {pruned / dense:.3f}", flush=True)
        ratio = float(np.median([p["ratio"] for p in pairs]))
        result["models"][name] = {
            "pairs": pairs,
            "median_ratio": ratio,
            "median_dense_s": float(np.median([p["dense_s"] for p in pairs])),
            "median_pruned_s": float(np.median([p["pruned_s"] for p in pairs])),
            "batch_size": FLAGS.batch_size,
            "frequency": FLAGS.frequency,
            "command": result["provenance"]["command"],
        }
        print(f"{name}: median ratio {ratio:.3f}")
    print("wrote", common.write_result(FLAGS.out, result))


if __name__ == "__main__":
    app.run(main)
