import json

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import registry
from conftest import assert_close, assert_equal

L = keras.layers

# (layer factory, input shape, number of prunable weights)
PRUNABLE = [
    (lambda: L.Dense(3), (2, 4), 1),
    (lambda: L.EinsumDense("ab,bc->ac", 3), (2, 4), 1),
    (lambda: L.Conv1D(2, 3), (1, 5, 2), 1),
    (lambda: L.Conv2D(2, 3), (1, 5, 5, 2), 1),
    (lambda: L.Conv3D(2, 3), (1, 5, 5, 5, 2), 1),
    (lambda: L.Conv1DTranspose(2, 3), (1, 5, 2), 1),
    (lambda: L.Conv2DTranspose(2, 3), (1, 5, 5, 2), 1),
    (lambda: L.Conv3DTranspose(2, 3), (1, 5, 5, 5, 2), 1),
    (lambda: L.DepthwiseConv2D(3), (1, 5, 5, 2), 1),
    (lambda: L.SeparableConv1D(2, 3), (1, 5, 2), 1),  # pointwise only
    (lambda: L.SeparableConv2D(2, 3), (1, 5, 5, 2), 1),
    (lambda: L.Embedding(10, 3), (2, 4), 1),
]


@pytest.mark.parametrize("make,shape,count", PRUNABLE)
def test_every_prunable_type_gets_masks_and_keeps_outputs(make, shape, count):
    layer = make()
    wrapper = kp.PruningWrapper(layer)
    x = np.random.default_rng(0).integers(0, 9, shape) if isinstance(
        layer, L.Embedding) else np.random.default_rng(0).standard_normal(shape)
    x = x.astype("int32" if isinstance(layer, L.Embedding) else "float32")
    out = wrapper(x)
    assert len(wrapper.masks) == count
    for w, m in zip(wrapper.pruned_weights, wrapper.masks):
        assert m.shape == w.shape and not m.trainable
        assert "bias" not in w.name
    assert_close(out, layer(x), rtol=1e-6)


def test_biases_and_norm_parameters_are_never_pruned():
    dense = L.Dense(3)
    dense.build((None, 4))
    assert [w.name for w in registry.get_prunable_weights(dense)] == ["kernel"]
    assert not registry.is_prunable(L.BatchNormalization())
    assert not registry.is_prunable(L.LayerNormalization())


class Scaled(L.Layer):
    """A custom layer that opts in to pruning."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 2), name="w")
        self.b = self.add_weight(shape=(2,), name="b")

    def call(self, x):
        return x @ self.w + self.b

    def get_prunable_weights(self):
        return [self.w]


def test_custom_layer_opts_in_with_get_prunable_weights():
    wrapper = kp.PruningWrapper(Scaled())
    wrapper(np.ones((1, 3), "float32"))
    assert [w.name for w in wrapper.pruned_weights] == ["w"]


def test_forward_pass_reads_weight_times_mask_and_leaves_user_constraint():
    layer = L.Dense(2, use_bias=False, kernel_constraint=keras.constraints.NonNeg())
    wrapper = kp.PruningWrapper(layer)
    wrapper.build((None, 2))
    kernel = wrapper.pruned_weights[0]
    kernel.assign([[1.0, 2.0], [3.0, 4.0]])
    wrapper.masks[0].assign([[1.0, 0.0], [1.0, 1.0]])
    # The pruned weight's stored value (2.0) doesn't reach the output.
    assert_equal(wrapper(np.array([[1.0, 1.0]], "float32")), [[4.0, 4.0]])
    assert isinstance(kernel.constraint, keras.constraints.NonNeg)  # the user's, untouched
    wrapper.settle()
    assert_equal(kernel.numpy(), [[1.0, 0.0], [3.0, 4.0]])
    assert not np.signbit(kernel.numpy()).any()  # +0.0, never -0.0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_masks_take_one_byte_per_weight_and_float_masks_of_old_files_load(dtype):
    wrapper = kp.PruningWrapper(L.Dense(3, dtype=dtype))
    wrapper.build((None, 4))
    (mask,) = wrapper.masks
    assert mask.dtype == "bool" and np.asarray(mask.numpy()).itemsize == 1
    # Files written before masks took one byte hold float32 masks (then
    # the step): loading casts them.
    store = {}
    wrapper.save_own_variables(store)
    key = next(k for k, v in store.items() if np.shape(v) == (4, 3) and v.dtype == "bool")
    old = np.zeros((4, 3), "float32")
    old[0] = 1.0
    store[key] = old
    wrapper.load_own_variables(store)
    assert mask.dtype == "bool"
    assert_equal(mask.numpy(), old.astype(bool))
    out = wrapper(np.ones((1, 4), dtype))
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    kernel = np.asarray(keras.ops.convert_to_numpy(
        keras.ops.cast(wrapper.pruned_weights[0].value, "float32")))
    assert_close(keras.ops.cast(out, "float32"), kernel[0][None], rtol=1e-2)


def test_weight_regularizer_sees_only_the_kept_weights():
    layer = L.Dense(2, use_bias=False, kernel_regularizer=keras.regularizers.L1(1.0))
    wrapper = kp.PruningWrapper(layer)
    wrapper.build((None, 2))
    wrapper.pruned_weights[0].assign([[1.0, -2.0], [3.0, 4.0]])
    wrapper.masks[0].assign([[1.0, 0.0], [1.0, 1.0]])
    assert float(keras.ops.convert_to_numpy(keras.ops.sum(wrapper.losses))) == 8.0
    # The layer's config keeps the user's regularizer, not ours.
    assert isinstance(kp.strip_pruning(wrapper).kernel_regularizer, keras.regularizers.L1)


def test_state_updated_inside_the_wrapped_layer_is_kept():
    """BatchNormalization statistics and dropout seeds change inside a
    composite layer's call; the substitution must not swallow them."""

    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = L.Dense(3)
            self.norm = L.BatchNormalization()
            self.drop = L.Dropout(0.5)

        def build(self, shape):
            self.dense.build(shape)
            self.norm.build(shape[:-1] + (3,))

        def call(self, x, training=None):
            return self.drop(self.norm(self.dense(x), training=training), training=training)

    wrapper = kp.PruningWrapper(Block())
    wrapper.build((None, 4))
    wrapper.arm()
    x = np.random.default_rng(0).standard_normal((16, 4)).astype("float32")
    before = wrapper.layer.norm.moving_mean.numpy().copy()
    first = keras.ops.convert_to_numpy(wrapper(x, training=True))
    assert not np.allclose(wrapper.layer.norm.moving_mean.numpy(), before)
    second = keras.ops.convert_to_numpy(wrapper(x, training=True))
    assert not np.array_equal(first == 0, second == 0)  # a new dropout mask


def test_default_schedule_is_fresh_per_wrapper():
    a, b = kp.PruningWrapper(L.Dense(2)), kp.PruningWrapper(L.Dense(2))
    assert a.pruning_schedule is not b.pruning_schedule
    assert a.pruning_schedule == kp.ConstantSparsity(0.5, begin_step=0)


def test_config_round_trip_through_json():
    schedule = kp.PolynomialDecay(0.1, 0.7, 3, 30, power=2, frequency=3)
    wrapper = kp.PruningWrapper(L.Dense(4, name="d"), schedule, scope="global", name="w")
    blob = json.dumps(keras.saving.serialize_keras_object(wrapper))
    restored = keras.saving.deserialize_keras_object(json.loads(blob))
    assert isinstance(restored, kp.PruningWrapper)
    assert restored.get_config() == wrapper.get_config()
    assert restored.pruning_schedule == schedule and restored.scope == "global"
    assert restored.layer.name == "d" and restored.name == "w"


def test_callback_config_round_trip():
    cb = kp.ProgressivePruningCallback(log_dir="/tmp/x")
    again = kp.ProgressivePruningCallback.from_config(json.loads(json.dumps(cb.get_config())))
    assert again.get_config() == {"log_dir": "/tmp/x"}


def test_wrapping_twice_is_refused():
    wrapper = kp.PruningWrapper(L.Dense(2, name="d"))
    with pytest.raises(ValueError, match=r"Layer 'd' is already wrapped in a PruningWrapper\. "
                       r"Received: layer='prune_low_magnitude_d'\. Wrap each layer once"):
        kp.PruningWrapper(wrapper)


def test_unprunable_layer_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"Layer 'bn' of type BatchNormalization can't be "
                       r"pruned\. Prunable types: .*Dense.*define `get_prunable_weights\(\)`"):
        kp.PruningWrapper(L.BatchNormalization(name="bn"))


def test_non_layer_is_refused():
    with pytest.raises(ValueError, match=r"`layer` must be a `keras.layers.Layer`\. "
                       r"Received: layer='dense' of type str"):
        kp.PruningWrapper("dense")


def test_bad_scope_and_schedule():
    with pytest.raises(ValueError, match=r"`scope` must be one of \('layer', 'global'\)\. "
                       r"Received: scope='model'"):
        kp.PruningWrapper(L.Dense(2), scope="model")
    with pytest.raises(ValueError, match=r"`pruning_schedule` must be a "
                       r"`keras_progprune.PruningSchedule`.*Received: pruning_schedule=0.5"):
        kp.PruningWrapper(L.Dense(2), pruning_schedule=0.5)


def test_custom_layer_returning_no_weights_is_refused_at_build():
    class Empty(L.Layer):
        def get_prunable_weights(self):
            return []

    wrapper = kp.PruningWrapper(Empty(name="empty"))
    with pytest.raises(ValueError, match=r"Layer 'empty' of type Empty has no prunable "
                       r"weights after build; nothing to prune\. Leave it unwrapped "
                       r"\(`exclude`\), or give its class a `build\(\)`"):
        wrapper.build((None, 2))
