"""Mixed precision, crash-safe resume, checkpoints, model shapes, faults."""

import os

import keras
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import keras_progprune as kp
from keras_progprune import engine
from keras_progprune import wrapper as wrapper_lib
from conftest import data, mlp
from conftest import assert_close, assert_equal

L = keras.layers


def _fit(model, x, y, epochs=1, callbacks=(), batch_size=8):
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False,
              callbacks=[kp.ProgressivePruningCallback(), *callbacks])


# --- mixed precision ---------------------------------------------------------

@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("sparsity", [0.5, 0.97])
def test_mixed_precision_masks_on_float32_variables(policy, sparsity):
    keras.mixed_precision.set_global_policy(policy)
    model = kp.prune_low_magnitude(
        keras.Sequential([keras.Input((6,)), L.Dense(50), L.Dense(3)]),
        kp.ConstantSparsity(sparsity, 0, frequency=1), scope="global")
    rng = np.random.default_rng(0)
    _fit(model, rng.standard_normal((32, 6)), rng.standard_normal((32, 3)))
    wrappers = wrapper_lib.collect_wrappers(model)
    assert all(w.dtype == "float32" for wr in wrappers for w in wr.pruned_weights)
    assert all(m.dtype == "bool" for wr in wrappers for m in wr.masks)
    assert model.layers[0].compute_dtype == policy.split("_")[1]
    n = 6 * 50 + 50 * 3
    assert sum(int(np.count_nonzero(m.numpy())) for w in wrappers for m in w.masks) == \
        round(n * (1 - sparsity))


# --- crash-safe resume --------------------------------------------------------

class _Crash(keras.callbacks.Callback):
    def __init__(self, at_step):
        super().__init__()
        self.at_step, self.seen = at_step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at_step:
            raise RuntimeError("simulated preemption")


def _resumable_model():
    keras.utils.set_random_seed(7)
    model = kp.prune_low_magnitude(mlp(units=(16, 8)), kp.PolynomialDecay(
        0.0, 0.85, 0, 20, power=1, frequency=2), scope="global")
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_backup_and_restore_resume_matches_uninterrupted(tmp_path):
    # CPU float32 training here is deterministic for this tiny model; weights are
    # still compared with a tolerance (TF does not promise bitwise equality).
    x, y = data(64)
    straight = _resumable_model()
    straight.fit(x, y, batch_size=16, epochs=6, verbose=0, shuffle=False,
                 callbacks=[kp.ProgressivePruningCallback()])

    backup = str(tmp_path / "backup")
    crashed = _resumable_model()
    with pytest.raises(RuntimeError, match="simulated preemption"):
        crashed.fit(x, y, batch_size=16, epochs=6, verbose=0, shuffle=False, callbacks=[
            keras.callbacks.BackupAndRestore(backup), kp.ProgressivePruningCallback(),
            _Crash(at_step=14)])
    resumed = _resumable_model()  # a new process would rebuild the model
    resumed.fit(x, y, batch_size=16, epochs=6, verbose=0, shuffle=False, callbacks=[
        keras.callbacks.BackupAndRestore(backup), kp.ProgressivePruningCallback()])

    for ws, wr in zip(wrapper_lib.collect_wrappers(straight), wrapper_lib.collect_wrappers(resumed)):
        assert int(wr.pruning_step.numpy()) == 24
        for a, b in zip(ws.masks, wr.masks):
            assert_equal(a.numpy(), b.numpy())
    for a, b in zip(straight.weights, resumed.weights):
        assert_close(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_model_checkpoint_files_are_sparse_and_reload(tmp_path):
    model = _resumable_model()
    x, y = data(64)
    path = str(tmp_path / "ckpt-{epoch}.keras")
    model.fit(x, y, batch_size=16, epochs=6, verbose=0, shuffle=False, callbacks=[
        kp.ProgressivePruningCallback(), keras.callbacks.ModelCheckpoint(path)])
    loaded = keras.saving.load_model(str(tmp_path / "ckpt-6.keras"))  # no custom_objects
    report = kp.sparsity_report(loaded)
    assert report["total"]["sparsity"] == pytest.approx(0.85, abs=0.01)
    for wrapper in wrapper_lib.collect_wrappers(loaded):
        for w, m in zip(wrapper.pruned_weights, wrapper.masks):
            assert np.all(w.numpy()[m.numpy() == 0] == 0.0)


# --- model shapes -------------------------------------------------------------

def test_nested_functional_and_sequential_are_pruned_recursively():
    inner_seq = keras.Sequential([keras.Input((6,)), L.Dense(5, name="seq_dense")], name="seq")
    i = keras.Input((5,))
    inner_fn = keras.Model(i, L.Dense(4, name="fn_dense")(i), name="fn")
    inp = keras.Input((6,))
    model = keras.Model(inp, L.Dense(2, name="top")(inner_fn(inner_seq(inp))))
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1))
    assert sorted(w.layer.name for w in wrapper_lib.collect_wrappers(pruned)) == [
        "fn_dense", "seq_dense", "top"]
    assert isinstance(pruned.get_layer("seq"), keras.Sequential)
    x = np.random.default_rng(0).standard_normal((16, 6)).astype("float32")
    assert_close(pruned(x), model(x), rtol=1e-6)
    _fit(pruned, x, np.zeros((16, 2)))
    assert kp.sparsity_report(pruned)["total"]["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert_equal(kp.strip_pruning(pruned)(x), pruned(x))


def test_shared_layer_has_one_mask():
    shared = L.Dense(3, name="shared")
    inp = keras.Input((3,))
    pruned = kp.prune_low_magnitude(keras.Model(inp, shared(shared(inp))),
                                    kp.ConstantSparsity(0.5, 0, frequency=1))
    (wrapper,) = wrapper_lib.collect_wrappers(pruned)
    _fit(pruned, np.ones((8, 3)), np.zeros((8, 3)))
    assert len(wrapper.masks) == 1 and int(wrapper.masks[0].numpy().sum()) == round(9 * 0.5)


def test_bidirectional_lstm_and_time_distributed_dense():
    inp = keras.Input((5, 4))
    x = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(inp)
    model = keras.Model(inp, L.TimeDistributed(L.Dense(2), name="td")(x))
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1))
    paths = {w.layer.name: [v.path for v in w.pruned_weights]
             for w in wrapper_lib.collect_wrappers(pruned)}
    assert [p.rsplit("/", 3)[-3:] for p in paths["bi"]] == [
        ["forward_lstm", "lstm_cell", "kernel"], ["forward_lstm", "lstm_cell", "recurrent_kernel"],
        ["backward_lstm", "lstm_cell", "kernel"], ["backward_lstm", "lstm_cell", "recurrent_kernel"]]
    assert [p.rsplit("/", 1)[-1] for p in paths["td"]] == ["kernel"]
    rng = np.random.default_rng(0)
    _fit(pruned, rng.standard_normal((8, 5, 4)), rng.standard_normal((8, 5, 2)))
    for r in kp.sparsity_report(pruned)["layers"].values():
        assert r["sparsity"] == pytest.approx(0.5)


def test_multi_head_attention_projections(tmp_path):
    q = keras.Input((5, 8))
    model = keras.Model(q, L.MultiHeadAttention(2, 4, name="mha")(q, q))
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1))
    (wrapper,) = wrapper_lib.collect_wrappers(pruned)
    assert [v.path for v in wrapper.pruned_weights] == [
        "mha/query/kernel", "mha/key/kernel", "mha/value/kernel", "mha/attention_output/kernel"]
    x = np.random.default_rng(0).standard_normal((8, 5, 8)).astype("float32")
    _fit(pruned, x, x)
    assert kp.sparsity_report(pruned)["total"]["sparsity"] == pytest.approx(0.5)
    path = str(tmp_path / "mha.keras")
    pruned.save(path)
    assert_close(keras.saving.load_model(path)(x), pruned(x), rtol=1e-6)
    assert_close(kp.strip_pruning(pruned)(x), pruned(x), rtol=1e-6)


def test_unbuilt_multi_input_layer_wrapped_directly_gets_a_clear_error():
    wrapper = kp.PruningWrapper(L.MultiHeadAttention(2, 4, name="att"))
    with pytest.raises(ValueError, match=r"Can't build layer 'att' from one input shape .* "
                       r"Build it before wrapping"):
        wrapper.build((None, 5, 8))


class SubclassedNet(keras.Model):
    """The documented way: wrap layers with PruningWrapper in __init__."""

    def __init__(self, schedule, **kwargs):
        super().__init__(**kwargs)
        self.fc1 = kp.PruningWrapper(L.Dense(16, activation="relu"), schedule, scope="global")
        self.fc2 = kp.PruningWrapper(L.Dense(3), schedule, scope="global")

    def call(self, x):
        return self.fc2(self.fc1(x))


def test_subclassed_model_with_wrappers_in_init():
    model = SubclassedNet(kp.ConstantSparsity(0.75, 0, frequency=1))
    x, y = data(32)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[kp.ProgressivePruningCallback()])
    report = kp.sparsity_report(model)
    assert report["total"]["zeros"] == round((5 * 16 + 16 * 3) * 0.75)


# --- property test: exact count or a clear error ----------------------------------

@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 12), cols=st.integers(1, 12),
    sparsity=st.one_of(st.just(0.0), st.floats(0.0, 0.999), st.just(0.9999),
                       st.just(1 - 1e-9)),
    pattern=st.sampled_from(["random", "equal", "zeros", "nan", "inf", "-inf"]),
    scope=st.sampled_from(["layer", "global"]),
)
def test_update_keeps_exact_count_or_raises(rows, cols, sparsity, pattern, scope):
    wrapper = kp.PruningWrapper(L.Dense(cols, use_bias=False), scope=scope)
    wrapper.build((None, rows))
    kernel = wrapper.pruned_weights[0]
    values = np.random.default_rng(rows * 13 + cols).standard_normal((rows, cols))
    if pattern == "equal":
        values[:] = 0.5
    elif pattern == "zeros":
        values[:] = 0.0
    elif pattern in ("nan", "inf", "-inf"):
        values[rows // 2, cols // 2] = float(pattern.replace("nan", "nan"))
    kernel.assign(values.astype("float32"))
    (group,) = engine.build_groups([wrapper])
    n = rows * cols
    if pattern in ("nan", "inf", "-inf"):
        with pytest.raises(ValueError, match="contain NaN or Inf"):
            group.update(sparsity)
        assert np.all(wrapper.masks[0].numpy() == 1.0)  # untouched, never a wrong mask
        return
    kept = group.update(sparsity)
    assert kept == max(1, round(n * (1 - sparsity)))
    assert int(np.count_nonzero(wrapper.masks[0].numpy())) == kept


# --- damaged files ----------------------------------------------------------------

def _saved(tmp_path):
    model = kp.prune_low_magnitude(mlp())
    path = str(tmp_path / "m.keras")
    kp.save_model(model, path)
    return model, path


def test_save_and_load_round_trip(tmp_path):
    model, path = _saved(tmp_path)
    assert [f for f in os.listdir(tmp_path)] == ["m.keras"]  # no temp file left
    x, _ = data(4)
    assert_close(kp.load_model(path)(x), model(x), rtol=1e-6)


def test_truncated_keras_file_gives_a_clear_error(tmp_path):
    _, path = _saved(tmp_path)
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"is not a readable \.keras archive: it is truncated "
                       r"or corrupt"):
        kp.load_model(path)
    with pytest.raises(ValueError, match=r"No such model file"):
        kp.load_model(str(tmp_path / "missing.keras"))


def test_newer_format_version_gives_a_clear_error(tmp_path):
    import json
    import zipfile

    _, path = _saved(tmp_path)
    newer = str(tmp_path / "newer.keras")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.infolist():
            payload = src.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(payload)
                meta["keras_version"] = "99.0.0"
                payload = json.dumps(meta).encode()
            dst.writestr(item, payload)
    with pytest.raises(ValueError, match=r"was saved with Keras 99\.0\.0, newer than the "
                       r"installed Keras .* Upgrade keras"):
        kp.load_model(newer)


def test_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    model, path = _saved(tmp_path)
    before = open(path, "rb").read()

    def broken_save(self, filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        kp.save_model(model, path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["m.keras"]
    with pytest.raises(ValueError, match=r"`filepath` must end in '\.keras'\. Received: "
                       r"filepath='m\.h5'"):
        kp.save_model(model, "m.h5")
