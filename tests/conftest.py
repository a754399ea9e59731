import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("backends")
        if marker is not None and BACKEND not in marker.args:
            item.add_marker(pytest.mark.skip(
                reason=f"runs on {', '.join(marker.args)} only, not {BACKEND}"))
        elif item.get_closest_marker("slow") is not None and BACKEND != "tensorflow":
            item.add_marker(pytest.mark.skip(reason="slow: run on TensorFlow only"))


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


def to_numpy(x):
    """A tensor, variable or array of any backend as a NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


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


def _numpy_tree(x):
    if isinstance(x, (list, tuple)) and not np.isscalar(x):
        return np.asarray([_numpy_tree(v) for v in x]) if x and not isinstance(x[0], str) else x
    return to_numpy(x) if not isinstance(x, (int, float, bool, np.ndarray, np.generic)) else x


def assert_close(actual, desired, **kwargs):
    """`np.testing.assert_allclose` on tensors of any backend."""
    np.testing.assert_allclose(_numpy_tree(actual), _numpy_tree(desired), **kwargs)


def assert_equal(actual, desired, **kwargs):
    """`np.testing.assert_array_equal` on tensors of any backend."""
    np.testing.assert_array_equal(_numpy_tree(actual), _numpy_tree(desired), **kwargs)


def served_outputs(model, x, path):
    """Exports `model` as a SavedModel and runs its `serve` endpoint on `x`.

    On JAX and PyTorch the export runs in a TensorFlow child process, from
    a `.keras` file (`keras_progprune.tensorflow_export`): the way a model
    trained on those backends is served.
    """
    import tensorflow as tf

    from keras_progprune import tensorflow_export

    tensorflow_export.run(model, "saved_model", str(path))
    loaded = tf.saved_model.load(str(path))
    return loaded.serve(tf.constant(np.asarray(x))).numpy()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_together(commands, envs, timeout):
    """Runs `commands` at once (each with its env); returns their combined
    stdout+stderr. Bounded: a process still running after `timeout` s is
    killed, and a failed one fails the test with its output."""
    import subprocess  # noqa: PLC0415

    procs = []
    try:
        for command, env in zip(commands, envs):
            procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:  # never leave a process behind
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs
