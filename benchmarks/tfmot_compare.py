"""Side by side with tfmot: the same LeNet-300-100 recipe under both.

Creates benchmarks/.venv-tfmot (tensorflow, tf_keras,
tensorflow-model-optimization) if missing, runs `_tfmot_child.py` there
(dense and tfmot-pruned, alternating), then runs the same recipe here with
Keras 3 and keras_progprune. Reports median epoch times (first epoch not
timed), their ratios, and final test accuracy.

    python -m benchmarks.tfmot_compare --pairs=3 --epochs=4
"""

import json
import os
import subprocess
import sys

from absl import app
from absl import flags
import keras
import numpy as np

import keras_progprune as kp
from benchmarks import common
from keras_progprune import data
from keras_progprune import models

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv-tfmot")
flags.DEFINE_integer("pairs", 3, "Alternating dense/pruned pairs per library.")
flags.DEFINE_integer("epochs", 4, "Epochs per fit (first one not timed).")
flags.DEFINE_float("sparsity", 0.98, "Final sparsity (PolynomialDecay).")
flags.DEFINE_string("out", "tfmot_compare.json", "Result file under benchmarks/results.")

RECIPE = dict(batch_size=60, lr=1.2e-3, frequency=100)


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "tensorflow==2.21.*",
                        "tf_keras==2.21.*", "tensorflow-model-optimization==0.8.*"],
                       check=True)
    return python


def _arrays(data_dir):
    """The same numpy arrays the tfmot child builds (no tf.data on either side)."""
    def images(name, n=None):
        x = data.read_idx(os.path.join(data_dir, name))[:n, :, :, None] / 255.0
        return ((x - 0.1307) / 0.3081).astype("float32")

    def labels(name, n=None):
        return data.read_idx(os.path.join(data_dir, name))[:n].astype("int32")

    return (images("train-images-idx3-ubyte.gz", 55000),
            labels("train-labels-idx1-ubyte.gz", 55000),
            images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"))


def ours(data_dir):
    x, y, xt, yt = _arrays(data_dir)
    bs = RECIPE["batch_size"]
    steps = FLAGS.epochs * (len(x) // bs)
    pairs = []
    for _ in range(FLAGS.pairs):
        pair = {}
        for pruned in (False, True):
            keras.utils.set_random_seed(0)
            model, callbacks = models.lenet_300_100(), []
            if pruned:
                schedule = kp.PolynomialDecay(0.0, FLAGS.sparsity, 0, int(steps * 2 / 3),
                                              frequency=RECIPE["frequency"])
                model = kp.prune_low_magnitude(model, schedule, scope="layer")
                callbacks.append(kp.ProgressivePruningCallback())
            model.compile(keras.optimizers.Adam(RECIPE["lr"]),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            timer = common.epoch_timer()
            model.fit(x, y, batch_size=bs, epochs=FLAGS.epochs, verbose=0,
                      callbacks=callbacks + [timer])
            acc = model.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
            pair["pruned" if pruned else "dense"] = {
                "epoch_s": float(np.median(timer.times[1:])), "test_accuracy": float(acc)}
        pairs.append(pair)
    return pairs


def summarize(pairs):
    ratios = [p["pruned"]["epoch_s"] / p["dense"]["epoch_s"] for p in pairs]
    return {
        "pairs": pairs,
        "median_ratio": float(np.median(ratios)),
        "median_dense_epoch_s": float(np.median([p["dense"]["epoch_s"] for p in pairs])),
        "median_pruned_epoch_s": float(np.median([p["pruned"]["epoch_s"] for p in pairs])),
        "pruned_test_accuracy": float(np.median([p["pruned"]["test_accuracy"] for p in pairs])),
        "dense_test_accuracy": float(np.median([p["dense"]["test_accuracy"] for p in pairs])),
    }


def main(argv):
    del argv
    data_dir = os.path.join(REPO, "data", "mnist")
    python = ensure_venv()
    args = dict(RECIPE, data_dir=data_dir, epochs=FLAGS.epochs, pairs=FLAGS.pairs,
                sparsity=FLAGS.sparsity)
    proc = subprocess.run([python, os.path.join(HERE, "_tfmot_child.py"), json.dumps(args)],
                          capture_output=True, text=True, check=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    tfmot = json.loads(line[len("RESULT "):])
    result = {
        "provenance": common.provenance(common.command_line()),
        "recipe": dict(RECIPE, epochs=FLAGS.epochs, sparsity=FLAGS.sparsity,
                       model="lenet_300_100", schedule="PolynomialDecay(power=3), "
                       "end at 2/3 of training", scope="layer (tfmot's only scope)"),
        "tfmot": {**summarize(tfmot["pairs"]), "versions": {
            k: tfmot[k] for k in ("tensorflow", "tf_keras", "tfmot")}},
        "keras_progprune": summarize(ours(data_dir)),
    }
    for name in ("tfmot", "keras_progprune"):
        r = result[name]
        print(f"{name}: dense {r['median_dense_epoch_s']:.2f}s/epoch, pruned "
              f"{r['median_pruned_epoch_s']:.2f}s/epoch, ratio {r['median_ratio']:.3f}, "
              f"pruned test accuracy {r['pruned_test_accuracy']:.4f}")
    print("wrote", common.write_result(FLAGS.out, result))


if __name__ == "__main__":
    app.run(main)
