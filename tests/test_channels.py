"""Channel pruning: grouping, masks, shrink, reports and errors."""

import os
import warnings

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import engine
from keras_progprune import models
from keras_progprune import structures
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.channels import graph as graph_lib
from keras_progprune.channels import macs as macs_lib
from keras_progprune import rules
from conftest import assert_close, assert_equal, served_outputs

L = keras.layers


def _out(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def prune_fit(model, x, y, sparsity=0.5, scope="global", steps=2, classes=10):
    """Channel-prunes `model` at `sparsity` and trains it for `steps` steps."""
    pruned = kp.prune_low_magnitude(
        model, kp.ConstantSparsity(sparsity, 0, frequency=1), scope=scope,
        structure="channel")
    pruned.compile(keras.optimizers.Adam(1e-3),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   run_eagerly=True)
    pruned.fit(x, y, batch_size=max(1, len(x) // steps), epochs=1, verbose=0,
               callbacks=[kp.ProgressivePruningCallback()])
    return pruned


def check_shrink(pruned, x, atol=1e-5):
    small = kp.shrink(pruned)
    expected, got = _out(pruned, x), _out(small, x)
    assert_close(got, expected, atol=atol, rtol=1e-4)
    assert small.count_params() < pruned.count_params()
    assert not any(isinstance(l, kp.PruningWrapper) for l in small.layers)
    return small


def images(n, shape, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype("float32"), rng.integers(0, classes, n)


# The three largest (15-20M weights) get their masks without training, to
# keep the suite short; the others train two steps.
# The CIFAR models are slow (TensorFlow only); the LeNets run on every backend.
_SLOW = pytest.mark.slow
ZOO = [("lenet_300_100", (28, 28, 1), True), ("lenet5", (28, 28, 1), True),
       pytest.param("vgg_like", (32, 32, 3), False, marks=_SLOW),
       pytest.param("vgg19", (32, 32, 3), False, marks=_SLOW),
       pytest.param("resnet18", (8, 8, 3), False, marks=_SLOW),
       pytest.param("resnet20", (8, 8, 3), True, marks=_SLOW),
       pytest.param("resnet32", (8, 8, 3), True, marks=_SLOW)]


@pytest.mark.parametrize("name,shape,train", ZOO)
def test_zoo_models_prune_and_shrink_with_equal_outputs(name, shape, train):
    x, y = images(4, shape)
    model = models.get_model(name, input_shape=shape, num_classes=10)
    if train:
        pruned = prune_fit(model, x, y)
    else:
        pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0), scope="global",
                                        structure="channel")
        (group,) = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
        group.update(0.5)
    small = check_shrink(pruned, x)
    report = kp.sparsity_report(pruned)
    assert report["macs"]["shrunk"] < 0.5 * report["macs"]["dense"]
    assert macs_lib.count(graph_lib.analyze(small)) == report["macs"]["shrunk"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV2", "DenseNet121", "EfficientNetB0"])
def test_applications_shrink_at_half_the_channels(name):
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None)
    x, y = images(2, (32, 32, 3))
    pruned = prune_fit(model, x, y)
    groups = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
    assert 0.49 < 1 - groups[0].kept / groups[0].size < 0.51
    check_shrink(pruned, x)


def _residual():
    inputs = keras.Input((6, 6, 3))
    stem = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    a = L.Conv2D(8, 3, padding="same", name="branch_a")(stem)
    a = L.BatchNormalization(name="bn_a")(a)
    b = L.Conv2D(8, 1, name="branch_b")(stem)
    merged = L.Add(name="merge")([a, b])
    x = L.ReLU()(merged) + stem  # an operation node joins the stem too
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(3, name="head")(x))


def test_residual_branches_drop_the_same_channels():
    x, y = images(4, (6, 6, 3), classes=3)
    pruned = prune_fit(_residual(), x, y, scope="layer")
    graph = graph_lib.analyze(pruned)
    (space,) = [s for s in graph.prunable_spaces()]
    assert sorted(l.name for l in space.producers) == ["branch_a", "branch_b", "stem"]
    kept = {}
    for wrapper in wrapper_lib.collect_wrappers(pruned):
        if isinstance(wrapper.layer, L.Conv2D):
            kept[wrapper.layer.name] = np.flatnonzero(
                wrapper.masks[0].numpy().reshape(-1, 8).max(axis=0))
    assert len(kept["stem"]) == 4
    assert_equal(kept["branch_a"], kept["stem"])
    assert_equal(kept["branch_b"], kept["stem"])
    small = check_shrink(pruned, x)
    assert small.get_layer("branch_b").filters == 4
    assert small.get_layer("bn_a").gamma.shape == (4,)


def test_concatenate_offsets_and_flatten_rows():
    inputs = keras.Input((5, 5, 2))
    a = L.Conv2D(3, 3, name="a")(inputs)
    b = L.Conv2D(4, 3, name="b")(inputs)
    x = L.Concatenate(name="cat")([a, b])
    x = L.BatchNormalization(name="bn")(x)
    x = L.Flatten()(x)                    # 3x3 positions x 7 channels
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    x_data, _ = images(3, (5, 5, 2))
    model(x_data)
    # Remove a's channel 1 and b's channel 2 (channel 3 + 2 = 5 of the concat).
    for name, channel in (("a", 1), ("b", 2)):
        kernel, bias = model.get_layer(name).get_weights()
        kernel[..., channel] = 0.0
        bias[channel] = 0.0
        model.get_layer(name).set_weights([kernel, bias])
    bn = model.get_layer("bn")
    gamma, beta, mean, var = bn.get_weights()
    gamma[[1, 5]] = 0.0
    beta[[1, 5]] = 0.0
    bn.set_weights([gamma, beta, mean + np.arange(7), var])
    small = kp.shrink(model)
    assert_close(_out(small, x_data), _out(model, x_data), atol=1e-5)
    assert small.get_layer("a").filters == 2 and small.get_layer("b").filters == 3
    assert_equal(small.get_layer("bn").get_weights()[2],
                                  (mean + np.arange(7))[[0, 2, 3, 4, 6]])
    kept_rows = [p * 7 + c for p in range(9) for c in (0, 2, 3, 4, 6)]
    assert_equal(small.get_layer("head").kernel.numpy(),
                                  model.get_layer("head").kernel.numpy()[kept_rows])


def _squeeze_excite():
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(8, 3, padding="same", activation="swish", name="conv")(inputs)
    s = L.GlobalAveragePooling2D()(x)
    s = L.Reshape((1, 1, 8), name="se_reshape")(s)
    s = L.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)
    x = L.Multiply(name="se_scale")([x, s])
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.SeparableConv2D(6, 3, padding="same", name="sep")(x)
    x = L.Conv2DTranspose(5, 2, strides=2, name="up")(x)
    x = L.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, L.Dense(3, name="head")(x))


def test_squeeze_excite_depthwise_separable_and_transposed_layers_shrink():
    x, y = images(4, (6, 6, 3), classes=3)
    pruned = prune_fit(_squeeze_excite(), x, y, scope="layer")
    small = check_shrink(pruned, x)
    assert small.get_layer("conv").filters == 4
    assert small.get_layer("se_reshape").target_shape == (1, 1, 4)
    assert small.get_layer("se_reduce").filters == 2
    assert small.get_layer("sep").filters == 3 and small.get_layer("up").filters == 2  # round(2.5)


def test_pruned_channels_output_exact_zeros_under_momentum():
    inputs = keras.Input((4, 4, 2))
    x = L.Conv2D(6, 3, padding="same", name="conv")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    features = L.ReLU(name="features")(x)
    x = L.GlobalAveragePooling2D()(features)
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel")
    pruned.compile(keras.optimizers.SGD(0.5, momentum=0.9), "mse")
    data_x, _ = images(16, (4, 4, 2))
    pruned.fit(data_x, np.ones((16, 2)), batch_size=4, epochs=2, verbose=0,
               callbacks=[kp.ProgressivePruningCallback()])
    conv = pruned.get_layer("prune_low_magnitude_conv")
    gone = np.flatnonzero(conv.masks[0].numpy().reshape(-1, 6).max(axis=0) == 0)
    assert len(gone) == 3
    bn = pruned.get_layer("prune_low_magnitude_bn")
    assert np.all(bn.layer.gamma.numpy()[gone] == 0) and np.all(bn.layer.beta.numpy()[gone] == 0)
    probe = keras.Model(pruned.inputs, pruned.get_layer("features").output)
    assert np.all(_out(probe, data_x)[..., gone] == 0)


def test_global_scope_counts_channels_and_layer_scope_each_space():
    model = models.lenet5()
    for scope, expected in (("global", {"total": 285}), ("layer", {"conv1": 10, "conv2": 25,
                                                                  "fc1": 250})):
        pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0), scope=scope,
                                        structure="channel")
        (group,) = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
        assert group.size == 20 + 50 + 500
        assert group.update(0.5) == 285
        report = kp.sparsity_report(pruned)["layers"]
        if scope == "layer":
            assert {k: report[k]["channels"]["kept"] for k in expected} == expected
        assert report["logits"]["channels"] == {"kept": 10, "total": 10,
                                                "left_whole": "reaches a model output"}


def test_unstructured_dead_units_are_removed_and_constants_folded():
    model = models.lenet_300_100()
    x, _ = images(5, (28, 28, 1))
    fc1 = model.get_layer("fc1")
    kernel, bias = fc1.get_weights()
    kernel[:, :200] = 0.0                 # 200 units left with their bias alone
    bias[:100] = np.abs(bias[:100]) + 0.5  # 100 of them output a positive constant
    fc1.set_weights([kernel, bias])
    fc2 = model.get_layer("fc2")
    kernel2, bias2 = fc2.get_weights()
    kernel2[:, :10] = 0.0
    bias2[:10] = -1.0                     # relu(-1) = 0: dead
    fc2.set_weights([kernel2, bias2])
    small = kp.shrink(model)
    assert small.get_layer("fc1").units == 100 and small.get_layer("fc2").units == 90
    assert_close(_out(small, x), _out(model, x), atol=1e-5)


def test_shrunk_model_saves_loads_and_serves_without_this_package(tmp_path):
    x, y = images(4, (28, 28, 1))
    small = kp.shrink(prune_fit(models.lenet5(), x, y))
    path = os.path.join(tmp_path, "small.keras")
    small.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects
    assert_close(_out(loaded, x), _out(small, x), atol=1e-6)
    served = served_outputs(small, x, os.path.join(tmp_path, "saved_model"))
    assert_close(served, _out(small, x), atol=1e-5)


def test_channel_pruned_model_round_trips_and_resumes(tmp_path):
    x, y = images(4, (28, 28, 1))
    pruned = prune_fit(models.lenet5(), x, y)
    path = os.path.join(tmp_path, "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    wrapper = wrapper_lib.collect_wrappers(loaded)[0]
    assert wrapper.structure == structures.Channel()
    assert_close(_out(loaded, x), _out(pruned, x), atol=1e-6)
    loaded.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loaded.fit(x, y, verbose=0, callbacks=[kp.ProgressivePruningCallback()])
    check_shrink(loaded, x)


def test_channel_structure_config_round_trip():
    channel = structures.get("channel")
    assert channel == kp.Channel() and structures.get(" Channel ") == channel
    assert structures.get(keras.saving.serialize_keras_object(channel)) == channel
    wrapper = kp.PruningWrapper(L.BatchNormalization(), structure="channel")
    config = wrapper.get_config()
    again = kp.PruningWrapper.from_config(config)
    assert again.structure == channel and again.get_config() == config
    wrapper.build((None, 4))
    assert [w.name for w in wrapper.pruned_weights] == ["gamma", "beta"]


def test_layer_norm_sigmoid_and_unknown_layers_leave_their_channels():
    inputs = keras.Input((6,))
    a = L.Dense(8, name="a")(inputs)
    a = L.LayerNormalization(name="ln")(a)
    b = L.Dense(8, activation="sigmoid", name="b")(a)
    c = L.Dense(8, name="c")(b)
    c = L.UnitNormalization(name="unit")(c)
    d = L.Dense(8, activation="relu", name="d")(c)
    model = keras.Model(inputs, L.Dense(2, name="head")(d))
    reasons = graph_lib.analyze(model).frozen_reasons()
    assert "LayerNormalization 'ln' normalizes across channels" in reasons["a"]
    assert "reaches layer 'c' after the activation 'sigmoid' of layer 'b' gives f(0) = 0.5" \
        in reasons["b"]
    assert "layer 'unit' of type UnitNormalization is not known to the channel grouping" \
        in reasons["c"]
    assert reasons["head"] == "reaches a model output"
    assert reasons["model input"] == "model input"
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0), structure="channel")
    wrapped = [w.layer.name for w in wrapper_lib.collect_wrappers(pruned)]
    assert wrapped == ["d"]
    report = kp.sparsity_report(pruned)
    assert report["layers"]["d"]["channels"] == {"kept": 8, "total": 8}
    assert report["layers"]["a"]["channels"]["left_whole"] == reasons["a"]
    assert "Channels that structure='channel' leaves whole: a (LayerNormalization 'ln' " \
        "normalizes across channels)" in str(report)


def test_macs_count_lenet5():
    graph = graph_lib.analyze(models.lenet5())
    # conv1 24*24*25*20 + conv2 8*8*25*20*50 + fc1 800*500 + logits 500*10
    assert macs_lib.count(graph) == 288_000 + 1_600_000 + 400_000 + 5_000


def test_channel_errors_name_the_problem_and_the_fix():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = kp.PruningWrapper(L.Dense(4), kp.ConstantSparsity(0.5, 0),
                                        structure="channel")
            self.out = L.Dense(2)

        def call(self, x):
            return self.out(self.fc(x))

    with pytest.raises(ValueError, match=r"structure='channel' can't prune the subclassed "
                                         r"model .* Pass a Sequential or Functional model"):
        kp.prune_low_magnitude(Sub(), structure="channel")
    sub = Sub()
    sub.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"structure='channel' reads the coupled channels "
                                         r"from a model's graph, so its wrappers must sit in "
                                         r"a Sequential or Functional model; in model "
                                         r"'sub\w*' of type Sub \(subclassed\) the wrappers "
                                         r"of layers \['dense\w*'\] are in no such graph"):
        sub.fit(np.ones((8, 3)), np.ones((8, 2)), batch_size=2, verbose=0,
                callbacks=[kp.ProgressivePruningCallback()])
    with pytest.raises(ValueError, match=r"Layer 'emb' of type Embedding has no output "
                                         r"channels to prune: structure='channel' takes"):
        kp.PruningWrapper(L.Embedding(10, 4, name="emb"), structure="channel")
    head_only = keras.Sequential([keras.Input((3,)), L.Dense(2, name="only")])
    with pytest.raises(ValueError, match=r"structure='channel' found no channel that can be "
                                         r"removed in model .*'only': reaches a model output"):
        kp.prune_low_magnitude(head_only, structure="channel")
    with pytest.raises(ValueError, match=r"`shrink` takes a Sequential or Functional "
                                         r"keras.Model .* Received: model='model.keras' of "
                                         r"type str\. Pass the model"):
        kp.shrink("model.keras")
    with pytest.raises(ValueError, match=r"A subclassed model has no graph to rebuild"):
        kp.shrink(Sub())
    pruned = kp.prune_low_magnitude(models.lenet5(), structure="channel")
    with pytest.raises(ValueError, match=r"Channel-structured wrappers are grouped from the "
                                         r"model's graph: pass the model"):
        engine.build_groups(wrapper_lib.collect_wrappers(pruned))
    (group,) = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
    with pytest.raises(ValueError, match=r"`scores` must hold one tensor per weight of "
                                         r"channel groups \(layer scope\) .*expected\. "
                                         r"Received 1\."):
        group.update(0.5, scores=[np.ones(3)])


def test_shrink_of_nothing_warns_and_returns_a_plain_copy():
    model = models.lenet_300_100()
    with pytest.warns(UserWarning, match=r"shrink found no channel of model 'lenet_300_100' "
                                         r"that can be removed .* returns a plain copy"):
        copy = kp.shrink(model)
    assert copy is not model and copy.count_params() == model.count_params()


def test_channel_masks_refuse_non_finite_weights():
    pruned = kp.prune_low_magnitude(models.lenet5(), structure="channel")
    (group,) = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
    wrapper = wrapper_lib.collect_wrappers(pruned)[0]
    kernel = wrapper.pruned_weights[0]
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.raises(ValueError, match=r"Can't compute channel masks for channel groups "
                                         r"\(layer scope\): some weights or scores are NaN or Inf"):
        group.update(0.5)
    assert np.all(wrapper.masks[0].numpy() == 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        structures.get("channel")


def test_excluding_a_member_leaves_its_group_whole():
    pruned = kp.prune_low_magnitude(_residual(), kp.ConstantSparsity(0.5, 0), scope="layer",
                                    structure="channel", exclude=["bn_a"])
    (group,) = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
    assert group.spaces == [] and group.update(0.5) == 0
    pruned.compile("sgd", "mse")
    x, _ = images(4, (6, 6, 3))
    history = pruned.fit(x, np.zeros((4, 3)), verbose=0,
                         callbacks=[kp.ProgressivePruningCallback()])
    assert history.history["sparsity"] == [0.0]
    assert all(np.all(m.numpy() == 1) for w in wrapper_lib.collect_wrappers(pruned)
               for m in w.masks)


@keras.saving.register_keras_serializable(package="tests")
class _ScaledDense(L.Layer):
    """A user's own Dense-like layer: `2 * (x @ kernel + bias)`."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, shape):
        self.kernel = self.add_weight(shape=(shape[-1], self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="random_normal",
                                    name="bias")

    def call(self, x):
        return 2.0 * (keras.ops.matmul(x, self.kernel) + self.bias)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_a_registered_rule_makes_a_custom_layer_prunable_by_channel(monkeypatch):
    def model():
        inputs = keras.Input((5,))
        x = _ScaledDense(8, name="mine")(inputs)
        x = L.ReLU()(x)
        return keras.Model(inputs, L.Dense(2, name="head")(_ScaledDense(6, name="mid")(x)))

    reasons = graph_lib.analyze(model()).frozen_reasons()
    assert ("layer 'mine' of type _ScaledDense is not known to the channel grouping"
            in reasons.values())
    monkeypatch.setitem(rules.base._RULES, _ScaledDense, kp.DenseRule())  # undone after
    pruned = kp.prune_low_magnitude(model(), kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel")
    callback = kp.ProgressivePruningCallback()
    callback.set_model(pruned)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)
    small = kp.shrink(pruned)
    assert small.get_layer("mine").units == 4 and small.get_layer("mid").units == 3
    x = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    assert_close(small(x), kp.strip_pruning(pruned)(x), atol=1e-5)
    # MACs are counted by the rule: 5*4 + 4*3 + 3*2 after, 5*8 + 8*6 + 6*2 before.
    assert kp.sparsity_report(small)["macs"]["dense"] == 5 * 4 + 4 * 3 + 3 * 2
    assert kp.sparsity_report(pruned)["macs"]["dense"] == 5 * 8 + 8 * 6 + 6 * 2
    assert "_ScaledDense" in rules.channel_layer_names()
