"""Width pruning: feed-forward neurons and attention heads (keras_progprune.rules,
width.py, hub_layers.py), progressive with structure="channel" and one-shot
with `prune_width`, then an exact `shrink`."""

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import rules
from conftest import assert_close, served_outputs, to_numpy

L = keras.layers
D, T = 16, 6


def _block(heads=4, key_dim=4, ff=32, name="block"):
    """A plain Keras pre-norm transformer block and a classifier on top."""
    inputs = keras.Input((T, D))
    x = L.LayerNormalization()(inputs)
    x = inputs + L.MultiHeadAttention(heads, key_dim, name="mha")(x, x)
    y = L.LayerNormalization()(x)
    y = L.Dense(ff, activation="gelu", name="ff1")(y)
    x = x + L.Dense(D, name="ff2")(y)
    outputs = L.Dense(3, name="head")(L.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs, name=name)


def _x(n=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, T, D)).astype("float32")


def _update_once(pruned):
    """One mask update at the schedule's step 0, without training."""
    callback = kp.ProgressivePruningCallback()
    callback.set_model(pruned)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)


def _first(outputs):
    return to_numpy(outputs[sorted(outputs)[0]] if isinstance(outputs, dict) else outputs)


def test_plain_block_loses_half_its_heads_and_neurons_exactly():
    model = _block()
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel")
    pruned.compile("adam", "mse")
    x = _x(16)
    pruned.fit(x, np.zeros((16, 3)), batch_size=8, epochs=1, verbose=0,
               callbacks=[kp.ProgressivePruningCallback()])
    report = kp.sparsity_report(pruned)
    assert report["layers"]["mha"]["channels"]["width"] == {"mha/heads": {"kept": 2, "total": 4}}
    assert "heads 2/4" in str(report)
    small = kp.shrink(pruned)
    assert small.get_layer("mha").num_heads == 2 and small.get_layer("mha").key_dim == 4
    assert small.get_layer("ff1").units == 16
    assert_close(small(x), kp.strip_pruning(pruned)(x), atol=1e-5)
    # MACs count the attention: projections, scores and output, per head.
    macs = kp.sparsity_report(small)["macs"]
    assert macs["dense"] < report["macs"]["dense"] * 0.55


def test_attention_macs_count_every_part():
    attention = L.MultiHeadAttention(2, 3, value_dim=5)
    attention.build((None, T, D), (None, T, D))
    expected = T * D * 2 * (3 + 3 + 5) + T * T * 2 * (3 + 5) + T * 2 * 5 * D
    assert rules.attention_macs(attention, T, 2) == expected


def test_one_shot_prune_width_ranks_by_activation_not_magnitude():
    model = _block(heads=2, ff=8)
    ff1 = model.get_layer("ff1")
    kernel, bias = ff1.get_weights()
    kernel[:, :4] *= 10.0       # the largest weights ...
    bias[:4] = -1e3             # ... but never active (gelu(-1000) = 0)
    ff1.set_weights([kernel, bias])
    x = _x(16)
    by_activation = kp.prune_width(model, ffn=0.5, data=[(x, None)])
    by_magnitude = kp.prune_width(model, ffn=0.5, importance="magnitude")
    kept_bias = by_activation.get_layer("ff1").get_weights()[1]
    assert by_activation.get_layer("ff1").units == 4
    assert np.all(kept_bias > -1e3)       # the dead neurons went
    assert np.all(by_magnitude.get_layer("ff1").get_weights()[1] == -1e3)  # they stayed
    # The user's model is untouched, and only removed neurons change outputs:
    # the dead ones output 0, so removing them is exact.
    assert model.get_layer("ff1").units == 8
    assert_close(by_activation(x), model(x), atol=1e-5)


def test_prune_width_custom_importance_and_batches():
    model = _block(heads=4, ff=8)
    seen = []

    def importance(label, kind, magnitude):
        seen.append((label, kind, magnitude.shape))
        return -np.arange(magnitude.size)  # keep the first channels

    small = kp.prune_width(model, ffn=0.5, heads=0.5, importance=importance)
    assert sorted(seen) == [("ff1", "ffn", (8,)), ("mha/heads", "heads", (4,))]
    full = model.get_layer("ff1").get_weights()[0]
    np.testing.assert_array_equal(small.get_layer("ff1").get_weights()[0], full[:, :4])
    endless = ((_x(4, seed), None) for seed in __import__("itertools").count())
    assert kp.prune_width(model, heads=0.5, data=endless, batches=2).get_layer(
        "mha").num_heads == 2


@pytest.mark.parametrize("kwargs,message", [
    (dict(ffn=1.0), r"`ffn` is the fraction of each block's feed-forward neurons to "
                    r"remove and must be in \[0, 1\)\. Received: ffn=1\.0"),
    (dict(heads=-0.1), r"must be in \[0, 1\)\. Received: heads=-0\.1"),
    (dict(ffn="half"), r"Received: ffn='half'"),
    (dict(ffn=0.5), r"importance='activation' .* pass `data`.*Received: data=None"),
    (dict(ffn=0.5, data=[], importance="bogus"), r"`importance` must be one of "
                                                 r"\[.activation., .*.magnitude., .*\], a "
                                                 r"kp.importance.Importance or a function\. "
                                                 r"Received: importance=.bogus."),
    (dict(ffn=0.5, data=[]), r"`data` gave no batch"),
    (dict(ffn=0.5, data=[1], batches=0), r"`batches` must be a positive int or None\. "
                                         r"Received: batches=0"),
    (dict(hidden=0.25, importance="magnitude"), r"`hidden=0\.25` removes channels of a "
                                                r"residual stream.*Received: model .* of "
                                                r"type Functional\. Pass hidden=0"),
    (dict(kv_heads=0.5, importance="magnitude"), r"`kv_heads=0\.5` was given, but model "
                                                 r".* has no key/value groups \(with their "
                                                 r"query heads\) that prune_width can remove "
                                                 r"\(no grouped-query attention block"),
])
def test_prune_width_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kp.prune_width(_block(), **kwargs)


def test_prune_width_refuses_what_the_model_does_not_have():
    inputs = keras.Input((T, D))
    no_attention = keras.Model(inputs, L.Dense(3)(L.Dense(8, activation="relu")(inputs)))
    with pytest.raises(ValueError, match=r"`heads=0.5` was given, but model .* has no "
                                         r"attention heads .* Pass heads=0"):
        kp.prune_width(no_attention, heads=0.5, importance="magnitude")
    attention_only = keras.Model(inputs, L.MultiHeadAttention(2, 2)(inputs, inputs))
    with pytest.raises(ValueError, match=r"`ffn=0.5` was given, but model .* has no "
                                         r"feed-forward neurons .*kp.register_layer_rule"):
        kp.prune_width(attention_only, ffn=0.5, importance="magnitude")
    with pytest.raises(ValueError, match=r"`heads=0.6` would remove every one of the 1 "
                                         r"attention heads of 'mha/heads'; a block keeps "
                                         r"at least one"):
        kp.prune_width(_block(heads=1), heads=0.6, importance="magnitude")
    with pytest.raises(ValueError, match=r"takes a Sequential or Functional"):
        kp.prune_width(L.Dense(3), ffn=0.5, importance="magnitude")


def test_one_shot_then_distillation_recipe():
    keras.utils.set_random_seed(0)
    teacher = _block(heads=4, ff=32)
    x = _x(128)
    # A rule the teacher can learn, so its outputs are worth distilling.
    y = np.argmax(x.mean(axis=1) @ np.random.default_rng(1).standard_normal((D, 3)), -1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    teacher.compile(keras.optimizers.Adam(3e-3), loss)
    teacher.fit(x, y, epochs=30, batch_size=32, verbose=0)
    student = kp.prune_width(teacher, ffn=0.75, heads=0.5, data=[(x[:32], y[:32])])
    assert student.count_params() < 0.7 * teacher.count_params()
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=2.0, loss=keras.losses.KLDivergence()),
        student_loss_weight=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)

    def divergence():  # KL(teacher || student) over the data, at temperature 2
        p = keras.ops.softmax(teacher(x) / 2.0)
        q = keras.ops.softmax(student(x) / 2.0)
        return float(to_numpy(keras.ops.mean(keras.ops.sum(
            p * (keras.ops.log(p) - keras.ops.log(q)), -1))))

    before = divergence()
    history = distiller.fit(x, y, epochs=10, batch_size=32, verbose=0).history
    assert divergence() < 0.7 * before, (before, divergence())
    # A KL divergence of softmaxes: never negative. (Keras's default
    # loss="kl_divergence" resolves to the function, which skips the
    # softmax and gives negative values: the README passes the class.)
    assert min(history["distillation_loss"]) >= 0
    assert distiller.student is student  # what is trained is the shrunk model


class _Mixer(L.Layer):
    """A user's block: a residual feed-forward network of its own."""

    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, shape):
        self.up = L.Dense(self.units, activation="relu", name="up")
        self.up.build(shape)
        self.down = L.Dense(shape[-1], name="down")
        self.down.build(tuple(shape[:-1]) + (self.units,))

    def call(self, x):
        return x + self.down(self.up(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _mixer_model():
    inputs = keras.Input((T, D))
    return keras.Model(inputs, L.Dense(2)(_Mixer(8, name="mixer")(inputs)))


def test_a_custom_layer_is_left_whole_until_it_has_a_rule(monkeypatch):
    model = _mixer_model()
    report = kp.sparsity_report(model)
    assert report["layers"]["mixer"]["channels"] == {
        "left_whole": "layer 'mixer' of type _Mixer is not known to the channel grouping"}
    assert "mixer (layer 'mixer' of type _Mixer is not known" in str(report)
    with pytest.raises(ValueError, match=r"no feed-forward neurons"):
        kp.prune_width(model, ffn=0.5, importance="magnitude")
    monkeypatch.setitem(rules.base._RULES, _Mixer, None)  # undone after the test
    kp.register_layer_rule(_Mixer, kp.FeedForwardRule("up", "down", "units"))
    small = kp.prune_width(model, ffn=0.5, importance="magnitude")
    assert small.get_layer("mixer").units == 4
    x = _x(4)
    # Only the removed neurons change the outputs: zero them in a copy.
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel")
    _update_once(pruned)
    assert_close(kp.shrink(pruned)(x), kp.strip_pruning(pruned)(x), atol=1e-5)
    assert kp.shrink(pruned).get_layer("mixer").units == 4


def test_register_layer_rule_errors():
    with pytest.raises(ValueError, match=r"`layer_class` must be a subclass of "
                                         r"keras.layers.Layer. Received: layer_class=3"):
        kp.register_layer_rule(3, kp.AttentionRule())
    with pytest.raises(ValueError, match=r"`rule` must be a keras_progprune.LayerRule "
                                         r"instance .* Received: rule='up' of type str"):
        kp.register_layer_rule(_Mixer, "up")


keras_hub = pytest.importorskip("keras_hub")


def _bert():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=50, num_layers=2, num_heads=4, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=8)
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, 50, (4, 8)).astype("int32"),
         "segment_ids": np.zeros((4, 8), "int32"), "padding_mask": np.ones((4, 8), "int32")}
    return backbone, x


def _gpt2():
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=50, num_layers=2, num_heads=4, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=8)
    rng = np.random.default_rng(0)
    return backbone, {"token_ids": rng.integers(1, 50, (4, 8)).astype("int32"),
                      "padding_mask": np.ones((4, 8), "int32")}


def _vit():
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 1), patch_size=4, num_layers=2, num_heads=4, hidden_dim=16,
        mlp_dim=32)
    return backbone, np.random.default_rng(0).random((4, 16, 16, 1)).astype("float32")


HUB = {"bert": (_bert, "HeadSizedTransformerEncoder"),
       "gpt2": (_gpt2, "HeadSizedTransformerDecoder"),
       "vit": (_vit, "HeadSizedViTEncoder")}


@pytest.mark.parametrize("name", [
    "bert", pytest.param("gpt2", marks=pytest.mark.slow),
    pytest.param("vit", marks=pytest.mark.slow)])
def test_hub_backbone_progressive_heads_and_neurons_shrink_exactly(name, tmp_path):
    make, sized = HUB[name]
    backbone, x = make()
    pruned = kp.prune_low_magnitude(backbone, kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel")
    _update_once(pruned)
    report = str(kp.sparsity_report(pruned))
    assert "ffn 32/64, heads 4/8" in report or "ffn 16/32, heads 2/4" in report, report
    small = kp.shrink(pruned)
    assert sized in {type(l).__name__ for l in small.layers}
    assert small.count_params() < 0.8 * backbone.count_params()
    assert_close(_first(small(x)), _first(kp.strip_pruning(pruned)(x)), atol=1e-5)
    path = tmp_path / "small.keras"
    small.save(path)
    again = keras.saving.load_model(path)
    assert_close(_first(again(x)), _first(small(x)), atol=1e-6)


def test_hub_ffn_only_keeps_the_kerashub_classes():
    backbone, x = _bert()
    small = kp.prune_width(backbone, ffn=0.5, data=[x])
    names = {type(l).__name__ for l in small.layers}
    assert "TransformerEncoder" in names and "HeadSizedTransformerEncoder" not in names
    assert small.get_layer("transformer_layer_0").intermediate_dim == 16


def test_head_sized_blocks_round_trip_their_config():
    from keras_progprune import hub_layers

    for cls in (hub_layers.HeadSizedTransformerEncoder,
                hub_layers.HeadSizedTransformerDecoder):
        layer = cls(intermediate_dim=8, num_heads=2, head_dim=3)
        again = cls.from_config(layer.get_config())
        assert again.get_config() == layer.get_config() and again.head_dim == 3
        again.build((None, 5, 16))
        assert tuple(again._self_attention_layer.query_dense.kernel.shape) == (16, 2, 3)
    encoder = hub_layers.HeadSizedViTEncoder(num_layers=1, num_heads=2, hidden_dim=16,
                                             mlp_dim=8, head_dim=3)
    assert hub_layers.HeadSizedViTEncoder.from_config(encoder.get_config()).head_dim == 3
    with pytest.raises(ValueError, match=r"`head_dim` must be a positive int or None\. "
                                         r"Received: head_dim=0"):
        hub_layers.HeadSizedTransformerEncoder(intermediate_dim=8, num_heads=2, head_dim=0)


def test_decoder_with_cross_attention_keeps_its_heads():
    decoder = keras_hub.layers.TransformerDecoder(intermediate_dim=8, num_heads=2)
    decoder.build((None, 5, 16), (None, 5, 16))
    heads = [g for g in rules.rule_for(decoder).width_groups(decoder) if g.name == "heads"]
    assert "cross-attention shares `num_heads`" in heads[0].fixed


@pytest.mark.slow
def test_shrunk_vit_serves_as_a_saved_model(tmp_path):
    backbone, x = _vit()
    small = kp.prune_width(backbone, ffn=0.5, heads=0.5, data=[x])
    assert_close(served_outputs(small, x, tmp_path / "sm"), to_numpy(small(x)), atol=1e-5)


@pytest.mark.slow
def test_convnext_tiny_feed_forward_shrinks_exactly_and_round_trips(tmp_path):
    model = keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3),
                                            classes=4, include_preprocessing=False)
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel")
    _update_once(pruned)
    small = kp.shrink(pruned)
    assert small.count_params() < 0.6 * model.count_params()
    expected = to_numpy(kp.strip_pruning(pruned)(x))
    assert_close(small(x), expected, atol=1e-5)
    kp.save_model(small, tmp_path / "c.keras", include_optimizer=False)
    assert_close(kp.load_model(tmp_path / "c.keras")(x), expected, atol=1e-5)
    assert_close(served_outputs(small, x, tmp_path / "sm"), expected, atol=1e-5)


def test_vit_stack_with_uneven_widths_is_padded_exactly():
    # Global scope gives the blocks different widths; ViTEncoder's config
    # holds one `mlp_dim`, so each block is rebuilt at the widest, padded
    # with removed (zero) neurons.
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 1), patch_size=4, num_layers=3, num_heads=4, hidden_dim=16,
        mlp_dim=32)
    x = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
    pruned = kp.prune_low_magnitude(backbone, kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel", scope="global")
    _update_once(pruned)
    width = kp.sparsity_report(pruned)["layers"]["vit_encoder"]["channels"]["width"]
    kept = [g["kept"] for label, g in width.items() if label.endswith("/ffn")]
    assert len(set(kept)) > 1, width  # uneven: the padding is exercised
    small = kp.shrink(pruned)
    assert small.get_layer("vit_encoder").mlp_dim == max(kept)
    assert_close(small(x), kp.strip_pruning(pruned)(x), atol=1e-5)


@keras.saving.register_keras_serializable(package="tests")
class _GroupedAttention(L.Layer):
    """A user's grouped-query attention: flat q/k/v projections, `q_heads`
    query heads sharing `kv_heads` key/value heads of `head_dim`."""

    def __init__(self, q_heads=4, kv_heads=2, head_dim=2, **kwargs):
        super().__init__(**kwargs)
        self.q_heads, self.kv_heads, self.head_dim = q_heads, kv_heads, head_dim

    def build(self, shape):
        hd = self.head_dim
        self.q = L.Dense(self.q_heads * hd, name="q")
        self.k = L.Dense(self.kv_heads * hd, name="k")
        self.v = L.Dense(self.kv_heads * hd, name="v")
        self.o = L.Dense(shape[-1], name="o")
        for dense in (self.q, self.k, self.v):
            dense.build(shape)
        self.o.build(tuple(shape[:-1]) + (self.q_heads * hd,))

    def call(self, x):
        b, t = keras.ops.shape(x)[0], keras.ops.shape(x)[1]
        g, hd = self.q_heads // self.kv_heads, self.head_dim
        q = keras.ops.reshape(self.q(x), (b, t, self.kv_heads, g, hd))
        k = keras.ops.reshape(self.k(x), (b, t, self.kv_heads, 1, hd))
        v = keras.ops.reshape(self.v(x), (b, t, self.kv_heads, 1, hd))
        scores = keras.ops.einsum("bqkgd,bskgd->bkgqs", q, keras.ops.repeat(k, g, axis=3))
        weights = keras.ops.softmax(scores / hd ** 0.5, axis=-1)
        out = keras.ops.einsum("bkgqs,bskgd->bqkgd", weights, keras.ops.repeat(v, g, axis=3))
        return x + self.o(keras.ops.reshape(out, (b, t, self.q_heads * hd)))

    def get_config(self):
        return {**super().get_config(), "q_heads": self.q_heads,
                "kv_heads": self.kv_heads, "head_dim": self.head_dim}


class _GroupedRule(kp.LayerRule):
    """Whole key/value groups: a group owns its key and value columns and
    the columns of its query heads (and their rows of `o`)."""

    def width_groups(self, layer):
        hd, g = layer.head_dim, layer.q_heads // layer.kv_heads
        of_q = np.arange(layer.q_heads * hd) // hd // g     # query column -> kv group
        of_kv = np.arange(layer.kv_heads * hd) // hd       # key/value column -> kv group
        members = [(layer.q.kernel, -1, of_q), (layer.q.bias, 0, of_q),
                   (layer.k.kernel, -1, of_kv), (layer.k.bias, 0, of_kv),
                   (layer.v.kernel, -1, of_kv), (layer.v.bias, 0, of_kv),
                   (layer.o.kernel, 0, of_q)]
        return [rules.WidthGroup("heads", layer, members, [(layer.o.kernel, 0, of_q)],
                                 probe=(layer.o, "input", -1, of_q))]

    def resize(self, layer, kept):
        (indices,) = kept.values()
        g = layer.q_heads // layer.kv_heads
        return {"kv_heads": len(indices), "q_heads": len(indices) * g}, kept


def _grouped_model(kv_heads=3):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((T, D))
    x = _GroupedAttention(2 * kv_heads, kv_heads, 2, name="gqa")(inputs)
    return keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling1D()(x)))


def test_channels_that_own_several_indices_mask_score_and_shrink_together(monkeypatch):
    monkeypatch.setitem(rules.base._RULES, _GroupedAttention, None)  # undone after the test
    kp.register_layer_rule(_GroupedAttention, _GroupedRule())
    model = _grouped_model()
    (group,) = rules.width_groups(model.get_layer("gqa"))
    assert group.size == 3 and [len(m.channels) for m in group.members] == [12, 12, 6, 6, 6,
                                                                           6, 12]
    assert group.members[0].indices([2]).tolist() == [8, 9, 10, 11]
    # Progressive masks zero whole key/value groups (their query heads too).
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.4, 0, frequency=1),
                                    structure="channel")
    _update_once(pruned)
    wrapper = pruned.get_layer("prune_low_magnitude_gqa")
    masks = dict(zip([w.path for w in wrapper.pruned_weights], wrapper.masks))
    q_mask = to_numpy(masks[model.get_layer("gqa").q.kernel.path]).any(axis=0)
    k_mask = to_numpy(masks[model.get_layer("gqa").k.kernel.path]).any(axis=0)
    removed = [c for c in range(3) if not k_mask[2 * c]]
    assert len(removed) == 1 and not q_mask[4 * removed[0]:4 * removed[0] + 4].any()
    assert q_mask.sum() == 8 and k_mask.sum() == 4
    # The shrunk layer has 2 groups and 4 query heads, with the same outputs.
    small = kp.shrink(pruned)
    layer = small.get_layer("gqa")
    assert (layer.kv_heads, layer.q_heads) == (2, 4)
    x = _x(4)
    assert_close(small(x), kp.strip_pruning(pruned)(x), atol=1e-5)
    # Zero outputs are read per channel: a group is zero when all its rows are.
    stripped = kp.strip_pruning(pruned).get_layer("gqa")
    (after,) = rules.width_groups(stripped)
    assert after.zero_outputs().tolist() == [c in removed for c in range(3)]


def test_activation_scores_average_each_channel_over_its_indices(monkeypatch):
    monkeypatch.setitem(rules.base._RULES, _GroupedAttention, None)
    kp.register_layer_rule(_GroupedAttention, _GroupedRule())
    model = _grouped_model()
    layer = model.get_layer("gqa")
    (group,) = rules.width_groups(layer)
    x = _x(8)
    probe = kp.importance.Probe.of(group.label, group.probe, group.size)
    scores = kp.importance.mean_activations(model, [probe], [(x, None)], 1)[group.label]
    b, t = x.shape[:2]
    heads = np.abs(to_numpy(keras.ops.reshape(_o_input(layer, x), (b * t, 3, 4))))
    assert_close(scores, heads.mean(axis=(0, 2)), rtol=1e-5)
    small = kp.prune_width(model, heads=0.4, data=[(x, None)])
    assert (small.get_layer("gqa").kv_heads, small.get_layer("gqa").q_heads) == (2, 4)
    kept = np.sort(np.argsort(-scores, kind="stable")[:2])
    q = to_numpy(layer.q.kernel).reshape(D, 3, 4)[:, kept].reshape(D, 8)
    assert_close(small.get_layer("gqa").q.kernel, q)


def _o_input(layer, x):
    """What `layer.o` reads, computed the layer's own way."""
    seen = []
    call = layer.o.call
    layer.o.call = lambda inputs, *a, **k: seen.append(inputs) or call(inputs, *a, **k)
    try:
        layer(x)
    finally:
        del layer.o.call
    return seen[0]


def test_prune_width_names_the_classes_without_a_rule():
    from user_models import TransformerBlock  # noqa: PLC0415 (keras-io's own block)

    inputs = keras.Input((T, D))
    model = keras.Model(inputs, TransformerBlock(D, 2, 16)(inputs))
    with pytest.raises(ValueError, match=r"`ffn=0.5` was given, but model .* has no "
                                         r"feed-forward neurons that prune_width can remove"
                                         r".*\. Layers of classes without a rule: "
                                         r"TransformerBlock\. Pass ffn=0, or register a rule"):
        kp.prune_width(model, ffn=0.5, importance="magnitude")
