"""Compressed saves, LiteRT export, Keras int8 on top of sparsity, N:M checks."""

import contextlib
import os
import zipfile

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import litert
from keras_progprune import litert_convert
from keras_progprune import saving
from conftest import assert_close, assert_equal, to_numpy

L = keras.layers


def _sparse_mlp(sparsity=0.9, structure="unstructured", trained=True):
    model = keras.Sequential([keras.Input((64,)), L.Dense(64, activation="relu", name="a"),
                              L.Dense(32, activation="relu", name="b"), L.Dense(4, name="c")])
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(sparsity, 0),
                                    structure=structure, exclude=["c"])
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if trained:
        x, y = _task()
        pruned.fit(x, y, epochs=1, batch_size=32, verbose=0,
                   callbacks=[kp.ProgressivePruningCallback()])
    return pruned


def _task(n=256, seed=0):
    """A separable 4-class problem: the class is the argmax of 4 input sums."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 64)).astype("float32")
    y = x.reshape(n, 4, 16).sum(axis=2).argmax(axis=1)
    return x, y


def test_compressed_save_round_trips_and_is_much_smaller(tmp_path):
    pruned = _sparse_mlp(0.95)
    plain = kp.strip_pruning(pruned)
    plain.save(tmp_path / "keras.keras")
    kp.save_model(plain, tmp_path / "small.keras", include_optimizer=False)
    assert os.path.getsize(tmp_path / "small.keras") < os.path.getsize(
        tmp_path / "keras.keras") / 5
    again = keras.saving.load_model(tmp_path / "small.keras")  # plain Keras, no custom_objects
    x, _ = _task(8)
    assert_equal(again(x), plain(x))
    # The pruned (wrapped) model round-trips too, masks included.
    kp.save_model(pruned, tmp_path / "pruned.keras")
    back = keras.saving.load_model(tmp_path / "pruned.keras")
    assert_equal(back.layers[0].masks[0].numpy(), pruned.layers[0].masks[0].numpy())


@pytest.mark.parametrize("compression", sorted(saving.COMPRESSIONS))
def test_every_compression_loads_with_plain_keras(compression, tmp_path):
    plain = kp.strip_pruning(_sparse_mlp(trained=False))
    path = tmp_path / f"{compression}.keras"
    kp.save_model(plain, path, compression=compression)
    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {saving.COMPRESSIONS[compression]}
    x, _ = _task(4)
    assert_equal(keras.saving.load_model(path)(x), plain(x))


def test_include_optimizer_false_leaves_out_the_optimizer_state(tmp_path):
    pruned = _sparse_mlp()
    kp.save_model(pruned, tmp_path / "with.keras")
    kp.save_model(pruned, tmp_path / "without.keras", include_optimizer=False)
    with zipfile.ZipFile(tmp_path / "with.keras") as a, zipfile.ZipFile(
            tmp_path / "without.keras") as b:
        assert a.getinfo("model.weights.h5").file_size > b.getinfo("model.weights.h5").file_size
    resumed = keras.saving.load_model(tmp_path / "with.keras")
    deployed = keras.saving.load_model(tmp_path / "without.keras")
    assert resumed.compiled and resumed.optimizer.iterations.numpy() > 0
    assert not deployed.compiled


def test_saved_files_get_default_permissions_not_0600(tmp_path):
    umask = os.umask(0o022)
    try:
        model = kp.strip_pruning(_sparse_mlp(trained=False))
        kp.save_model(model, tmp_path / "m.keras")
        kp.export_litert(model, str(tmp_path / "m.tflite"))
        for name in ("m.keras", "m.tflite"):
            assert os.stat(tmp_path / name).st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)


def test_save_model_errors(tmp_path):
    model = kp.strip_pruning(_sparse_mlp(trained=False))
    with pytest.raises(ValueError, match=r"`compression` must be one of \['bzip2', "
                                         r"'deflate', 'lzma', 'stored'\]\. Received: "
                                         r"compression='zstd'"):
        kp.save_model(model, tmp_path / "m.keras", compression="zstd")
    with pytest.raises(ValueError, match=r"The folder of `filepath` does not exist"):
        kp.save_model(model, tmp_path / "missing" / "m.keras")
    with pytest.raises(ValueError, match=r"must end in '\.keras'\. Received: filepath="):
        kp.save_model(model, tmp_path / "m.h5")
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_keras_int8_on_top_of_sparsity(tmp_path):
    pruned = _sparse_mlp(0.5)
    pruned.compile(keras.optimizers.Adam(1e-2),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _task(1024, seed=1)
    pruned.fit(x, y, epochs=10, batch_size=64, verbose=0,
               callbacks=[kp.ProgressivePruningCallback()])
    plain = kp.strip_pruning(pruned)
    x_test, y_test = _task(512, seed=2)
    float_acc = (plain.predict(x_test, verbose=0).argmax(1) == y_test).mean()
    plain.quantize("int8")
    kp.save_model(plain, tmp_path / "int8.keras", include_optimizer=False)
    again = keras.saving.load_model(tmp_path / "int8.keras")
    int8_acc = (again.predict(x_test, verbose=0).argmax(1) == y_test).mean()
    assert float_acc > 0.7  # trained well above chance (0.25)
    assert abs(int8_acc - float_acc) <= 0.02
    dense = keras.Sequential([keras.Input((64,)), L.Dense(64), L.Dense(32), L.Dense(4)])
    dense.save(tmp_path / "dense.keras")
    assert os.path.getsize(tmp_path / "int8.keras") < os.path.getsize(tmp_path / "dense.keras") / 4


def test_quantizing_a_wrapped_model_is_refused_clearly():
    pruned = _sparse_mlp(trained=False)
    with pytest.warns(UserWarning):
        pruned.quantize("int8")
    with pytest.raises(ValueError, match=r"Layer 'a' was quantized \('int8'\) while wrapped "
                                         r"for pruning.*call `keras_progprune.strip_pruning"):
        kp.strip_pruning(pruned)
    with pytest.raises(ValueError, match=r"Quantization-aware fine-tuning of a wrapped model "
                                         r"is not supported"):
        x, y = _task(32)
        pruned.fit(x, y, verbose=0, callbacks=[kp.ProgressivePruningCallback()])


def test_export_litert_refuses_a_keras_quantized_model_with_the_fix(tmp_path):
    model = keras.Sequential([keras.Input((8,)), L.Dense(8, name="first"), L.Dense(2)])
    model.quantize("int8")
    with pytest.raises(ValueError, match=r"Can't export a model quantized with Keras's "
                       r"`quantize\(\.\.\.\)`.*quantized layers \[.*'first'.*\]\. Export the "
                       r"float model with `export_litert\(model, path, quantize='dynamic_int8'\)`"):
        kp.export_litert(model, tmp_path / "int8.tflite")
    assert not os.path.exists(tmp_path / "int8.tflite")


def test_export_litert_float_matches_and_sparse_is_smaller(tmp_path):
    # At 97% most 1x4 blocks are empty, so the converter picks block storage.
    pruned = _sparse_mlp(0.97)
    x, _ = _task(16)
    expected = to_numpy(kp.strip_pruning(pruned)(x))
    dense = str(tmp_path / "dense.tflite")
    latency = str(tmp_path / "latency.tflite")  # the default: the converter's blocks
    size = str(tmp_path / "size.tflite")  # plain CSR behind DENSIFY ops
    csr = str(tmp_path / "csr.tflite")
    assert kp.export_litert(pruned, dense, sparse=False) == dense
    kp.export_litert(pruned, latency)
    with pytest.warns(UserWarning, match=r"optimize_for='size'.*on x86") if (
            litert._is_x86()) else contextlib.nullcontext():
        kp.export_litert(pruned, size, optimize_for="size")
    kp.export_litert(pruned, csr, sparse_blocks=False)  # the explicit switch wins
    for path in (dense, latency, size, csr):
        assert_close(litert.predict(path, x), expected, atol=1e-5)
    assert os.path.getsize(size) < os.path.getsize(latency) < os.path.getsize(dense) / 2
    assert os.path.getsize(csr) == os.path.getsize(size)


def test_litert_encoding_follows_optimize_for():
    assert litert_convert.encoding(True, None, "latency") == (True, True)
    assert litert_convert.encoding(True, None, "size") == (True, False)
    # XNNPACK can't run sparse int8 weights: for latency they stay dense.
    assert litert_convert.encoding(True, "dynamic_int8", "latency") == (False, True)
    assert litert_convert.encoding(True, "dynamic_int8", "size") == (True, False)
    assert litert_convert.encoding(True, None, "latency", sparse_blocks=False) == (True, False)
    with pytest.raises(ValueError, match=r"`optimize_for` must be one of \('latency', "
                                         r"'size'\)\. Received: optimize_for='speed'\."):
        litert_convert.encoding(True, None, "speed")


@pytest.mark.slow
@pytest.mark.parametrize("sparse,quantize", [(True, "dynamic_int8"), (False, "float16")])
def test_export_litert_quantized(sparse, quantize, tmp_path):
    pruned = _sparse_mlp(0.9)
    x, y = _task(256, seed=3)
    path = str(tmp_path / "q.tflite")
    kp.export_litert(pruned, path, sparse=sparse, quantize=quantize)
    keras_pred = kp.strip_pruning(pruned).predict(x, verbose=0).argmax(1)
    agree = (litert.predict(path, x).argmax(1) == keras_pred).mean()
    assert agree > 0.95


def test_export_litert_errors_leave_no_file(tmp_path, monkeypatch):
    pruned = _sparse_mlp(trained=False)
    with pytest.raises(ValueError, match=r"`quantize` must be one of \(None, 'dynamic_int8', "
                                         r"'float16'\)\. Received: quantize='int4'"):
        kp.export_litert(pruned, str(tmp_path / "m.tflite"), quantize="int4")
    with pytest.raises(ValueError, match=r"`sparse=True` with `quantize='float16'` gives NaN"):
        kp.export_litert(pruned, str(tmp_path / "m.tflite"), quantize="float16")
    with pytest.raises(ValueError, match=r"must end in '\.tflite'\. Received: path="):
        kp.export_litert(pruned, str(tmp_path / "m.keras"))
    with pytest.raises(ValueError, match=r"Can't write `path`: its folder .* doesn't exist"):
        kp.export_litert(pruned, str(tmp_path / "no" / "m.tflite"))
    assert os.listdir(tmp_path) == []


@pytest.mark.backends("tensorflow")  # elsewhere the converter runs in a child process
def test_a_failed_conversion_leaves_no_file(tmp_path, monkeypatch):
    pruned = _sparse_mlp(trained=False)

    def broken_export(self, path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(keras.Model, "export", broken_export)
    with pytest.raises(RuntimeError, match="converter crashed"):
        kp.export_litert(pruned, str(tmp_path / "m.tflite"))
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_check_m_by_n_on_models_and_tflite(tmp_path):
    model = _sparse_mlp(structure="2:4")
    report = kp.check_m_by_n(model, 2, 4)
    assert report["a/kernel"]["holds"] and report["b/kernel"]["holds"]
    assert not report["c/kernel"]["holds"] and not report.all_hold  # "c" was excluded
    assert "holds" in str(report)
    assert not kp.check_m_by_n(_sparse_mlp(0.5, trained=False), 2, 4).all_hold
    # 1:4 is stricter than what a 2:4 model carries.
    assert not kp.check_m_by_n(model, 1, 4).all_hold
    for sparse in (False, True):
        path = str(tmp_path / f"m{sparse}.tflite")
        kp.export_litert(model, path, sparse=sparse)
        tfl = kp.check_m_by_n(path, 2, 4)
        kernels = [r for r in tfl.values() if r["groups"] in (64 * 64 // 4, 64 * 32 // 4)]
        assert len(kernels) == 2 and all(r["holds"] for r in kernels)


def test_check_m_by_n_errors_and_misfits(tmp_path):
    with pytest.raises(ValueError, match=r"Received: n=3, m=2"):
        kp.check_m_by_n(_sparse_mlp(trained=False), 3, 2)
    with pytest.raises(ValueError, match=r"an existing \.tflite file\. Received: '.*nope\.tflite'"):
        kp.check_m_by_n(str(tmp_path / "nope.tflite"))
    dense = L.Dense(2)
    dense.build((None, 6))
    (row,) = kp.check_m_by_n(dense, 2, 4).values()
    assert not row["holds"] and "not a multiple of 4" in row["reason"]
