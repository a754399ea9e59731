import os

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import wrapper as wrapper_lib
from conftest import data, mlp
from conftest import assert_close, assert_equal, served_outputs


def _pruned(schedule=None):
    schedule = schedule or kp.PolynomialDecay(0.0, 0.8, 0, 12, power=1, frequency=2)
    model = kp.prune_low_magnitude(mlp(), schedule, scope="global")
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _fit(model, epochs, initial_epoch=0):
    x, y = data(64)
    model.fit(x, y, batch_size=16, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
              shuffle=False, callbacks=[kp.ProgressivePruningCallback()])


def _masks(model):
    return [m.numpy() for w in wrapper_lib.collect_wrappers(model) for m in w.masks]


def test_keras_round_trip_restores_masks_schedule_and_step(tmp_path):
    model = _pruned()
    _fit(model, 2)  # 8 steps
    path = str(tmp_path / "m.keras")
    model.save(path)
    restored = keras.saving.load_model(path)  # no custom_objects
    wrappers = wrapper_lib.collect_wrappers(restored)
    assert all(int(w.pruning_step.numpy()) == 8 for w in wrappers)
    assert wrappers[0].pruning_schedule == wrapper_lib.collect_wrappers(model)[0].pruning_schedule
    assert wrappers[0].scope == "global"
    for a, b in zip(_masks(model), _masks(restored)):
        assert_equal(a, b)
    x, _ = data(8)
    assert_close(restored.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


def test_resume_after_reload_matches_an_uninterrupted_run(tmp_path):
    keras.utils.set_random_seed(1)
    straight = _pruned()
    keras.utils.set_random_seed(1)
    interrupted = _pruned()
    _fit(straight, 4)
    _fit(interrupted, 2)
    path = str(tmp_path / "m.keras")
    interrupted.save(path)
    resumed = keras.saving.load_model(path)
    _fit(resumed, 4, initial_epoch=2)
    assert int(wrapper_lib.collect_wrappers(resumed)[0].pruning_step.numpy()) == 16
    for a, b in zip(_masks(straight), _masks(resumed)):
        assert_equal(a, b)
    for a, b in zip(straight.weights, resumed.weights):
        assert_close(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert kp.sparsity_report(resumed)["total"]["sparsity"] == pytest.approx(0.8, abs=0.01)


def test_mid_epoch_checkpoint_records_the_current_step(tmp_path):
    model = _pruned()
    path = str(tmp_path / "ckpt.weights.h5")
    x, y = data(64)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False, callbacks=[
        kp.ProgressivePruningCallback(),
        keras.callbacks.ModelCheckpoint(path, save_weights_only=True, save_freq=3)])
    fresh = _pruned()
    fresh.load_weights(path)
    assert int(wrapper_lib.collect_wrappers(fresh)[0].pruning_step.numpy()) == 3


def test_stripped_model_exports_a_savedmodel_that_serves(tmp_path):
    model = _pruned()
    _fit(model, 3)
    plain = kp.strip_pruning(model)
    export_dir = str(tmp_path / "saved")
    x, _ = data(10)
    out = served_outputs(plain, x, export_dir)
    assert_close(out, model.predict(x, verbose=0), atol=1e-5)
    assert os.path.exists(os.path.join(export_dir, "saved_model.pb"))


def test_export_saved_model_strips_and_serves_from_any_backend(tmp_path):
    import tensorflow as tf

    model = _pruned()
    _fit(model, 3)
    path = kp.export_saved_model(model, tmp_path / "served")
    loaded = tf.saved_model.load(path)  # keep it alive while serving
    x, _ = data(10)
    assert_close(loaded.serve(tf.constant(x)).numpy(), model.predict(x, verbose=0), atol=1e-5)
    variables = [v.numpy() for v in loaded.variables]
    assert sum(int(np.sum(v == 0)) for v in variables if v.ndim == 2) > 0  # zeros baked in
