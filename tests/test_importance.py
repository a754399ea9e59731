"""The importance hook: `ProgressivePruningCallback(importance=...)` and the
mask updaters' protocol (`engine.MaskUpdater`, `engine.register_updaters`)."""

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import engine
from keras_progprune import importance as importance_lib
from keras_progprune import wrapper as wrapper_lib
from keras_progprune import scores as scores_lib
from conftest import assert_close, mlp, to_numpy

L = keras.layers


def _ffn(units=8):
    inputs = keras.Input((4,))
    hidden = L.Dense(units, activation="relu", name="up")(inputs)
    return keras.Model(inputs, L.Dense(2, name="down")(hidden))


def _update_once(model, importance):
    callback = kp.ProgressivePruningCallback(importance=importance)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)
    return callback


def _kept_units(pruned, name="up"):
    wrapper = pruned.get_layer(f"prune_low_magnitude_{name}")
    return np.flatnonzero(to_numpy(wrapper.masks[0]).any(axis=0))


class _Fixed(importance_lib.Importance):
    """Channel scores that rank the channels in a chosen order."""

    def __init__(self, order):
        self.order = order
        self.seen = []

    def channel_scores(self, model, probes):
        self.seen = [p.label for p in probes]
        return [np.asarray(self.order, np.float32)]


def test_a_custom_importance_decides_which_channels_stay():
    pruned = kp.prune_low_magnitude(_ffn(), kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel")
    order = [7, 0, 6, 1, 5, 2, 4, 3]
    importance = _Fixed(order)
    _update_once(pruned, importance)
    assert importance.seen == ["space 1"]
    assert list(_kept_units(pruned)) == [0, 2, 4, 6]  # the four highest scores
    small = kp.shrink(pruned)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype("float32")
    assert small.get_layer("up").units == 4
    assert_close(small(x), kp.strip_pruning(pruned)(x), atol=1e-5)


def test_activation_importance_keeps_the_most_active_units_not_the_largest():
    model = _ffn()
    kernel, bias = model.get_layer("up").get_weights()
    kernel[:, :4] *= 10.0   # the largest weights ...
    bias[:4] = -1e3         # ... never active after the relu
    model.get_layer("up").set_weights([kernel, bias])
    x = np.random.default_rng(1).standard_normal((32, 4)).astype("float32")
    schedule = kp.ConstantSparsity(0.5, 0, frequency=1)
    by_magnitude = kp.prune_low_magnitude(model, schedule, structure="channel")
    _update_once(by_magnitude, None)
    assert list(_kept_units(by_magnitude)) == [0, 1, 2, 3]
    by_activation = kp.prune_low_magnitude(model, schedule, structure="channel")
    _update_once(by_activation, kp.importance.Activation([(x, None)], batches=1))
    assert list(_kept_units(by_activation)) == [4, 5, 6, 7]


def test_activation_importance_in_fit_prunes_heads_and_neurons():
    inputs = keras.Input((6, 8))
    x = inputs + L.MultiHeadAttention(4, 2, name="mha")(inputs, inputs)
    x = x + L.Dense(8, name="ff2")(L.Dense(16, activation="gelu", name="ff1")(x))
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(x)))
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel")
    pruned.compile("adam", "mse")
    data = np.random.default_rng(2).standard_normal((16, 6, 8)).astype("float32")
    calibration = [(data[:8], None)]
    pruned.fit(data, np.zeros((16, 2)), batch_size=8, verbose=0, callbacks=[
        kp.ProgressivePruningCallback(importance=kp.importance.Activation(calibration))])
    channels = kp.sparsity_report(pruned)["layers"]["mha"]["channels"]["width"]
    assert channels == {"mha/heads": {"kept": 2, "total": 4}}
    small = kp.shrink(pruned)
    assert small.get_layer("mha").num_heads == 2 and small.get_layer("ff1").units == 8
    assert_close(small(data), kp.strip_pruning(pruned)(data), atol=1e-5)


def test_taylor_importance_is_gradual_snip_for_unstructured_masks():
    model = mlp()
    x = np.random.default_rng(3).standard_normal((16, 5)).astype("float32")
    y = np.arange(16) % 3
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1))
    weights = [w for wr in wrapper_lib.collect_wrappers(pruned) for w in wr.pruned_weights]
    expected = scores_lib.snip_scores(pruned, loss, [(x, y)], weights)
    _update_once(pruned, kp.importance.Taylor([(x, y)], loss))
    for wrapper in wrapper_lib.collect_wrappers(pruned):
        position = [id(w) for w in weights].index(id(wrapper.pruned_weights[0]))
        score = to_numpy(expected[position]).ravel()
        mask = to_numpy(wrapper.masks[0]).ravel().astype(bool)
        assert mask.sum() == score.size // 2
        assert score[mask].min() >= score[~mask].max()


def test_mask_updaters_follow_one_protocol():
    pruned = kp.prune_low_magnitude(_ffn(), kp.ConstantSparsity(0.5, 0),
                                    structure="channel")
    plain = kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 0))
    updaters = (engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
                + engine.build_groups(wrapper_lib.collect_wrappers(plain), plain))
    for updater in updaters:
        assert isinstance(updater, engine.MaskUpdater)
        assert updater.update(0.5) == updater.kept <= updater.size
        assert len(updater.weights) >= 1
        assert isinstance(updater.importance, importance_lib.Magnitude)
    assert kp.structures.Channel().spec == "channel"
    assert kp.structures.MByN(2, 4).spec == "2:4"
    assert kp.structures.Unstructured().spec == "unstructured"


def test_importance_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"Importance 'taylor' needs `data` and `loss`: "
                                         r"build it with kp.importance.get\('taylor', "
                                         r"data=\.\.\., loss=\.\.\.\) and pass the result\. "
                                         r"Received: importance='taylor'"):
        kp.ProgressivePruningCallback(importance="taylor")
    with pytest.raises(ValueError, match=r"`importance` must be None, one of \['activation', "
                                         r".*\], or a keras_progprune.importance.Importance .* "
                                         r"Received: importance='tailor'"):
        kp.ProgressivePruningCallback(importance="tailor")
    with pytest.raises(ValueError, match=r"pass `data` .* Received: data=None"):
        kp.importance.Activation(None)
    with pytest.raises(ValueError, match=r"`batches` must be a positive int or None. "
                                         r"Received: batches=0"):
        kp.importance.Activation([], batches=0)
    with pytest.raises(ValueError, match=r"`batches` must be a positive int. "
                                         r"Received: batches=None"):
        kp.importance.Taylor([], "mse", batches=None)
    with pytest.raises(ValueError, match=r"an iterator or generator can be read only "
                                         r"once\. Pass a list of batches .* Received: data "
                                         r"of type generator"):
        kp.importance.Activation(b for b in [(np.ones((2, 4)), None)])
    with pytest.raises(ValueError, match=r"read only once"):
        kp.importance.Taylor(iter([]), "mse")
    with pytest.raises(ValueError, match=r"Taylor importance needs gradients .* "
                                         r"Received: data=\[\], loss=None"):
        kp.importance.Taylor([], None)
    unstructured = kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 0, frequency=1))
    with pytest.raises(ValueError, match=r"Activation importance scores whole channels .* "
                                         r"Use it with structure='channel'"):
        _update_once(unstructured, kp.importance.Activation([(np.ones((2, 5)), None)]))
    channel = kp.prune_low_magnitude(_ffn(), kp.ConstantSparsity(0.5, 0, frequency=1),
                                     structure="channel")
    with pytest.raises(ValueError, match=r"`data` gave no batch"):
        _update_once(channel, kp.importance.Activation([]))
    with pytest.raises(ValueError, match=r"channel_scores must return one score per "
                                         r"channel of each probe it is given: sizes \[8\] "
                                         r"expected. Received sizes \[2\]"):
        _update_once(channel, _Fixed([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"can't be serialized: the importance holds its "
                                         r"data"):
        kp.ProgressivePruningCallback(importance=_Fixed([1])).get_config()


def test_callback_config_round_trip_with_magnitude():
    callback = kp.ProgressivePruningCallback(log_dir="logs", importance="magnitude")
    again = kp.ProgressivePruningCallback.from_config(callback.get_config())
    assert again.log_dir == "logs"
    assert isinstance(again.importance, importance_lib.Magnitude)
    assert repr(importance_lib.get(None)) == "Magnitude()"
    assert repr(kp.importance.Activation([], batches=2)) == "Activation(batches=2)"
    assert repr(kp.importance.Taylor([], "mse")) == "Taylor(batches=1)"


class _Short(importance_lib.Importance):
    """Per-weight scores, one tensor short."""

    def weight_scores(self, model, weights):
        return [keras.ops.abs(w) for w in weights][1:]


def test_per_weight_scores_must_match_the_weights_and_layer_rules_say_what_is_missing():
    pruned = kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 0, frequency=1))
    with pytest.raises(ValueError, match=r"_Short\(\)\.weight_scores must return one tensor "
                                         r"per weight it is given: 3 expected\. Received 2"):
        _update_once(pruned, _Short())

    class WidthOnly(kp.LayerRule):
        def width_groups(self, layer):
            return []

    assert WidthOnly().has_width() and not kp.LayerRule().has_width()
    with pytest.raises(NotImplementedError, match=r"WidthOnly names width groups but has no "
                                                  r"`resize`: implement `resize\(layer, "
                                                  r"kept\)`"):
        WidthOnly().resize(None, {})


def test_one_registry_builds_every_importance_by_name():
    data, loss = [(np.ones((2, 5), "float32"), np.zeros((2,), "int32"))], "mse"
    assert importance_lib.names() == ["activation", "grasp", "magnitude", "random", "snip",
                                      "synflow", "taylor"]
    offered = {"data": data, "loss": loss, "batches": 1, "seed": 4}
    built = {name: importance_lib.get(name, **offered) for name in importance_lib.names()}
    assert isinstance(built["magnitude"], importance_lib.Magnitude)
    assert isinstance(built["snip"], importance_lib.Taylor)
    assert repr(built["random"]) == "Random(seed=4)"
    assert repr(built["grasp"]) == "Grasp(batches=1, temperature=200.0)"
    assert importance_lib.get(None).__class__ is importance_lib.Magnitude
    assert importance_lib.get(built["taylor"]) is built["taylor"]
    assert importance_lib.get("synflow", rounds=3).round_sparsities(0.875) == pytest.approx(
        [0.5, 0.75, 0.875])
    assert importance_lib.get("random").round_sparsities(0.5) == [0.5]
    with pytest.raises(ValueError, match=r"Unknown argument\(s\) \['rounds'\] for importance "
                                         r"'random'\. Received: \{'rounds': 2\}\. "
                                         r"Accepted: \['seed'\]"):
        importance_lib.get("random", rounds=2)
    with pytest.raises(ValueError, match=r"Arguments \['seed'\] are for an importance given "
                                         r"by name; Random\(seed=4\) is already built"):
        importance_lib.get(built["random"], seed=1)
    with pytest.raises(ValueError, match=r"`rounds` must be >= 1\. Received: rounds=0\. "
                                         r"Pass a whole number"):
        importance_lib.SynFlow(0)
    with pytest.raises(ValueError, match=r"`seed` must be an int\. Received: seed=1\.5"):
        importance_lib.Random(1.5)
    with pytest.raises(ValueError, match=r"`temperature` must be > 0\. Received: "
                                         r"temperature=0"):
        importance_lib.Grasp(data, loss, temperature=0)
    with pytest.raises(ValueError, match=r"GraSP importance needs gradients of the loss: .* "
                                         r"Received: data=None, loss='mse'"):
        importance_lib.Grasp(None, loss)
    with pytest.raises(ValueError, match=r"`data` gave no batch: GraSP"):
        importance_lib.Grasp([], loss).weight_scores(mlp(), [])


def test_register_adds_an_importance_and_refuses_clashes():
    class Ones(importance_lib.Importance):
        def weight_scores(self, model, weights):
            return [keras.ops.ones(w.shape) for w in weights]

    importance_lib.register("test-ones", Ones)
    try:
        assert "test-ones" in importance_lib.names()
        assert isinstance(importance_lib.get("test-ones", data=None), Ones)
        with pytest.raises(ValueError, match=r"An importance named 'test-ones' is already "
                                             r"registered \(Ones\)\. Choose another name"):
            importance_lib.register("test-ones", importance_lib.Random)
    finally:
        importance_lib._REGISTRY.pop("test-ones")
    with pytest.raises(ValueError, match=r"`cls` must be a subclass of "
                                         r"keras_progprune.importance.Importance\. "
                                         r"Received: cls=<class 'int'>"):
        importance_lib.register("int", int)


@pytest.mark.parametrize("name,scope", [("random", "layer"), ("snip", "global"),
                                        ("synflow", "layer")])
def test_prune_at_init_is_one_update_ranked_by_the_importance(name, scope):
    data = [(np.random.default_rng(0).normal(size=(8, 5)).astype("float32"),
             np.arange(8) % 3)]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    options = {"rounds": 3} if name == "synflow" else {}
    keras.utils.set_random_seed(2)
    model = mlp()
    pruned = kp.prune_at_init(model, name, 0.75, data=data, loss=loss, scope=scope, seed=5,
                              **options)
    again = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.75, 0, end_step=0),
                                   scope=scope)
    groups = engine.build_groups(wrapper_lib.collect_wrappers(again), again)
    importance = importance_lib.get(name, data=data, loss=loss, seed=5, **options)
    engine.update_at_init(groups, again, importance, 0.75)
    for a, b in zip(wrapper_lib.collect_wrappers(pruned), wrapper_lib.collect_wrappers(again)):
        for ma, mb in zip(a.masks, b.masks):
            np.testing.assert_array_equal(to_numpy(ma), to_numpy(mb))


def test_a_structure_registers_the_maker_of_its_updaters():
    class Halves(kp.structures.Unstructured):
        pass

    made, checked = [], []

    def build(wrappers, model, importance):
        made.append([w.layer.name for w in wrappers])
        return engine.scope_groups(wrappers, model, importance)

    engine.register_updaters(Halves, build, lambda model, wrappers: checked.append(model))
    try:
        pruned = kp.prune_low_magnitude(mlp(), kp.ConstantSparsity(0.5, 0), structure=Halves())
        wrappers = wrapper_lib.collect_wrappers(pruned)
        assert len(engine.build_groups(wrappers, pruned)) == 3
        engine.check_model(wrappers, pruned)
        assert made == [["fc0", "fc1", "head"]] and checked == [pruned]
    finally:
        engine._UPDATERS.pop(Halves)
    with pytest.raises(ValueError, match=r"`build` must be a function\. Received: build=3"):
        engine.register_updaters(Halves, 3)
