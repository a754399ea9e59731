"""MirroredStrategy on 2 logical CPUs vs one device; prints one JSON line.

Run as a subprocess: logical devices must be set before TF starts.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras  # noqa: E402

import keras_progprune as kp  # noqa: E402
from keras_progprune import wrapper as wrapper_lib  # noqa: E402

SCOPE = sys.argv[1] if len(sys.argv) > 1 else "global"


def build():
    keras.utils.set_random_seed(0)
    inp = keras.Input((10,))
    x = keras.layers.Dense(32, activation="relu")(inp)
    out = keras.layers.Dense(4)(x)
    model = kp.prune_low_magnitude(
        keras.Model(inp, out), kp.PolynomialDecay(0.0, 0.8, 0, 6, frequency=2), scope=SCOPE)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def train(model):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 10)).astype("float32")
    y = rng.integers(0, 4, 64)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model.fit(ds, epochs=1, verbose=0, callbacks=[kp.ProgressivePruningCallback()])


def replica_values(variable):
    inner = getattr(variable, "value", variable)
    values = getattr(inner, "values", None) or (inner,)
    return [np.asarray(v.numpy()) for v in values]


single = build()
train(single)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = build()
train(mirrored)

out = {"replicas": strategy.num_replicas_in_sync, "masks_identical": True,
       "steps": [], "max_mask_diff_vs_single": 0.0, "sparsity": None}
for ws, wm in zip(wrapper_lib.collect_wrappers(single), wrapper_lib.collect_wrappers(mirrored)):
    for ms, mm in zip(ws.masks, wm.masks):
        values = replica_values(mm)
        out["masks_identical"] &= all(np.array_equal(values[0], v) for v in values[1:])
        out["max_mask_diff_vs_single"] = max(out["max_mask_diff_vs_single"],
                                             float(np.mean(values[0] != ms.numpy())))
    for w, m in zip(wm.pruned_weights, wm.masks):
        for wv, mv in zip(replica_values(w), replica_values(m)):
            out.setdefault("pruned_zero", True)
            out["pruned_zero"] &= bool(np.all(wv[mv == 0] == 0))
    out["steps"].append([int(v) for v in replica_values(wm.pruning_step)])
out["sparsity"] = kp.sparsity_report(mirrored)["total"]["sparsity"]
print("RESULT " + json.dumps(out))
