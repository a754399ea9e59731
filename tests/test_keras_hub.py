"""KerasHub transformers (small random-init configs, no downloads)."""

import os

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import wrapper as wrapper_lib
from conftest import assert_close

keras_hub = pytest.importorskip("keras_hub")

SEQ = 8


def _text_inputs(n, with_segments):
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, 50, (n, SEQ)).astype("int32"),
         "padding_mask": np.ones((n, SEQ), "int32")}
    if with_segments:
        x["segment_ids"] = np.zeros((n, SEQ), "int32")
    return x


def _bert():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=SEQ)
    out = keras.layers.Dense(2, name="head")(backbone.output["pooled_output"])
    return keras.Model(backbone.input, out), _text_inputs(16, True)


def _gpt2():
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=SEQ)
    out = keras.layers.Dense(2, name="head")(backbone.output[:, -1, :])
    return keras.Model(backbone.input, out), _text_inputs(16, False)


def _vit():
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
        mlp_dim=32)
    out = keras.layers.Dense(2, name="head")(backbone.output[:, 0, :])
    x = np.random.default_rng(0).standard_normal((16, 16, 16, 3)).astype("float32")
    return keras.Model(backbone.input, out), x


# Layers that hold their own weight matrices (not made of prunable layers).
EXCLUDE = {"bert": [], "gpt2": [], "vit": ["vit_patching_and_embedding"]}


@pytest.mark.parametrize("name,make", [
    ("bert", _bert), pytest.param("gpt2", _gpt2, marks=pytest.mark.slow),
    pytest.param("vit", _vit, marks=pytest.mark.slow)])
def test_backbone_prunes_trains_strips_and_reloads(name, make, tmp_path):
    model, x = make()
    y = np.arange(16) % 2
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.8, 0, frequency=1),
                                    scope="global", exclude=EXCLUDE[name])
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0,
               callbacks=[kp.ProgressivePruningCallback()])
    # Attention and feed-forward kernels of both blocks are wrapped (through
    # their composite block or encoder layer) and pruned.
    weights = {v.path: v for w in wrapper_lib.collect_wrappers(pruned) for v in w.pruned_weights}
    attention = [p for p in weights if "query" in p]
    feed_forward = [p for p in weights
                    if any(k in p for k in ("intermediate", "mlp", "feedforward"))]
    assert len(attention) >= 2 and len(feed_forward) >= 2, sorted(weights)
    for path in attention + feed_forward:
        assert np.mean(weights[path].numpy() == 0) > 0.3, path
    kept = sum(int(np.sum(v.numpy() != 0)) for v in weights.values())
    assert 1 - kept / sum(v.numpy().size for v in weights.values()) == pytest.approx(0.8, abs=0.01)
    plain = kp.strip_pruning(pruned)
    assert_close(plain.predict(x, verbose=0), pruned.predict(x, verbose=0),
                               atol=1e-5)
    kp.save_model(plain, tmp_path / "m.keras", include_optimizer=False)
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert_close(again.predict(x, verbose=0), plain.predict(x, verbose=0),
                               atol=1e-5)


def test_refused_layers_are_listed_at_once_with_the_exclude_that_works():
    model, _ = _vit()
    with pytest.raises(ValueError, match=r"pass `exclude=\['vit_patching_and_embedding'\]`"):
        kp.prune_low_magnitude(model)


def test_embeddings_can_be_excluded_too():
    model, x = _bert()
    pruned = kp.prune_low_magnitude(
        model, exclude=["position_embedding", "token_embedding", "segment_embedding"])
    names = {w.layer.name for w in wrapper_lib.collect_wrappers(pruned)}
    assert "token_embedding" not in names and "transformer_layer_0" in names
