import csv
import os

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import backend
from keras_progprune import callbacks as callbacks_lib
from keras_progprune import wrapper as wrapper_lib
from conftest import assert_close, data, kept_counts, mlp, to_numpy


def _compile(model, optimizer="sgd"):
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _fit(model, epochs=1, callbacks=None, batch_size=16, n=64):
    x, y = data(n)
    return model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False,
                     callbacks=callbacks or [kp.ProgressivePruningCallback()])


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.99])
def test_layer_scope_exact_count_per_layer(sparsity):
    model = _compile(kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(sparsity, 0, frequency=1)))
    _fit(model)
    for wrapper in wrapper_lib.collect_wrappers(model):
        n = sum(int(np.prod(w.shape)) for w in wrapper.pruned_weights)
        assert kept_counts(wrapper) == max(1, round(n * (1 - sparsity)))
        for w, m in zip(wrapper.pruned_weights, wrapper.masks):
            assert np.all(w.numpy()[m.numpy() == 0] == 0.0)


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.97])
def test_global_scope_exact_total_and_uneven_layers(sparsity):
    model = _compile(kp.prune_low_magnitude(
        mlp(units=(40, 20)), kp.ConstantSparsity(sparsity, 0, frequency=1), scope="global"))
    wrappers = wrapper_lib.collect_wrappers(model)
    # Make the first layer's weights smaller, so global scope prunes it more.
    k = wrappers[0].pruned_weights[0]
    k.assign(k.numpy() * 0.1)
    _fit(model)
    n = sum(int(np.prod(m.shape)) for w in wrappers for m in w.masks)
    assert sum(kept_counts(w) for w in wrappers) == max(1, round(n * (1 - sparsity)))
    report = kp.sparsity_report(model)
    assert report["layers"]["fc0"]["sparsity"] > report["layers"]["fc1"]["sparsity"]
    assert report["total"]["sparsity"] == pytest.approx(sparsity, abs=1 / n)


def test_masks_follow_schedule_and_never_regrow():
    schedule = kp.PolynomialDecay(0.2, 0.8, begin_step=0, end_step=8, power=1, frequency=2)
    model = _compile(kp.prune_low_magnitude(mlp(), schedule, scope="global"), "adam")
    wrappers = wrapper_lib.collect_wrappers(model)
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model  # on JAX, reading `self.model` brings the state into the variables
            seen.append([m.numpy().copy() for w in wrappers for m in w.masks])

    _fit(model, epochs=3, callbacks=[kp.ProgressivePruningCallback(), Watch()])
    for before, after in zip(seen, seen[1:]):
        for b, a in zip(before, after):
            assert np.all(a <= b)  # a pruned weight never returns
    n = sum(m.size for m in seen[-1])
    assert sum(int(m.sum()) for m in seen[-1]) == round(n * 0.2)
    assert int(wrappers[0].pruning_step.numpy()) == 12


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.SGD(0.5, momentum=0.9),
        lambda: keras.optimizers.Adam(0.05),
        lambda: keras.optimizers.AdamW(0.05, weight_decay=0.5),
        lambda: keras.optimizers.RMSprop(0.05, momentum=0.9),
    ],
)
def test_pruned_weights_have_no_effect_and_strip_to_exact_zeros(optimizer):
    # Prune once at step 0, then train with momentum for many steps.
    model = kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.7, 0, end_step=0))
    _compile(model, optimizer())
    wrappers = wrapper_lib.collect_wrappers(model)
    x, _ = data(8)
    checks, first = [], []

    class Check(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            model = self.model  # on JAX this brings the state into the variables
            masks = [m.numpy().copy() for w in wrappers for m in w.masks]
            plain = kp.strip_pruning(model)
            checks.append(np.allclose(to_numpy(model(x)), to_numpy(plain(x)), atol=1e-5))
            stripped = [w for w in plain.layers if w.name.startswith(("fc", "head"))]
            zeros = [np.all(l.kernel.numpy()[m == 0] == 0.0) for l, m in zip(stripped, masks)]
            checks.append(all(zeros))
            first.extend([] if first else masks)
            checks.append(all(np.array_equal(a, b) for a, b in zip(first, masks)))  # fixed

    _fit(model, epochs=3, callbacks=[kp.ProgressivePruningCallback(), Check()])
    assert checks and all(checks)
    # Live weights did move, and the stored pruned values are 0.0 after `fit`.
    assert any(np.any(v.numpy() != 0) for w in wrappers for v in w.pruned_weights)
    for w in wrappers:
        for v, m in zip(w.pruned_weights, w.masks):
            assert np.all(v.numpy()[m.numpy() == 0] == 0.0)


def test_stored_values_of_pruned_weights_are_ignored():
    model = kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.7, 0, end_step=0))
    _compile(model, keras.optimizers.Adam(0.05))
    _fit(model)
    x, _ = data(8)
    before = to_numpy(model(x))
    for wrapper in wrapper_lib.collect_wrappers(model):
        for v, m in zip(wrapper.pruned_weights, wrapper.masks):
            v.assign(np.where(m.numpy() == 0, 1e3, v.numpy()))  # garbage where pruned
    assert_close(model(x), before, atol=1e-6)


def test_sparsity_in_logs_history_and_csv(tmp_path):
    model = _compile(kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.6, 0, frequency=1)))
    csv_path = str(tmp_path / "log.csv")
    history = _fit(model, epochs=2, callbacks=[
        kp.ProgressivePruningCallback(), keras.callbacks.CSVLogger(csv_path)])
    assert history.history["sparsity"] == pytest.approx([0.6, 0.6], abs=0.02)
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["sparsity"]) == pytest.approx(0.6, abs=0.02)


def test_progress_bar_shows_sparsity(capsys):
    model = _compile(kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 0)))
    x, y = data(32)
    model.fit(x, y, epochs=1, verbose=1, callbacks=[kp.ProgressivePruningCallback()])
    assert "sparsity: 0.5" in capsys.readouterr().out


def test_tensorboard_scalars_per_layer(tmp_path):
    import tensorflow as tf

    model = _compile(kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 0)))
    _fit(model, callbacks=[kp.ProgressivePruningCallback(log_dir=str(tmp_path))])
    tags = set()
    for name in os.listdir(tmp_path):
        for event in tf.compat.v1.train.summary_iterator(str(tmp_path / name)):
            tags.update(v.tag for v in event.summary.value)
    assert {"sparsity/overall", "sparsity/fc0", "sparsity/fc1", "sparsity/head"} <= tags


def test_callback_is_reusable_and_continues_the_step():
    schedule = kp.PolynomialDecay(0.0, 0.9, begin_step=0, end_step=7, power=1, frequency=1)
    model = _compile(kp.prune_low_magnitude(mlp(), schedule, scope="global"))
    cb = kp.ProgressivePruningCallback()
    _fit(model, callbacks=[cb])  # 4 steps
    assert cb.sparsity < 0.9
    _fit(model, callbacks=[cb])  # steps 4..7
    assert cb.sparsity == pytest.approx(0.9, abs=0.01)
    assert int(wrapper_lib.collect_wrappers(model)[0].pruning_step.numpy()) == 8


def test_fit_without_callback_names_it():
    model = _compile(kp.prune_low_magnitude(mlp()))
    with pytest.raises(ValueError, match=r"Layer 'fc0' is wrapped for pruning, but the model is "
                       r"being trained without `ProgressivePruningCallback`\. Pass "
                       r"`callbacks=\[keras_progprune\.ProgressivePruningCallback\(\)\]`"):
        _fit(model, callbacks=[keras.callbacks.History()])


def test_fit_without_callback_after_a_fit_with_it_still_raises():
    model = _compile(kp.prune_low_magnitude(mlp()))
    _fit(model)
    with pytest.raises(ValueError, match="ProgressivePruningCallback"):
        _fit(model, callbacks=[keras.callbacks.History()])


def test_second_fit_with_the_callback_reuses_the_compiled_step():
    model = _compile(kp.prune_low_magnitude(mlp()))
    _fit(model)
    first = model.train_function.function  # held behind the callback check
    _fit(model)
    assert model.train_function.function is first  # no retrace
    _fit(model, callbacks=[kp.ProgressivePruningCallback()])
    assert model.train_function.function is first
    # The mask groups (and their compiled update) are reused too.
    groups = callbacks_lib.cached_groups(model, wrapper_lib.collect_wrappers(model))
    _fit(model, callbacks=[kp.ProgressivePruningCallback()])
    assert callbacks_lib.cached_groups(model, wrapper_lib.collect_wrappers(model)) is groups
    # After a recompile Keras builds a new step; the check still holds.
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="ProgressivePruningCallback"):
        _fit(model, callbacks=[keras.callbacks.History()])


def test_wrapper_arm_and_disarm():
    wrapper = kp.PruningWrapper(keras.layers.Dense(2))
    x = keras.ops.ones((1, 3))
    with pytest.raises(ValueError, match="ProgressivePruningCallback"):
        wrapper(x, training=True)
    wrapper.arm()
    assert wrapper.armed
    wrapper(x, training=True)
    wrapper.disarm()
    assert not wrapper.armed


def test_callback_on_model_without_wrappers():
    with pytest.raises(ValueError, match=r"found no PruningWrapper in model 'mlp'\. Wrap it first"):
        _fit(_compile(mlp()))


@pytest.mark.backends("tensorflow", "jax")  # Keras on PyTorch has no steps_per_execution
def test_steps_per_execution_on_call_boundaries_is_exact():
    schedule = kp.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=8, power=1, frequency=2)
    reference = _compile(kp.prune_low_magnitude(mlp(), schedule, scope="global"))
    _fit(reference, epochs=3)
    keras.utils.set_random_seed(0)
    model = kp.prune_low_magnitude(mlp(), schedule, scope="global")
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=2)
    history = _fit(model, epochs=3)
    wrappers = wrapper_lib.collect_wrappers(model)
    assert int(wrappers[0].pruning_step.numpy()) == 12
    assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
    assert [kept_counts(w) for w in wrappers] == [
        kept_counts(w) for w in wrapper_lib.collect_wrappers(reference)]


@pytest.mark.backends("tensorflow", "jax")
def test_steps_per_execution_off_call_boundaries_is_refused():
    model = kp.prune_low_magnitude(mlp(), kp.PolynomialDecay(0.0, 0.8, 0, 9, frequency=3))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=2)
    with pytest.raises(ValueError, match=r"With steps_per_execution=2, masks can change only "
                       r"every 2 steps .* updates them at step 3, inside a call\. Received: "
                       r"steps_per_execution=2, begin_step=0, frequency=3\. .*begin_step=0, "
                       r"frequency=4\) and steps per epoch a multiple of 2"):
        _fit(model)


@pytest.mark.backends("tensorflow", "jax")
def test_steps_per_execution_with_an_unknown_epoch_length_fails_at_the_missed_update():
    import tensorflow as tf

    x, y = data(64)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).filter(lambda *_: True)
    assert int(ds.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    model = kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 1, frequency=2))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=2)
    with pytest.raises(ValueError, match=r"updates them at step 1, inside a call"):
        model.fit(ds, epochs=1, verbose=0, callbacks=[kp.ProgressivePruningCallback()])


def test_global_wrappers_with_different_schedules_are_refused():
    inp = keras.Input((5,))
    a = kp.PruningWrapper(keras.layers.Dense(4, name="a"), kp.ConstantSparsity(0.5, 0), scope="global")
    b = kp.PruningWrapper(keras.layers.Dense(2, name="b"), kp.ConstantSparsity(0.6, 0), scope="global")
    model = _compile(keras.Model(inp, b(a(inp))))
    with pytest.raises(ValueError, match=r"Global-scope wrappers must share one pruning schedule, "
                       r"found 2: .*target_sparsity=0\.5.*layer 'a'.*target_sparsity=0\.6"):
        _fit(model)


def test_non_finite_weights_raise_and_leave_masks_untouched():
    model = _compile(kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 0)))
    wrappers = wrapper_lib.collect_wrappers(model)
    kernel = wrappers[1].pruned_weights[0]
    bad = kernel.numpy()
    bad[0, 0] = np.nan
    kernel.assign(bad)
    with pytest.raises(ValueError, match=r"Can't compute pruning masks for layer 'fc1': the "
                       r"scores contain NaN or Inf \(non-finite weights in layers \['fc1'\]\)\. "
                       r"Masks were left unchanged"):
        _fit(model)
    assert np.all(wrappers[1].masks[0].numpy() == 1.0)


def test_custom_training_loop_drives_the_callback_by_hand():
    model = kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 0, frequency=1))
    optimizer = keras.optimizers.SGD(0.1)
    cb = kp.ProgressivePruningCallback()
    cb.set_model(model)
    cb.on_train_begin()
    x, y = data(16)
    for step in range(3):
        cb.on_train_batch_begin(step)
        # Any backend's gradients (GradientTape, jax.grad, autograd) will do.
        grads = backend.gradients(lambda: keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(
                y, model(x, training=True), from_logits=True)), model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
    cb.on_train_end()
    assert cb.sparsity == pytest.approx(0.5, abs=0.02)
    assert int(wrapper_lib.collect_wrappers(model)[0].pruning_step.numpy()) == 3


def test_batch_end_hooks_finishing_out_of_order_keep_the_step():
    # The callback is `async_safe`, so Keras runs its batch-end hook on a
    # thread pool of several workers: the hooks of one epoch may finish in
    # any order. The step written at epoch end must not depend on it (it
    # did: a resumed JAX run then updated its masks one step off).
    model = kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 0, frequency=1))
    model.compile("sgd", "mse")
    callback = kp.ProgressivePruningCallback()
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    for batch in range(4):
        callback.on_train_batch_begin(batch)
    for batch in (0, 1, 3, 2):
        callback.on_train_batch_end(batch, {})
    callback.on_epoch_end(0)
    assert callback.current_step() == 4
    assert {int(w.pruning_step.numpy()) for w in wrapper_lib.collect_wrappers(model)} == {4}
    callback.on_train_end()
