"""One backend's half of the cross-backend `.keras` test.

    KERAS_BACKEND=jax python cross_backend.py write DIR   # DIR/jax.keras + DIR/jax.npz
    KERAS_BACKEND=torch python cross_backend.py read DIR  # loads every other backend's file

`write` trains a small pruned model (dense and conv layers, global scope,
a schedule still rising) for a few steps and saves it with its outputs on a
fixed batch, its masks and its step. `read` loads each other backend's file,
checks outputs (1e-5), masks (exact), step and schedule, then resumes
training with a fresh callback and checks that the schedule continues.
"""

import os
import sys

import keras
import numpy as np

import keras_progprune as kp
from keras_progprune import wrapper as wrapper_lib
from keras_progprune_cli import BACKENDS

L = keras.layers
SCHEDULE = kp.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=12, frequency=2)


def model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = L.Flatten()(x)
    x = L.Dense(8, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(3, name="head")(x))


def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((16, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 16)


def fit(pruned, epochs):
    x, y = batch()
    return pruned.fit(x, y, batch_size=4, epochs=epochs, verbose=0, shuffle=False,
                      callbacks=[kp.ProgressivePruningCallback()])


def write(folder):
    pruned = kp.prune_low_magnitude(model(), SCHEDULE, scope="global")
    pruned.compile(keras.optimizers.Adam(0.01),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fit(pruned, 2)  # 8 steps: the schedule is still rising
    backend = keras.backend.backend()
    pruned.save(os.path.join(folder, f"{backend}.keras"))  # plain Keras
    kp.save_model(pruned, os.path.join(folder, f"{backend}-kp.keras"))
    wrappers = wrapper_lib.collect_wrappers(pruned)
    np.savez(os.path.join(folder, f"{backend}.npz"),
             outputs=keras.ops.convert_to_numpy(pruned(batch()[0])),
             step=int(wrappers[0].pruning_step.numpy()),
             **{f"mask_{i}": m.numpy() for i, m in enumerate(
                 m for w in wrappers for m in w.masks)})


def read(folder):
    here = keras.backend.backend()
    for other in BACKENDS:
        path = os.path.join(folder, f"{other}.keras")
        if other == here or not os.path.exists(path):
            continue
        expected = np.load(os.path.join(folder, f"{other}.npz"))
        # Plain Keras loads either file, with no custom_objects.
        plain_loaded = keras.saving.load_model(os.path.join(folder, f"{other}-kp.keras"))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(plain_loaded(batch()[0])),
                                   expected["outputs"], atol=1e-5)
        # `kp.load_model` also repairs a plain `model.save` file from PyTorch,
        # whose optimizer Keras names by its PyTorch class.
        loaded = kp.load_model(path)
        wrappers = wrapper_lib.collect_wrappers(loaded)
        outputs = keras.ops.convert_to_numpy(loaded(batch()[0]))
        np.testing.assert_allclose(outputs, expected["outputs"], atol=1e-5)
        masks = [m.numpy() for w in wrappers for m in w.masks]
        for i, m in enumerate(masks):
            np.testing.assert_array_equal(m, expected[f"mask_{i}"])
        assert int(wrappers[0].pruning_step.numpy()) == int(expected["step"]) == 8
        assert all(w.pruning_schedule == SCHEDULE and w.scope == "global" for w in wrappers)
        history = fit(loaded, 2)  # a fresh callback resumes at step 8
        assert int(wrappers[0].pruning_step.numpy()) == 16
        assert abs(history.history["sparsity"][-1] - 0.75) < 0.01
        plain = kp.strip_pruning(loaded)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(plain(batch()[0])),
                                   keras.ops.convert_to_numpy(loaded(batch()[0])), atol=1e-5)
        print(f"{here} loaded the file written on {other}: outputs, masks, step and "
              "schedule match; training resumed", flush=True)


if __name__ == "__main__":
    {"write": write, "read": read}[sys.argv[1]](sys.argv[2])
