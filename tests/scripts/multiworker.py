"""One worker of a MultiWorkerMirroredStrategy run; TF_CONFIG is set by the caller.

Trains a small pruned model for a few steps and writes its masks, step and
sparsity to OUT_DIR/worker<index>.npz.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402

import keras_progprune as kp  # noqa: E402
from keras_progprune import wrapper as wrapper_lib  # noqa: E402

out_dir = sys.argv[1]
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

with strategy.scope():
    keras.utils.set_random_seed(0)
    inp = keras.Input((10,))
    x = keras.layers.Dense(32, activation="relu")(inp)
    model = kp.prune_low_magnitude(
        keras.Model(inp, keras.layers.Dense(4)(x)),
        kp.PolynomialDecay(0.0, 0.75, 0, 4, frequency=2), scope="global")
    optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    optimizer.build(model.trainable_variables)

rng = np.random.default_rng(0)
x = rng.standard_normal((64, 10)).astype("float32")
y = rng.integers(0, 4, 64)
GLOBAL_BATCH = 16
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).repeat()
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
batches = iter(strategy.experimental_distribute_dataset(ds.with_options(options)))
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


@tf.function
def train_step(batch):
    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(loss_fn(y, model(x, training=True)),
                                              global_batch_size=GLOBAL_BATCH)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return strategy.run(replica_step, args=batch)


# Keras 3.15's `fit` under MultiWorkerMirroredStrategy fails on TF 2.21 for
# any model (its symbolic build reduces a PerReplica batch), so this drives
# the callback by hand, as a custom training loop does.
callback = kp.ProgressivePruningCallback()
callback.set_model(model)
callback.on_train_begin()
for step in range(6):
    callback.on_train_batch_begin(step)
    train_step(next(batches))
callback.on_train_end()

wrappers = wrapper_lib.collect_wrappers(model)
arrays = {f"mask{i}": np.asarray(m.numpy()) for i, m in
          enumerate(m for w in wrappers for m in w.masks)}
np.savez(os.path.join(out_dir, f"worker{index}.npz"),
         step=int(wrappers[0].pruning_step.numpy()),
         sparsity=kp.sparsity_report(model)["total"]["sparsity"], **arrays)
print(f"worker {index} done", flush=True)
