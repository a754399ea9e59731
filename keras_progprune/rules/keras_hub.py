"""Rules of KerasHub's blocks, registered by class path so that KerasHub
(which imports TensorFlow) is imported only by users of its models.
Checked against keras-hub 0.32.0."""

from keras_progprune import walk
from keras_progprune.rules.base import CLASS
from keras_progprune.rules.base import LayerRule
from keras_progprune.rules.base import WidthGroup
from keras_progprune.rules.base import bias_of
from keras_progprune.rules.keras_layers import WeightsRule
from keras_progprune.rules.base import register_rule_by_name
from keras_progprune.rules.base import sub_layer
from keras_progprune.rules.width import FeedForwardRule
from keras_progprune.rules.width import UniformStackRule

class HubBlockRule(FeedForwardRule):
    """KerasHub's `TransformerEncoder` / `TransformerDecoder`: feed-forward
    neurons by `intermediate_dim`; heads by rebuilding the block as its
    `keras_progprune.hub_layers` subclass with an explicit `head_dim` (its
    own head size is `hidden_dim // num_heads`). A decoder with
    cross-attention keeps its heads (both attentions share `num_heads`).

    Args:
        head_sized: the name of the `hub_layers` class that rebuilds the
            block with fewer heads.
    """

    def __init__(self, head_sized):
        super().__init__("_feedforward_intermediate_dense", "_feedforward_output_dense",
                         "intermediate_dim", attention="_self_attention_layer",
                         heads_key="num_heads")
        self.head_sized = head_sized

    def width_groups(self, layer):
        groups = super().width_groups(layer)
        if getattr(layer, "_cross_attention_layer", None) is not None:
            groups[1].fixed = ("its cross-attention shares `num_heads` with its "
                               "self-attention")
        return groups

    def resize(self, layer, kept):
        overrides, kept = super().resize(layer, kept)
        return head_sized(layer, overrides, sub_layer(layer, self.attention),
                          self.head_sized), kept


def head_sized(layer, overrides, attention, class_name):
    """Overrides that rebuild a KerasHub block with fewer heads as the
    `hub_layers` class `class_name`, whose `head_dim` keeps the heads'
    size."""
    if overrides.get("num_heads", layer.num_heads) == layer.num_heads:
        return overrides
    from keras_progprune import hub_layers  # noqa: PLC0415 (needs KerasHub)

    overrides["head_dim"] = int(attention.key_dim)
    overrides[CLASS] = getattr(hub_layers, class_name)
    return overrides


class HubViTRule(UniformStackRule):
    """KerasHub's `ViTEncoder`: one `mlp_dim` and one `num_heads` for every
    block (the widest kept, see `UniformStackRule`); fewer heads rebuild it
    as `hub_layers.HeadSizedViTEncoder`."""

    def __init__(self):
        super().__init__("encoder_layers", _vit_block_rule(),
                         {"ffn": "mlp_dim", "heads": "num_heads"})

    def resize(self, layer, kept):
        overrides, kept = super().resize(layer, kept)
        return head_sized(layer, overrides, layer.encoder_layers[0].mha,
                          "HeadSizedViTEncoder"), kept


def _vit_block_rule():
    """KerasHub's `ViTEncoderBlock`: `mlp_dim` neurons, `num_heads` heads
    (its config holds `key_dim`)."""
    return FeedForwardRule("mlp.dense_1", "mlp.dense_2", "mlp_dim", attention="mha",
                           heads_key="num_heads")


class GatedFeedForwardRule(LayerRule):
    """A KerasHub decoder block with a gated feed-forward network (SwiGLU,
    GeGLU: `down(act(gate(x)) * up(x))`): a neuron is one column of the
    gate and up kernels (and biases) and one row of the down kernel, so
    they go together. The block's width is the backbone's
    `intermediate_dim`, `per_neuron` times the neurons (Gemma counts both
    branches: 2). The attention heads (grouped-query) are not removable
    here yet.

    Args:
        gate, up, down: attribute paths of the three projections.
        per_neuron: `intermediate_dim` per neuron.
    """

    def __init__(self, gate, up, down, per_neuron=1):
        self.gate, self.up, self.down, self.per_neuron = gate, up, down, per_neuron

    def width_groups(self, layer):
        gate, up, down = (sub_layer(layer, path) for path in (self.gate, self.up, self.down))
        members = [(gate.kernel, -1), (bias_of(gate), 0), (up.kernel, -1), (bias_of(up), 0),
                   (down.kernel, 0)]
        return [WidthGroup("ffn", layer, [m for m in members if m[0] is not None],
                           [(down.kernel, 0)], probe=(down, "input", -1))]

    def resize(self, layer, kept):
        (indices,) = kept.values()
        return {"intermediate_dim": int(len(indices)) * self.per_neuron}, kept

    def __repr__(self):
        return (f"GatedFeedForwardRule({self.gate!r}, {self.up!r}, {self.down!r}, "
                f"per_neuron={self.per_neuron})")


# Decoder block class -> (gate, up, down, per_neuron), keras-hub 0.32.0.
_GATED = {
    "LlamaTransformerDecoder": ("_feedforward_gate_dense", "_feedforward_intermediate_dense",
                                "_feedforward_output_dense", 1),
    "MistralTransformerDecoder": ("_feedforward_gate_dense",
                                  "_feedforward_intermediate_dense",
                                  "_feedforward_output_dense", 1),
    "QwenTransformerDecoder": ("_feedforward_gate_dense", "_feedforward_intermediate_dense",
                               "_feedforward_output_dense", 1),
    "Qwen3TransformerDecoder": ("_feedforward_gate_dense",
                                "_feedforward_intermediate_dense",
                                "_feedforward_output_dense", 1),
    "Phi3Decoder": ("feedforward_gate_dense", "feedforward_intermediate_dense",
                    "feedforward_output_dense", 1),
    "GemmaDecoderBlock": ("gating_ffw", "gating_ffw_2", "ffw_linear", 2),
    "Gemma3DecoderBlock": ("gating_ffw", "gating_ffw_2", "ffw_linear", 1),
    "Gemma4TextDecoderBlock": ("gating_ffw", "gating_ffw_2", "ffw_linear", 1),
    "SmolLM3DecoderLayer": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", 1),
}


class DepthRule:
    """How `prune_depth` removes whole blocks of a KerasHub backbone: the
    blocks are `backbone.transformer_layers`, counted by `num_layers`, and
    every config list with one entry per block (SmolLM3's `layer_types`)
    keeps the kept blocks' entries.

    Args:
        kind_of: optional function `(config, i) -> kind` of block `i` where
            the backbone makes its blocks differently by their index
            (Gemma's local and global attention): a kept block must keep
            its kind at its new index, or the removal is refused.
        kinds: what the kinds are, for the error.
    """

    def __init__(self, kind_of=None, kinds=""):
        self.kind_of = kind_of
        self.kinds = kinds

    def blocks(self, backbone):
        return list(backbone.transformer_layers)

    def config(self, backbone, kept):
        """The backbone config values to change to keep blocks `kept`."""
        config = backbone.get_config()
        n = len(self.blocks(backbone))
        changed = {"num_layers": len(kept)}
        for key, value in config.items():
            if isinstance(value, (list, tuple)) and len(value) == n:
                changed[key] = [value[i] for i in kept]
        return changed

    def check(self, backbone, kept):
        """Raises if the blocks `kept` would not compute as they did."""
        if self.kind_of is None:
            return
        config = backbone.get_config()
        moved = [(i, k) for k, i in enumerate(kept)
                 if self.kind_of(config, i) != self.kind_of(config, k)]
        if moved:
            i, k = moved[0]
            raise ValueError(
                f"{type(backbone).__name__} makes its blocks by their index ({self.kinds}), "
                f"so keeping block {i} as block {k} would change what it computes "
                f"({len(moved)} kept block(s) would). Pass an `importance` callable "
                "whose scores keep every kept block's kind at its new index, or leave "
                "this model's depth as it is.")


def _gemma4_kind(config, i):
    if config.get("num_kv_shared_layers"):
        return ("kv-shared", i >= config["num_layers"] - config["num_kv_shared_layers"])
    if config.get("layer_types"):
        return None  # sliced with the blocks
    pattern = config["sliding_window_pattern"]
    return i % pattern == pattern - 1


# Backbone class name -> its DepthRule (checked against keras-hub 0.32.0;
# the index patterns are those of each backbone's block loop).
_DEPTH = {
    "GemmaBackbone": DepthRule(lambda c, i: bool(c["use_sliding_window_attention"])
                               and i % 2 == 0,
                               "sliding-window attention in every even block"),
    "Gemma3Backbone": DepthRule(lambda c, i: bool(c["use_sliding_window_attention"])
                                and i % 6 < 5,
                                "five sliding-window blocks, then one global"),
    "Gemma4Backbone": DepthRule(_gemma4_kind, "global attention every "
                                "`sliding_window_pattern` blocks, and trailing blocks "
                                "that share key/value caches"),
}


def depth_rule(backbone):
    """The `DepthRule` of a KerasHub backbone, or None when it holds no
    `transformer_layers`."""
    if not hasattr(backbone, "transformer_layers"):
        return None
    return _DEPTH.get(type(backbone).__name__, DepthRule())


def _register_builtins():
    for name, (gate, up, down, per_neuron) in _GATED.items():
        register_rule_by_name(walk.hub_class_path(name),
                              GatedFeedForwardRule(gate, up, down, per_neuron))
    # Learned positions `[sequence, hidden]`, looked up like a token table.
    register_rule_by_name(walk.hub_class_path("PositionEmbedding"),
                          WeightsRule(("embeddings",)))
    register_rule_by_name(walk.hub_class_path("TransformerEncoder"),
                          HubBlockRule("HeadSizedTransformerEncoder"))
    register_rule_by_name(walk.hub_class_path("TransformerDecoder"),
                          HubBlockRule("HeadSizedTransformerDecoder"))
    register_rule_by_name(walk.hub_class_path("ViTEncoderBlock"), _vit_block_rule())
    register_rule_by_name(walk.hub_class_path("ViTEncoder"), HubViTRule())


_register_builtins()
