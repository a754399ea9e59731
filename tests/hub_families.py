"""Tiny random-init KerasHub causal language models, one per family, built
from their constructors (no download, no preprocessor): what the KerasHub
tests of this package run on. Checked against keras-hub 0.32.0."""

_GQA = dict(num_query_heads=4, num_key_value_heads=2)
_COMMON = dict(vocabulary_size=64, num_layers=2, hidden_dim=16, intermediate_dim=32)
_SMOL = dict(num_attention_heads=4, num_key_value_heads=2, attention_bias=False,
             attention_dropout=0.0, mlp_bias=False,
             layer_norm_epsilon=1e-6, max_position_embeddings=64, rope_theta=10000.0,
             partial_rotary_factor=1.0)

# Family: the backbone's arguments besides `_COMMON`.
FAMILIES = {
    "Gemma": dict(_GQA, head_dim=4),
    "Gemma3": dict(_GQA, head_dim=4, image_size=16),
    "Gemma4": dict(_GQA, head_dim=4, image_size=16),
    "Llama": dict(_GQA),
    "Llama3": dict(_GQA),
    "Mistral": dict(_GQA),
    "Qwen": dict(_GQA),
    "Qwen2": dict(_GQA),
    "Qwen3": dict(_GQA, head_dim=4),
    "Phi3": dict(_GQA),
    "SmolLM3": _SMOL,
    "GPT2": dict(num_heads=4, max_sequence_length=32),
    "OPT": dict(num_heads=4, max_sequence_length=32),
    "GPTNeoX": dict(num_heads=4, max_sequence_length=32, rotary_percentage=0.5),
    "Falcon": dict(num_attention_heads=4),
    "Bloom": dict(num_heads=4),
}


def causal_lm(family, **overrides):
    """A tiny `<family>CausalLM` around a random-init `<family>Backbone`."""
    import keras_hub  # noqa: PLC0415 (tests that use it import it)

    models = keras_hub.models
    config = {**_COMMON, **FAMILIES[family], **overrides}
    if family == "SmolLM3":  # one entry per block; RoPE skipped in every fourth
        config.setdefault("rope_layer_enabled_list",
                          [i % 4 != 3 for i in range(config["num_layers"])])
        config.setdefault("layer_types", ["full_attention"] * config["num_layers"])
    backbone = getattr(models, f"{family}Backbone")(**config)
    return getattr(models, f"{family}CausalLM")(backbone=backbone, preprocessor=None)


def token_batch(model, batch=2, length=8, seed=0):
    """Inputs for `model` (a task or backbone): random token ids, a full
    padding mask, and positions where the model takes them (Gemma 4)."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    made = {"token_ids": rng.integers(1, 64, (batch, length)).astype("int32"),
            "padding_mask": np.ones((batch, length), "int32"),
            "position_ids": np.tile(np.arange(length, dtype="int32"), (batch, 1))}
    graph = getattr(model, "backbone", model)
    return {name: made[name] for name in graph.input}
