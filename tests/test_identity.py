"""Wrapping is an identity until the first mask update, on models users write.

The property, over every model of `user_models.CORPUS` (keras-io's
patterns): the wrapped model, its strip, and the `.keras` round trips of
both compute exactly what the user's model computes; the user's model is
not changed and shares no variable with the result. Then the patterns that
used to come out silently wrong, one test each.
"""

import os

import keras
import numpy as np
import pytest

import keras_progprune as kp
import user_models
from conftest import BACKEND, to_numpy
from keras_progprune import engine
from keras_progprune import thresholds
from keras_progprune import walk
from keras_progprune import wrapper as wrapper_lib

L = keras.layers


def _outputs(model, x):
    y = model(x, training=False)
    return [to_numpy(t) for t in (y if isinstance(y, (list, tuple)) else [y])]


def _assert_same(expected, got, label):
    assert len(expected) == len(got), label
    for e, g in zip(expected, got):
        scale = max(1.0, float(np.max(np.abs(e))))
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-6 * scale, err_msg=label)


def _update(model, sparsity):
    """One mask update of every group at `sparsity`, as the callback does."""
    for group in engine.build_groups(wrapper_lib.collect_wrappers(model), model):
        group.update(sparsity)


def _values(model):
    return [np.array(to_numpy(v)) for v in model.weights]


def _corpus():
    for name in sorted(user_models.CORPUS):
        marks = [pytest.mark.backends("tensorflow")] if name in user_models.STRING_MODELS else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", _corpus())
def test_wrapping_is_an_identity_until_the_first_mask_update(name, tmp_path):
    model, x = user_models.CORPUS[name]()
    expected = _outputs(model, x)
    before = _values(model)

    wrapped = kp.prune_low_magnitude(model, kp.PolynomialDecay(0.0, 0.8, 0, 10))
    assert wrapper_lib.collect_wrappers(wrapped), "nothing was wrapped"
    _assert_same(expected, _outputs(wrapped, x), "wrapped")
    stripped = kp.strip_pruning(wrapped)
    _assert_same(expected, _outputs(stripped, x), "stripped")
    for label, m in (("wrapped", wrapped), ("stripped", stripped)):
        path = os.path.join(tmp_path, f"{label}.keras")
        kp.save_model(m, path)
        _assert_same(expected, _outputs(kp.load_model(path), x), f"{label} reloaded")

    # The user's model is neither changed nor shared.
    for b, a in zip(before, _values(model)):
        np.testing.assert_array_equal(a, b)
    ours = {id(v) for v in model.weights}
    assert not ours & {id(v) for v in wrapped.weights}
    assert not ours & {id(v) for v in stripped.weights}
    assert not {id(l) for l in walk.sublayers(model)} & {id(l) for l in walk.sublayers(wrapped)}


def test_a_layer_called_twice_gets_one_wrapper_and_the_parameter_count_stays():
    model, x = user_models.shared_and_nested()
    wrapped = kp.prune_low_magnitude(model)
    shared = [w for w in wrapper_lib.collect_wrappers(wrapped) if w.layer.name == "shared"]
    assert len(shared) == 1
    stripped = kp.strip_pruning(wrapped)
    assert stripped.count_params() == model.count_params()
    tower = [l for l in stripped.layers if l.name == "tower"]
    assert len(tower) == 1  # the nested model called twice is one model


def test_adapted_normalization_keeps_its_statistics():
    model, x = user_models.adapted_normalization()
    wrapped = kp.prune_low_magnitude(model)
    norm = [l for l in wrapped.layers if isinstance(l, L.Normalization)][0]
    mean = to_numpy(norm.mean).reshape(-1)
    assert abs(float(np.mean(mean)) - 100.0) < 20.0  # the adapted mean, not 0
    _assert_same(_outputs(model, x), _outputs(wrapped, x), "wrapped")


def test_composite_custom_layers_without_build_are_pruned_through_their_sublayers():
    model, x = user_models.text_transformer()
    wrapped = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0))
    by_class = {type(w.layer).__name__: w for w in wrapper_lib.collect_wrappers(wrapped)}
    embedding = by_class["TokenAndPositionEmbedding"]
    assert [w.name for w in embedding.pruned_weights] == ["embeddings", "embeddings"]
    block = by_class["TransformerBlock"]
    # The attention's four projections and the feed-forward's two kernels.
    assert len(block.pruned_weights) == 6
    _update(wrapped, 0.5)
    for w, m in zip(block.pruned_weights, block.masks):  # each kernel in its own pool
        kept = int(np.count_nonzero(to_numpy(m)))
        assert kept == round(np.prod(w.shape) * 0.5), w.path


def test_channel_structure_leaves_composite_custom_layers_whole_and_says_why():
    model, x = user_models.text_transformer()
    wrapped = kp.prune_low_magnitude(model, structure="channel")
    block = [l.name for l in model.layers if isinstance(l, user_models.TransformerBlock)][0]
    names = {w.layer.name for w in wrapper_lib.collect_wrappers(wrapped)}
    assert block not in names
    text = str(kp.sparsity_report(wrapped))
    assert (f"{block} (layer {block!r} of type TransformerBlock is not known to the "
            "channel grouping)") in text
    _assert_same(_outputs(model, x), _outputs(wrapped, x), "wrapped")


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_separable_conv_keeps_its_depthwise_kernel(scope):
    model, x = user_models.mini_xception()
    wrapped = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.8, 0), scope=scope)
    _update(wrapped, 0.8)
    separable = [w for w in wrapper_lib.collect_wrappers(wrapped)
                 if isinstance(w.layer, L.SeparableConv2D)]
    assert len(separable) == 2
    for wrapper in separable:
        assert [w.name for w in wrapper.pruned_weights] == ["pointwise_kernel"]
        depthwise = to_numpy(kp.strip_pruning(wrapper).depthwise_kernel)
        assert np.count_nonzero(depthwise) == depthwise.size
    # The output still depends on the input.
    stripped = kp.strip_pruning(wrapped)
    out = _outputs(stripped, x)[0]
    assert float(np.std(out)) > 0.0


def test_global_scope_never_empties_a_kernel():
    # A tiny kernel whose weights are all far smaller than the big one's.
    inputs = keras.Input((50,))
    big = L.Dense(200, name="big")
    tiny = L.Dense(2, name="tiny")
    model = keras.Model(inputs, tiny(big(inputs)))
    tiny.kernel.assign(to_numpy(tiny.kernel) * 1e-4)
    wrapped = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.9, 0), scope="global")
    _update(wrapped, 0.9)
    kept = {w.layer.name: int(np.count_nonzero(to_numpy(w.masks[0])))
            for w in wrapper_lib.collect_wrappers(wrapped)}
    total = 50 * 200 + 200 * 2
    count = round(total * 0.1)
    assert sum(kept.values()) == count
    floors = thresholds.floor_counts([50 * 200, 200 * 2], count)
    assert kept["tiny"] == floors[1] and floors[1] == 4  # ceil(0.1 * 400 * 0.1)


def test_global_floors_once_bound_are_protected_at_once_with_the_same_masks():
    # After some kernel fell below its floor, later updates at that sparsity
    # or above skip the plain ranking; the masks must be those of a group
    # that tries the plain ranking first.
    from keras_progprune import engine

    def groups():
        keras.utils.set_random_seed(3)
        inputs = keras.Input((40,))
        big, small = L.Dense(100, name="big"), L.Dense(3, name="small")
        model = keras.Model(inputs, small(big(inputs)))
        small.kernel.assign(to_numpy(small.kernel) * 1e-3)
        wrapped = kp.prune_low_magnitude(model, scope="global")
        (group,) = engine.build_groups(wrapper_lib.collect_wrappers(wrapped))
        return group

    remembered = groups()
    assert remembered._floors_bind_from is None
    remembered.update(0.8)
    assert remembered._floors_bind_from == 0.8
    remembered.update(0.95)
    fresh = groups()
    fresh.update(0.8)
    fresh._floors_bind_from = None  # forget: plain ranking first again
    fresh.update(0.95)
    for a, b in zip(remembered.masks, fresh.masks):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert remembered.kept == fresh.kept == round((40 * 100 + 100 * 3) * 0.05)


def test_floor_counts():
    assert thresholds.floor_counts([1000, 10], 101) == [10, 1]
    assert thresholds.floor_counts([1000, 10], 1010) == [100, 1]
    assert thresholds.floor_counts([5, 5, 5], 2) == [0, 0, 0]  # fewer kept than weights
    assert thresholds.floor_counts([5, 5], 2) == [1, 1]


def test_strip_pruning_of_a_subclassed_model_names_the_parts_to_strip():
    encoder, x = user_models.vae_encoder()

    class VAE(keras.Model):
        def __init__(self, encoder, decoder, **kwargs):
            super().__init__(**kwargs)
            self.encoder, self.decoder = encoder, decoder

        def call(self, x):
            return self.decoder(self.encoder(x)[2])

    latent = keras.Input((2,))
    decoder = keras.Model(latent, L.Dense(4)(latent))
    vae = VAE(kp.prune_low_magnitude(encoder), kp.prune_low_magnitude(decoder))
    with pytest.raises(ValueError, match=(
            r"`strip_pruning` can't rebuild the subclassed model 'vae' \(class VAE\): .*"
            r"Its pruned parts are Sequential or Functional models, which strip on their "
            r"own: `encoder = kp.strip_pruning\(model.encoder\)`; "
            r"`decoder = kp.strip_pruning\(model.decoder\)`\. Then build a VAE")):
        kp.strip_pruning(vae)
    plain = kp.strip_pruning(vae.encoder)  # the fix works
    assert not wrapper_lib.collect_wrappers(plain)

    class Direct(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.fc = kp.PruningWrapper(L.Dense(2, name="fc"))

        def call(self, x):
            return self.fc(x)

    direct = Direct(name="direct")
    direct(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match=r"Wrappers sit directly in it \(layers \['fc'\]\)"):
        kp.strip_pruning(direct)


def _vae_parts(structure):
    encoder, _ = user_models.vae_encoder()
    latent = keras.Input((2,))
    decoder = keras.Model(latent, L.Reshape((8, 8, 1))(L.Dense(64)(latent)))
    schedule = kp.PolynomialDecay(0.0, 0.5, 0, 4, frequency=1)
    return (kp.prune_low_magnitude(encoder, schedule, structure=structure),
            kp.prune_low_magnitude(decoder, schedule))


class CustomLossVAE(keras.Model):
    """A model with its own loss around two pruned graph parts."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder

    def call(self, x, training=False):
        z_mean, z_log_var, z = self.encoder(x, training=training)
        self.add_loss(keras.ops.mean(keras.ops.square(z_mean)) * 0.0 + keras.ops.mean(
            keras.ops.exp(z_log_var)) * 1e-3)
        return self.decoder(z, training=training)


@pytest.mark.parametrize("structure", ["unstructured", "channel"])
def test_a_custom_model_around_pruned_parts_trains_and_prunes(structure):
    encoder, decoder = _vae_parts(structure)
    vae = CustomLossVAE(encoder, decoder)
    vae.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    vae.fit(x, x, epochs=1, batch_size=4, verbose=0,
            callbacks=[kp.ProgressivePruningCallback()])
    masks = [to_numpy(m) for w in wrapper_lib.collect_wrappers(vae) for m in w.masks]
    assert any(np.count_nonzero(m) < m.size for m in masks)
    if structure == "channel":  # the encoder's graph gave channel groups
        plain = kp.strip_pruning(vae.encoder)
        assert kp.shrink(plain).count_params() < plain.count_params()


def test_channel_wrappers_outside_any_graph_are_refused_at_the_start_of_fit():
    class Direct(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = kp.PruningWrapper(L.Dense(4, name="fc"), structure="channel")
            self.out = L.Dense(1)

        def call(self, x):
            return self.out(self.fc(x))

    model = Direct()
    model.compile("sgd", "mse")
    x = np.ones((4, 3), "float32")
    with pytest.raises(ValueError, match=(
            r"in model 'direct\w*' of type Direct \(subclassed\) the wrappers of layers "
            r"\['fc'\] are in no such graph\. Build that part with the Functional API")):
        model.fit(x, x[:, :1], verbose=0, callbacks=[kp.ProgressivePruningCallback()])


@pytest.mark.backends("jax", "torch")
def test_export_from_another_backend_sends_the_users_classes(tmp_path):
    model, x = user_models.text_transformer()
    path = kp.export_saved_model(kp.prune_low_magnitude(model), tmp_path / "served")
    assert os.path.exists(os.path.join(path, "saved_model.pb"))

    class Unregistered(L.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((3,))
    local = keras.Model(inputs, L.Dense(2)(Unregistered()(inputs)))
    with pytest.raises(ValueError, match=(
            r"can't find the layer classes \['Unregistered \(defined in test_identity\)'\]|"
            r"can't find the layer classes \['Unregistered \(defined in tests.test_identity\)'\]")):
        kp.export_saved_model(local, tmp_path / "local")
    kp.export_saved_model(local, tmp_path / "local", custom_objects={"Unregistered": Unregistered})
    assert os.path.exists(tmp_path / "local" / "saved_model.pb")


def test_the_copy_goes_through_keras_saving_only_where_state_may_hide(monkeypatch):
    # Keras's own layers outside preprocessing keep all their state in
    # variables: rebuilt from config with their weights (cheaper). Anything
    # else (adapted preprocessing, a user's class) goes through save/load.
    saves = []
    real = keras.saving.save_model
    monkeypatch.setattr(keras.saving, "save_model",
                        lambda *args, **kwargs: saves.append(1) or real(*args, **kwargs))
    plain, _ = user_models.shared_and_nested()
    kp.strip_pruning(kp.prune_low_magnitude(plain))
    assert saves == []
    for build in (user_models.adapted_normalization, user_models.custom_build_layer):
        model, _ = build()
        kp.prune_low_magnitude(model)
    assert saves == [1, 1]


def test_a_model_keras_cannot_save_is_refused_with_the_cause_and_the_fix():
    class NoConfig(L.Layer):  # its config leaves out a required argument
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.inner = L.Dense(units)

        def call(self, x):
            return self.inner(x)

        def get_config(self):
            return {"name": self.name}

    inputs = keras.Input((3,))
    model = keras.Model(inputs, NoConfig(2)(inputs))
    with pytest.raises(ValueError, match=(
            r"(?s)Can't copy model '\w+': Keras's own save and load of it failed "
            r"\(TypeError: .*\)\. The copy keeps what a rebuild from config "
            r"would lose .* give every custom layer a `get_config\(\)` that returns its "
            r"constructor's arguments")):
        kp.prune_low_magnitude(model)


@pytest.mark.backends("jax")
def test_a_failed_export_child_leads_with_its_last_exception():
    from keras_progprune import tensorflow_export

    output = "Traceback (most recent call last):\n  File x\nKeyError: 'a'\nValueError: b\n"
    assert tensorflow_export._child_error(output) == "ValueError: b"
    assert tensorflow_export._child_error("nothing\n") == "(no exception line)"
