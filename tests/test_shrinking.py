"""`fit_shrinking`: phases, what carries across a shrink, and errors."""

import csv
import os

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import wrapper as wrapper_lib
from conftest import assert_close

L = keras.layers


def convnet():
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    y = L.Conv2D(8, 3, padding="same", name="conv2")(x)
    x = L.Add()([x, y])
    x = L.Flatten()(x)
    x = L.Dense(12, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(3, name="head")(x))


def pruned_convnet(sparsity=0.5, frequency=4, optimizer=None):
    keras.utils.set_random_seed(0)
    pruned = kp.prune_low_magnitude(
        convnet(), kp.PolynomialDecay(0.0, sparsity, 0, 8, frequency=frequency),
        scope="layer", structure="channel")
    schedule = keras.optimizers.schedules.CosineDecay(0.01, 24)
    pruned.compile(optimizer or keras.optimizers.Adam(schedule),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=["accuracy"])
    return pruned


def data(n=32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 6, 6, 2)).astype("float32"), rng.integers(0, 3, n)


@pytest.mark.slow
def test_phased_run_matches_one_masked_fit():
    x, y = data()
    masked = pruned_convnet()
    reference = masked.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                           callbacks=[kp.ProgressivePruningCallback()])
    phased = pruned_convnet()
    result = kp.fit_shrinking(phased, x, y, batch_size=8, epochs=3, shrink_every=1,
                              shuffle=False, verbose=0)
    assert_close(result.history.history["loss"], reference.history["loss"],
                               rtol=1e-4)
    assert result.history.epoch == [0, 1, 2]
    # The schedule reached 50% by step 8; the model lost those channels.
    small = result.model
    assert small.get_layer("prune_low_magnitude_conv1").layer.filters == 4
    assert small.get_layer("prune_low_magnitude_fc").layer.units == 6
    assert int(wrapper_lib.collect_wrappers(small)[0].pruning_step.numpy()) == 12
    assert int(small.optimizer.iterations.numpy()) == 12
    params = result.history.history["params"]
    assert params[0] == params[1] > params[2]  # masks first change at step 4


def test_one_step_after_a_shrink_gives_the_masked_models_loss():
    x, y = data(8)
    # SGD with momentum: Adam divides by sqrt(v), which turns float-rounding
    # differences in tiny gradients into visible ones; its loss equality is
    # checked above.
    masked = pruned_convnet(frequency=1, optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    masked.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
               callbacks=[kp.ProgressivePruningCallback()])  # 2 steps: masks at 50%
    from keras_progprune import shrinking

    small, removed = shrinking.shrink_in_training(masked)
    assert removed > 0
    expected = masked.fit(x, y, batch_size=8, epochs=1, verbose=0,
                          callbacks=[kp.ProgressivePruningCallback()]).history["loss"]
    got = small.fit(x, y, batch_size=8, epochs=1, verbose=0,
                    callbacks=[kp.ProgressivePruningCallback()]).history["loss"]
    assert_close(got, expected, rtol=1e-5)
    # The momentum was sliced, not reset: the weights after the step agree.
    assert_close(
        keras.ops.convert_to_numpy(small(x, training=False)),
        keras.ops.convert_to_numpy(masked(x, training=False)), atol=1e-5)


def test_csv_logger_sees_one_continuous_run(tmp_path):
    x, y = data()
    path = os.path.join(tmp_path, "log.csv")
    kp.fit_shrinking(pruned_convnet(), x, y, batch_size=8, epochs=3, shrink_every=2,
                     verbose=0, callbacks=[keras.callbacks.CSVLogger(path)])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert "sparsity" in rows[0] and "params" in rows[0]


def test_fit_shrinking_refuses_what_it_cannot_support():
    x, y = data(8)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"`shrink_every` must be a whole number of "
                                             rf"epochs >= 1\. Received: shrink_every="):
            kp.fit_shrinking(pruned_convnet(), x, y, shrink_every=bad)
    unstructured = kp.prune_low_magnitude(convnet(), kp.ConstantSparsity(0.5, 0))
    unstructured.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"Only channel masks can shrink during training.*"
                                         r"structure='channel'"):
        kp.fit_shrinking(unstructured, x, y)
    uncompiled = kp.prune_low_magnitude(convnet(), structure="channel")
    with pytest.raises(ValueError, match=r"is not compiled\. Call `model.compile"):
        kp.fit_shrinking(uncompiled, x, y)
    with pytest.raises(ValueError, match=r"`BackupAndRestore` can't be used with "
                                         r"`fit_shrinking`.*Use `ModelCheckpoint`"):
        kp.fit_shrinking(pruned_convnet(), x, y,
                         callbacks=[keras.callbacks.BackupAndRestore("/tmp/unused")])
    with pytest.raises(ValueError, match=r"`fit_shrinking` sets `initial_epoch`"):
        kp.fit_shrinking(pruned_convnet(), x, y, initial_epoch=1)
    with pytest.raises(ValueError, match=r"takes a Sequential or Functional model"):
        kp.fit_shrinking("model", x, y)


@pytest.mark.backends("tensorflow")
def test_fit_shrinking_refuses_a_tf_distribute_strategy():
    import tensorflow as tf

    x, y = data()
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        distributed = pruned_convnet()
    with pytest.raises(ValueError, match=r"doesn't support tf.distribute strategies.*Received: "
                       r"a model training under OneDeviceStrategy. Use `keras.distribution"):
        kp.fit_shrinking(distributed, x, y)


@pytest.mark.backends("jax")
def test_fit_shrinking_refuses_model_parallel():
    # DataParallel works (tests/test_keras_distribution.py); ModelParallel's
    # LayoutMap could not shard a shrunk width that the mesh doesn't divide.
    x, y = data()
    pruned = pruned_convnet()
    mesh = keras.distribution.DeviceMesh((1, 1), ["batch", "model"],
                                         keras.distribution.list_devices()[:1])
    keras.distribution.set_distribution(keras.distribution.ModelParallel(
        layout_map=keras.distribution.LayoutMap(mesh), batch_dim_name="batch"))
    try:
        with pytest.raises(ValueError, match=r"Received: a model training under ModelParallel, "
                           r"whose LayoutMap shards.*then `kp.shrink` once at the end"):
            kp.fit_shrinking(pruned, x, y)
    finally:
        keras.distribution.set_distribution(None)


def test_fit_shrinking_removes_heads_and_neurons_between_phases():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 8))
    x = inputs + L.MultiHeadAttention(4, 2, name="mha")(inputs, inputs)
    x = x + L.Dense(8, name="ff2")(L.Dense(16, activation="gelu", name="ff1")(x))
    model = keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling1D()(x)))
    pruned = kp.prune_low_magnitude(model, kp.PolynomialDecay(0.0, 0.5, 0, 4, frequency=2),
                                    structure="channel")
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 6, 8)).astype("float32"), rng.integers(0, 3, 16)
    result = kp.fit_shrinking(pruned, x, y, batch_size=8, epochs=3, shrink_every=1,
                              verbose=0)
    small = kp.strip_pruning(result.model)  # already shrunk after the last phase
    # Half of the original 4 heads and 16 neurons: the fraction is of the
    # widths before any shrink, not of the current ones.
    assert small.get_layer("mha").num_heads == 2
    assert small.get_layer("ff1").units == 8
    parameters = [p["parameters"] for p in result.phases]
    assert parameters == sorted(parameters, reverse=True) and parameters[0] > parameters[-1]
