"""The backend seam: compiled functions, the k-th largest key, gradients."""

import keras
import numpy as np
import pytest
from conftest import assert_close, to_numpy

from keras_progprune import backend
from keras_progprune.backend import numpy_kernels


def _reference(keys, k):
    ordered = np.sort(keys)[::-1]
    t = ordered[k - 1]
    return t, int(np.sum(keys > t)), int(np.sum(keys == t))


def _kernels(name):
    """The seam's `name`, and on TensorFlow also its in-graph kernel (what a
    GPU runs; a CPU-only machine runs the NumPy one)."""
    kernels = [getattr(backend, name)]
    if backend.name() == "tensorflow":
        from keras_progprune.backend import tensorflow as tf_backend  # noqa: PLC0415

        kernels.append(getattr(tf_backend, f"{name}_in_graph"))
    return kernels


@pytest.mark.parametrize("sizes", [[10], [7, 0, 40], [70_000, 3], [300_000]])
@pytest.mark.parametrize("k_fraction", [0.0, 0.1, 0.5, 0.999, 1.0])
def test_kth_largest_is_exact(sizes, k_fraction):
    rng = np.random.default_rng(len(sizes))
    parts = [rng.integers(-50, 50, n).astype(np.int32) for n in sizes]  # many ties
    keys = np.concatenate(parts)
    k = min(max(1, int(k_fraction * keys.size)), keys.size)
    expected = _reference(keys, k)
    assert tuple(int(v) for v in numpy_kernels.kth_largest(parts, k)) == expected
    for kernel in _kernels("kth_largest"):
        run = backend.compile(lambda flat: kernel(flat, k))  # noqa: B023
        got = run([keras.ops.convert_to_tensor(p) for p in parts if p.size])
        assert tuple(int(to_numpy(v)) for v in got) == expected


def test_kth_largest_each_is_exact_for_every_tensor():
    rng = np.random.default_rng(4)
    parts = [rng.integers(-50, 50, n).astype(np.int32) for n in (10, 70_000, 300_000, 1)]
    ks = [3, 7_000, 299_999, 1]
    expected = [_reference(p, k) for p, k in zip(parts, ks)]
    host = numpy_kernels.kth_largest_each(parts, ks)
    assert [tuple(int(c[i]) for c in host) for i in range(len(parts))] == expected
    for kernel in _kernels("kth_largest_each"):
        run = backend.compile(kernel)
        got = [to_numpy(c) for c in run([keras.ops.convert_to_tensor(p) for p in parts],
                                        keras.ops.convert_to_tensor(ks, "int32"))]
        assert [tuple(int(c[i]) for c in got) for i in range(len(parts))] == expected


def test_parallel_scans_give_the_same_answer(monkeypatch):
    # Chunks of 1000 keys: one tensor is scanned by both threads, in parts.
    monkeypatch.setattr(numpy_kernels, "SCAN_CHUNK", 1000)
    rng = np.random.default_rng(6)
    parts = [rng.integers(-500, 500, n).astype(np.int32) for n in (123_457, 20_001, 5)]
    keys = np.concatenate(parts)
    for k in (1, 50_000, keys.size):
        for parallel in (True, False):
            got = numpy_kernels.kth_largest(parts, k, parallel=parallel)
            assert tuple(int(v) for v in got) == _reference(keys, k)


def test_every_kernel_falls_back_to_exact_when_the_bracket_misses(monkeypatch):
    # A zero-width bracket from a tiny sample misses almost always.
    monkeypatch.setattr(numpy_kernels, "BRACKET_SIGMAS", 0.0)
    monkeypatch.setattr(numpy_kernels, "SAMPLE_SIZE", 64)
    monkeypatch.setattr(numpy_kernels, "SORT_ALL_BELOW", 100)
    rng = np.random.default_rng(3)
    keys = rng.integers(-40, 40, 5000).astype(np.int32)
    keys[:1000] = numpy_kernels.INT32_MIN  # pruned
    for kernel in _kernels("kth_largest"):
        run = backend.compile(lambda f, k: kernel(f, k))  # noqa: B023
        for k in (1, 17, 2500, 4001, 5000):
            got = run([keras.ops.convert_to_tensor(keys)], keras.ops.convert_to_tensor(k, "int32"))
            assert tuple(int(to_numpy(v)) for v in got) == _reference(keys, k)


def test_kth_largest_keeps_pruned_keys_out_of_the_bracket():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 1 << 20, 100_000).astype(np.int32)
    keys[:90_000] = numpy_kernels.INT32_MIN  # 90% pruned
    for k in (5_000, 10_000, 10_001, 95_000):
        assert tuple(int(v) for v in numpy_kernels.kth_largest([keys], k)) == \
            _reference(keys, k)


@pytest.mark.backends("jax")
def test_jax_bitwise_kth_largest_is_exact_on_any_shapes():
    # The selection JAX uses under a keras.distribution, on one device here:
    # keys keep their shapes, extremes and ties included.
    from keras_progprune.backend import jax as jax_backend  # noqa: PLC0415

    rng = np.random.default_rng(3)
    parts = [rng.integers(-(2**31), 2**31 - 1, (64, 33), dtype=np.int64).astype(np.int32),
             rng.integers(-3, 3, (5, 7, 2)).astype(np.int32),
             np.array([numpy_kernels.INT32_MIN, numpy_kernels.INT32_MAX] * 4, np.int32)]
    keys = np.concatenate([p.ravel() for p in parts])
    run = backend.compile(jax_backend._kth_largest_by_bits)
    for k in (1, 2, 9, 100, 2112, keys.size - 4, keys.size):
        got = run([keras.ops.convert_to_tensor(p) for p in parts], k)
        assert tuple(int(to_numpy(v)) for v in got) == _reference(keys, k)


def test_compile_takes_static_keyword_arguments():
    fn = backend.compile(lambda x, scale: x * scale, static=("scale",))
    assert_close(fn(keras.ops.ones((2,)), scale=3), [3.0, 3.0])
    assert_close(fn(keras.ops.ones((2,)), scale=2), [2.0, 2.0])


def test_gradients_and_hessian_vector_product_of_a_quadratic():
    w = keras.Variable(np.array([1.0, -2.0], np.float32))

    def loss():  # L = sum(w^3) / 3: dL/dw = w^2, H = diag(2w)
        return keras.ops.sum(keras.ops.power(w, 3)) / 3.0

    (g,) = backend.gradients(loss, [w])
    assert_close(g, [1.0, 4.0], rtol=1e-6)
    (hv,) = backend.hessian_vector_product(loss, [w], [np.array([1.0, 1.0], np.float32)])
    assert_close(hv, [2.0, -4.0], rtol=1e-6)


def test_gradients_of_a_variable_the_loss_does_not_read_are_zero():
    used, unused = keras.Variable(np.ones(2, np.float32)), keras.Variable(np.ones(3, np.float32))
    grads = backend.gradients(lambda: keras.ops.sum(used * 2.0), [used, unused])
    assert_close(grads[0], [2.0, 2.0])
    assert_close(grads[1], np.zeros(3))


def test_no_distribution_outside_a_strategy():
    assert backend.distribution_name(keras.Sequential([keras.Input((2,))])) is None


def test_sync_outside_fit_is_a_no_op():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    before = [w.numpy().copy() for w in model.weights]
    backend.sync_model_state(model)
    for a, b in zip(before, model.weights):
        assert_close(b.numpy(), a)


def test_unsupported_backend_error_names_backend_and_fix():
    error = backend.unsupported_backend_error("Feature X", "Use Y instead.")
    assert str(error) == (f"Feature X is not available on the {backend.name()!r} backend. "
                          f"Received: KERAS_BACKEND={backend.name()!r}. Use Y instead.")


def test_summary_writer_writes_tensorboard_scalars(tmp_path):
    writer = backend.summary_writer(str(tmp_path))
    writer.scalar("sparsity/overall", 0.5, step=3)
    writer.flush()
    writer.close()
    import tensorflow as tf

    values = [(v.tag, v.simple_value if v.HasField("simple_value") else float(
        tf.make_ndarray(v.tensor)), e.step)
              for name in tmp_path.iterdir()
              for e in tf.compat.v1.train.summary_iterator(str(name)) for v in e.summary.value]
    assert values == [("sparsity/overall", 0.5, 3)]


def test_count_true_counts_each_mask():
    rng = np.random.default_rng(1)
    masks = [rng.random(s) < 0.3 for s in ((7, 5), (3000,), (0,), (2, 2, 2))]
    run = backend.compile(backend.count_true)
    got = to_numpy(run([keras.ops.convert_to_tensor(m) for m in masks]))
    assert got.dtype == np.int32
    assert got.tolist() == [int(m.sum()) for m in masks]
    assert numpy_kernels.count_true(masks).tolist() == [int(m.sum()) for m in masks]


def _select_in_child(queue):
    keys = np.arange(3_000_000, dtype=np.int32)
    queue.put(int(numpy_kernels.kth_largest([keys], 10)[0]))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_the_scan_threads_work_in_a_forked_child():
    # The parent's pool exists before the fork; the child must not wait on
    # its threads, which a fork doesn't copy.
    import multiprocessing  # noqa: PLC0415

    numpy_kernels.kth_largest([np.arange(3_000_000, dtype=np.int32)], 5)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_select_in_child, args=(queue,))
    child.start()
    try:
        child.join(60)
        assert child.exitcode == 0, "the child hung on the parent's scan threads"
        assert queue.get(timeout=5) == 3_000_000 - 10
    finally:
        if child.is_alive():
            child.kill()
