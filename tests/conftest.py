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


def write_idx(path, array):
    """Writes a uint8 array as a gzipped IDX file (the MNIST format)."""
    import gzip

    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def make_mnist_dir(root, train=40, test=20, seed=0):
    """A tiny MNIST mirror: random images, labels 0..9, official file names."""
    import os

    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"),
                  rng.integers(0, 256, (n, 28, 28)))
        write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), np.arange(n) % 10)
    return str(root)


def make_cifar_dir(root, per_batch=6, classes=10, seed=0):
    """A tiny CIFAR-10 (or -100) mirror in the python-pickle format."""
    import os
    import pickle

    rng = np.random.default_rng(seed)
    if classes == 10:
        folder = os.path.join(root, "cifar-10-batches-py")
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        key = b"labels"
    else:
        folder = os.path.join(root, "cifar-100-python")
        files = ["train", "test"]
        key = b"fine_labels"
    os.makedirs(folder, exist_ok=True)
    for name in files:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
                 key: list(rng.integers(0, classes, per_batch))}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f)
    return str(root)
