"""Mask structures: unstructured and N:M, through the whole engine."""

import json

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import engine
from keras_progprune import structures
from keras_progprune import wrapper as wrapper_lib
from conftest import assert_close, assert_equal

L = keras.layers


def _groups(values, axis_len, m):
    """Reshapes a kernel's mask into runs of m along axis -2."""
    moved = np.moveaxis(values, -2, -1)
    return moved.reshape(-1, m)


@pytest.mark.parametrize("structure", [structures.Unstructured(), structures.MByN(2, 4),
                                       structures.MByN(1, 8)])
def test_config_round_trip_through_json(structure):
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(structure)))
    again = keras.saving.deserialize_keras_object(config)
    assert again == structure and again.get_config() == structure.get_config()
    assert structures.get(config) == structure


@pytest.mark.parametrize("text,expected", [
    (None, structures.Unstructured()), ("unstructured", structures.Unstructured()),
    ("2:4", structures.MByN(2, 4)), (" 1 : 8 ", structures.MByN(1, 8)),
])
def test_get_parses_names_and_n_m_strings(text, expected):
    assert structures.get(text) == expected


def test_bad_structures_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"n must be below m\. Did you mean '2:4'\? "
                                         r"Received: structure='4:2'"):
        structures.get("4:2")
    with pytest.raises(ValueError, match=r"`structure` must be 'unstructured', 'channel', an 'n:m' "
                                         r"string .* Received: structure='2-4'"):
        structures.get("2-4")
    with pytest.raises(ValueError, match=r"Received: structure=3"):
        structures.get(3)
    with pytest.raises(ValueError, match=r"1 <= n < m\. Received: n=0, m=4"):
        structures.MByN(0, 4)
    with pytest.raises(ValueError, match=r"Received: n=4, m=4"):
        structures.MByN(4, 4)
    with pytest.raises(ValueError, match=r"Received: structure='2:2'"):
        kp.prune_low_magnitude(keras.Sequential([keras.Input((4,)), L.Dense(2)]),
                               structure="2:2")


def test_m_by_n_keeps_the_largest_in_every_group_along_axis_minus_2():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 8, 5)).astype("float32")
    (keep,) = structures.MByN(2, 4).select([keras.ops.convert_to_tensor(np.abs(w))], 0.5, None)
    keep = keras.ops.convert_to_numpy(keep)
    groups_w = _groups(np.abs(w), 8, 4)
    groups_k = _groups(keep, 8, 4)
    assert (groups_k.sum(axis=1) == 2).all()
    for gw, gk in zip(groups_w, groups_k):
        assert set(np.argsort(-gw)[:2]) == set(np.flatnonzero(gk))


def test_m_by_n_leaves_a_misfit_weight_dense_with_a_warning():
    layer = kp.PruningWrapper(L.Dense(3), kp.ConstantSparsity(0.5, 0), structure="2:4")
    with pytest.warns(UserWarning, match=r"can't carry structure MByN\(n=2, m=4\).*"
                                         r"axis 0 of shape \(6, 3\)\) has 6 entries, not a "
                                         r"multiple of m=4.*left dense"):
        layer.build((None, 6))
    (group,) = engine.build_groups([layer])
    group.update(0.5)
    assert np.all(layer.masks[0].numpy() == 1)


# Dense [in, out], Conv1D [k, in, out], Conv2D [h, w, in, out],
# DepthwiseConv2D [h, w, in, multiplier]: the pattern runs along `in`.
@pytest.mark.parametrize("make,shape", [
    (lambda: L.Dense(6), (16,)),
    (lambda: L.Conv1D(6, 3), (10, 8)),
    (lambda: L.Conv2D(6, 3), (8, 8, 8)),
    (lambda: L.DepthwiseConv2D(3), (8, 8, 8)),
])
def test_2_4_pattern_is_exact_after_adam_training_and_reload(make, shape, tmp_path):
    inp = keras.Input(shape)
    x = make()(inp)
    out = L.Dense(4)(L.Flatten()(x))
    model = kp.prune_low_magnitude(keras.Model(inp, out),
                                   kp.ConstantSparsity(0.5, 0, frequency=2),
                                   structure="2:4", exclude=[out._keras_history[0].name])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    x_data = np.random.default_rng(0).standard_normal((16,) + shape).astype("float32")
    model.fit(x_data, np.ones((16, 4)), batch_size=4, epochs=2, verbose=0,
              callbacks=[kp.ProgressivePruningCallback()])
    (wrapper,) = wrapper_lib.collect_wrappers(model)
    kernel = wrapper.pruned_weights[0].numpy()
    groups = _groups(kernel != 0, None, 4)
    assert (groups.sum(axis=1) <= 2).all() and (_groups(wrapper.masks[0].numpy(), None, 4)
                                                .sum(axis=1) == 2).all()
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.saving.load_model(path)
    (w2,) = wrapper_lib.collect_wrappers(again)
    assert w2.structure == structures.MByN(2, 4)
    assert_equal(w2.masks[0].numpy(), wrapper.masks[0].numpy())
    assert_close(again(x_data), model(x_data), atol=1e-5)


def test_m_by_n_recomputes_from_current_magnitudes_without_intersecting():
    wrapper = kp.PruningWrapper(L.Dense(1, use_bias=False), structure="2:4")
    wrapper.build((None, 4))
    kernel = wrapper.pruned_weights[0]
    (group,) = engine.build_groups([wrapper])
    kernel.assign([[4.0], [1.0], [3.0], [2.0]])
    group.update(0.5)
    assert_equal(wrapper.masks[0].numpy().ravel(), [1, 0, 1, 0])
    # Scores other than |w| (e.g. a method's) may pick other weights: the
    # old mask doesn't restrict N:M, every group always keeps exactly n.
    group.update(0.5, scores=[np.array([[0.0], [5.0], [0.0], [6.0]], np.float32)])
    assert_equal(wrapper.masks[0].numpy().ravel(), [0, 1, 0, 1])


def test_global_scope_needs_one_structure():
    a = kp.PruningWrapper(L.Dense(4), scope="global", structure="2:4")
    b = kp.PruningWrapper(L.Dense(4), scope="global")
    a.build((None, 4))
    b.build((None, 4))
    with pytest.raises(ValueError, match=r"must share one structure, found 2"):
        engine.build_groups([a, b])


def test_unstructured_is_the_default_and_old_configs_load_as_it():
    wrapper = kp.PruningWrapper(L.Dense(2))
    assert wrapper.structure == structures.Unstructured()
    config = keras.saving.serialize_keras_object(wrapper)
    del config["config"]["structure"]  # a file written before structures existed
    again = keras.saving.deserialize_keras_object(config)
    assert again.structure == structures.Unstructured()


def test_einsum_input_axis_is_the_reduced_kernel_axis():
    from keras_progprune import rules

    assert rules.einsum_input_axis("abc,cde->abde") == 0      # MHA query/key/value
    assert rules.einsum_input_axis("abcd,cde->abe") == 1      # MHA output
    assert rules.einsum_input_axis("ab,bc->ac") == 0          # a Dense
    assert rules.einsum_input_axis("ab,b->ab") is None        # no reduction


def test_m_by_n_groups_of_attention_kernels_run_along_the_input_not_the_heads():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 8))
    x = keras.layers.MultiHeadAttention(4, 2, name="mha")(inputs, inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="2:4")
    callback = kp.ProgressivePruningCallback()
    callback.set_model(pruned)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)
    wrapper = pruned.get_layer("prune_low_magnitude_mha")
    assert wrapper.input_axes == [0, 0, 0, 1]   # query, key, value: hidden; output: head_dim
    for weight, mask, axis in zip(wrapper.pruned_weights, wrapper.masks, wrapper.input_axes):
        groups = np.moveaxis(np.asarray(keras.ops.convert_to_numpy(mask)), axis, -1)
        counts = groups.reshape(-1, 4).sum(axis=1) if groups.shape[-1] % 4 == 0 else None
        if weight.path.endswith("attention_output/kernel"):
            assert counts is None  # head_dim 2: no run of 4, left dense (with a warning)
            assert np.asarray(keras.ops.convert_to_numpy(mask)).all()
        else:
            assert (counts == 2).all(), weight.path
    # Before, groups ran along axis -2 (the 4 heads), mixing heads in one group.
    report = kp.check_m_by_n(kp.strip_pruning(pruned))
    assert all(r["holds"] for name, r in report.items() if "attention_output" not in name)


def test_select_with_floors_of_a_structure_matches_unstructureds_own():
    # The base class's way (a `select_count` per floor, the floors raised,
    # one more over the pool) and Unstructured's (on its keys) agree.
    rng = np.random.default_rng(2)
    shapes = ((6, 4), (30,), (5,))
    scores = [keras.ops.convert_to_tensor(rng.standard_normal(s).astype("float32") - i)
              for i, s in enumerate(shapes)]
    active = [keras.ops.convert_to_tensor(rng.random(s) < 0.7) for s in shapes]
    floors = keras.ops.convert_to_tensor([2, 3, 0], "int32")
    unstructured = structures.Unstructured()
    for act in (active, None):
        generic = structures.Structure.select_with_floors(unstructured, scores, 12, floors, act)
        own = unstructured.select_with_floors(scores, 12, floors, act)
        for a, b in zip(generic, own):
            assert_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
        assert int(np.sum(keras.ops.convert_to_numpy(own[1]))) >= 3
