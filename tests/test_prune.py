import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import wrapper as wrapper_lib
from conftest import data, mlp
from conftest import assert_close, assert_equal

L = keras.layers


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


def test_functional_model_is_cloned_with_weights():
    model = mlp()
    pruned = kp.prune_low_magnitude(model)
    assert isinstance(pruned, keras.Model) and pruned is not model
    assert [type(l).__name__ for l in pruned.layers[1:]] == ["PruningWrapper"] * 3
    x, _ = data(4)
    assert_close(pruned.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert all(isinstance(l, L.Dense) for l in model.layers[1:])  # input untouched


def test_sequential_model_stays_sequential():
    model = keras.Sequential([keras.Input((5,)), L.Dense(4), L.BatchNormalization(), L.Dense(2)])
    pruned = kp.prune_low_magnitude(model)
    assert isinstance(pruned, keras.Sequential)
    assert [type(l).__name__ for l in pruned.layers] == [
        "PruningWrapper", "BatchNormalization", "PruningWrapper"]


def test_one_layer_and_list_of_layers():
    schedule = kp.ConstantSparsity(0.3, 0)
    wrapped = kp.prune_low_magnitude(L.Dense(2), schedule)
    assert isinstance(wrapped, kp.PruningWrapper) and wrapped.pruning_schedule == schedule
    layers = kp.prune_low_magnitude([L.Dense(2, name="a"), L.Conv2D(2, 3, name="b"),
                                     L.Dense(2, name="c")], exclude=["c"])
    assert [type(l).__name__ for l in layers] == ["PruningWrapper", "PruningWrapper", "Dense"]


def test_exclude_leaves_layers_dense():
    pruned = kp.prune_low_magnitude(mlp(), exclude=["head"])
    assert isinstance(pruned.get_layer("head"), L.Dense)
    assert len(wrapper_lib.collect_wrappers(pruned)) == 2
    assert kp.prune_low_magnitude(L.Dense(2, name="d"), exclude="d").name == "d"


def test_scope_is_passed_to_every_wrapper():
    pruned = kp.prune_low_magnitude(mlp(), scope="global")
    assert {w.scope for w in wrapper_lib.collect_wrappers(pruned)} == {"global"}


def test_default_schedule_is_built_per_call():
    a = wrapper_lib.collect_wrappers(kp.prune_low_magnitude(mlp()))[0].pruning_schedule
    b = wrapper_lib.collect_wrappers(kp.prune_low_magnitude(mlp()))[0].pruning_schedule
    assert a is not b and a == b == kp.ConstantSparsity(0.5, 0)


def test_subclassed_model_is_refused_pointing_to_wrapper():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.fc = L.Dense(2)

        def call(self, x):
            return self.fc(x)

    with pytest.raises(ValueError, match=r"can't wrap the subclassed model 'net' \(class Net\).*"
                       r"keras_progprune\.PruningWrapper\("):
        kp.prune_low_magnitude(Net())


def test_exclude_unknown_name():
    with pytest.raises(ValueError, match=r"`exclude` names layers that are not in the model: "
                       r"\['fc9'\]\. Received: exclude=\['fc0', 'fc9'\]\. Layer names available"):
        kp.prune_low_magnitude(mlp(), exclude=["fc0", "fc9"])


def test_already_wrapped_model_layer():
    pruned = kp.prune_low_magnitude(mlp())
    with pytest.raises(ValueError, match=r"Layer 'fc0' is already wrapped in a PruningWrapper "
                       r"\('prune_low_magnitude_fc0'\)\. A layer can be wrapped only once"):
        kp.prune_low_magnitude(pruned)
    with pytest.raises(ValueError, match="already wrapped"):
        kp.prune_low_magnitude(wrapper_lib.collect_wrappers(pruned)[0])


def test_unprunable_single_layer():
    with pytest.raises(ValueError, match=r"Layer 'pool' of type MaxPooling2D can't be pruned"):
        kp.prune_low_magnitude(L.MaxPooling2D(name="pool"))
    with pytest.raises(ValueError, match=r"Layer 'bn' of type BatchNormalization can't be pruned"):
        kp.prune_low_magnitude([L.Dense(2), L.BatchNormalization(name="bn")])


def test_bad_to_prune_type():
    with pytest.raises(ValueError, match=r"`to_prune` must be a Sequential or Functional model, "
                       r"a layer or a list of layers\. Received: to_prune=3 of type int"):
        kp.prune_low_magnitude(3)


class Matrix(L.Layer):
    """A custom layer with a weight matrix and no pruning opt-in."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 3), name="w")

    def call(self, x):
        return x @ self.w


def test_failed_prune_leaves_model_untouched():
    inp = keras.Input((5,))
    x = L.Dense(4, name="d")(inp)
    model = keras.Model(inp, Matrix(name="custom")(x))
    before = _weights(model)
    names = [l.name for l in model.layers]
    with pytest.raises(ValueError, match=r"Layer 'custom' of type Matrix can't be pruned.*"
                       r"define `get_prunable_weights\(\)`"):
        kp.prune_low_magnitude(model)
    assert [l.name for l in model.layers] == names
    assert not any(isinstance(l, kp.PruningWrapper) for l in model.layers)
    for a, b in zip(before, _weights(model)):
        assert_equal(a, b)
    # Excluding it is the other fix.
    assert len(wrapper_lib.collect_wrappers(kp.prune_low_magnitude(model, exclude=["custom"]))) == 1


def test_strip_gives_plain_layers_and_identical_outputs():
    model = mlp()
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.8, 0, frequency=1))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(64)
    pruned.fit(x, y, epochs=2, verbose=0, callbacks=[kp.ProgressivePruningCallback()])
    plain = kp.strip_pruning(pruned)
    assert [type(l) for l in plain.layers] == [type(l) for l in model.layers]
    assert [l.name for l in plain.layers] == [l.name for l in model.layers]
    assert_equal(plain.predict(x, verbose=0), pruned.predict(x, verbose=0))
    report = kp.sparsity_report(plain)
    assert report["total"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert not any("pruning" in w.name for w in plain.weights)


def test_strip_one_wrapper_and_refuse_other_input():
    wrapper = kp.PruningWrapper(L.Dense(3, name="d"))
    wrapper.build((None, 4))
    wrapper.masks[0].assign(np.zeros((4, 3)))
    plain = kp.strip_pruning(wrapper)
    assert isinstance(plain, L.Dense) and plain.name == "d"
    assert np.all(plain.kernel.numpy() == 0)
    with pytest.raises(ValueError, match=r"`strip_pruning` takes a Sequential or Functional "
                       r"model or a PruningWrapper\. Received: model="):
        kp.strip_pruning("model")
