import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


def mlp(units=(8, 6), inputs=5, classes=3, name="mlp"):
    """A tiny Functional MLP."""
    x = inp = keras.Input((inputs,), name="inp")
    for i, u in enumerate(units):
        x = keras.layers.Dense(u, activation="relu", name=f"fc{i}")(x)
    out = keras.layers.Dense(classes, name="head")(x)
    return keras.Model(inp, out, name=name)


def data(n=64, inputs=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, inputs)).astype("float32"),
            rng.integers(0, classes, n))


def kept_counts(wrapper):
    return sum(int(np.count_nonzero(m.numpy())) for m in wrapper.masks)
