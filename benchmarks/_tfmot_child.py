"""Runs inside benchmarks/.venv-tfmot (tf_keras + tfmot); see tfmot_compare.py.

Trains LeNet-300-100 on MNIST dense and with tfmot's prune_low_magnitude +
PolynomialDecay, alternating, and prints one JSON line with epoch times and
final test accuracies. Kept free of keras_progprune (which needs Keras 3).
"""

import gzip
import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


class Timer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t)


def main():
    args = json.loads(sys.argv[1])
    d = args["data_dir"]
    x = (read_idx(os.path.join(d, "train-images-idx3-ubyte.gz"))[:55000, :, :, None] / 255.0
         - 0.1307) / 0.3081
    y = read_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"))[:55000].astype("int32")
    xt = (read_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))[:, :, :, None] / 255.0
          - 0.1307) / 0.3081
    yt = read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz")).astype("int32")
    x, xt = x.astype("float32"), xt.astype("float32")
    bs, epochs = args["batch_size"], args["epochs"]
    steps = epochs * (len(x) // bs)

    def build(pruned):
        tf.keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.layers.Flatten(input_shape=(28, 28, 1)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10),
        ])
        callbacks = []
        if pruned:
            schedule = tfmot.sparsity.keras.PolynomialDecay(
                0.0, args["sparsity"], 0, int(steps * 2 / 3), frequency=args["frequency"])
            model = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
            callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
        model.compile(keras.optimizers.Adam(args["lr"]),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        return model, callbacks

    out = {"pairs": [], "tensorflow": tf.__version__, "tf_keras": keras.__version__,
           "tfmot": tfmot.__version__}
    for _ in range(args["pairs"]):
        pair = {}
        for pruned in (False, True):
            model, callbacks = build(pruned)
            timer = Timer()
            model.fit(x, y, batch_size=bs, epochs=epochs, verbose=0,
                      callbacks=callbacks + [timer])
            acc = model.evaluate(xt, yt, verbose=0)[1]
            pair["pruned" if pruned else "dense"] = {
                "epoch_s": float(np.median(timer.times[1:])), "test_accuracy": float(acc)}
        out["pairs"].append(pair)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
