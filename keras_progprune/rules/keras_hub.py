"""Rules of KerasHub's blocks, registered by class path so that KerasHub
(which imports TensorFlow) is imported only by users of its models.
Checked against keras-hub 0.32.0."""

import contextlib
import contextvars

import numpy as np

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
    GeGLU: `down(act(gate(x)) * up(x))`) and grouped-query attention.

    Feed-forward: a neuron is one column of the gate and up kernels (and
    biases) and one row of the down kernel, so they go together. The width
    is the backbone's `intermediate_dim`, `per_neuron` times the neurons
    (Gemma counts both branches: 2).

    Attention (`attention` given): `num_query_heads` query heads share
    `num_key_value_heads` key/value heads, `g` query heads per group. Two
    ways to remove them; one is pruned at a time (`attention_units`), the
    other is reported as fixed:

    - `"heads"` (the default): a channel is a query-head *slot*: slot `j`
      owns the `j`-th query head of every group (its query kernel slice and
      its rows of the output kernel). Removing slots removes the same
      number of query heads from every group and keeps every key/value
      head, as Minitron does; the slots are ranked across groups (one
      choice for all of them).
    - `"kv_heads"`: a channel is a whole key/value group: its key and value
      heads and its `g` query heads.

    The groups stay contiguous, so either is exact. The backbone's config
    then says the new counts with the same `head_dim`; a family whose
    config derives the head size is rebuilt as its `hub_layers` subclass.

    Args:
        gate: attribute path of the gate projection.
        up: attribute path of the up projection.
        down: attribute path of the down projection.
        per_neuron: `intermediate_dim` per neuron.
        attention: optional attribute path of the attention layer; its
            query, key, value and output EinsumDense sublayers are read.
        query: the query projection's attribute name in the attention
            layer (the key and value names are it with "query" replaced).
        output: the output projection's attribute name.
        heads_axis: the heads axis of the query, key and value kernels.
        heads_fixed: None, or why this block's heads can't be removed.
    """

    def __init__(self, gate, up, down, per_neuron=1, attention=None, query="query_dense",
                 output="output_dense", heads_axis=0, heads_fixed=None):
        self.gate, self.up, self.down, self.per_neuron = gate, up, down, per_neuron
        self.attention, self.query, self.output = attention, query, output
        self.heads_axis, self.heads_fixed = heads_axis, heads_fixed

    def width_groups(self, layer):
        gate, up, down = (sub_layer(layer, path) for path in (self.gate, self.up, self.down))
        members = [(gate.kernel, -1), (bias_of(gate), 0), (up.kernel, -1), (bias_of(up), 0),
                   (down.kernel, 0)]
        groups = [WidthGroup("ffn", layer, [m for m in members if m[0] is not None],
                             [(down.kernel, 0)], probe=(down, "input", -1))]
        if self.attention is not None:
            groups += [self._heads(layer), self._kv_heads(layer)]
        return groups

    def parts(self, layer):
        """`{"query", "key", "value", "output": sublayer}` of the block's
        attention."""
        attention = sub_layer(layer, self.attention)
        names = {"query": self.query, "key": self.query.replace("query", "key"),
                 "value": self.query.replace("query", "value"), "output": self.output}
        return {part: sub_layer(attention, name) for part, name in names.items()}

    def _counts(self, layer):
        """`(query heads, key/value heads)` of the block."""
        heads = int(self.parts(layer)["query"].kernel.shape[self.heads_axis])
        attention = sub_layer(layer, self.attention)
        # Gemma 4's global blocks may have fewer key/value heads than the
        # config's `num_key_value_heads` (`effective_num_kv_heads`).
        kv = (getattr(attention, "effective_num_kv_heads", None)
              or getattr(layer, "num_key_value_heads", None) or attention.num_key_value_heads)
        return heads, int(kv)

    def _fixed(self, units):
        if self.heads_fixed:
            return self.heads_fixed
        if _ATTENTION_UNITS.get() != units:
            return (f"its {_UNITS[units]} are removed on their own: "
                    f"kp.prune_width({units}=...)")
        return None

    def _heads(self, layer):
        parts = self.parts(layer)
        heads, groups = self._counts(layer)
        per_group = heads // groups
        slot = np.arange(heads) % per_group  # query head -> its slot in its group
        members = [(parts["query"].kernel, self.heads_axis, slot),
                   (parts["output"].kernel, 0, slot)]
        if bias_of(parts["query"]) is not None:
            members.append((parts["query"].bias, 0, slot))
        return WidthGroup("heads", layer, members, [(parts["output"].kernel, 0, slot)],
                          probe=(parts["output"], "input", -2, slot),
                          fixed=self._fixed("heads"), size=per_group,
                          even="query heads of each key/value group")

    def _kv_heads(self, layer):
        parts = self.parts(layer)
        heads, groups = self._counts(layer)
        group_of = np.arange(heads) // (heads // groups)  # query head -> its group
        if parts["key"] is None or parts["value"] is None:
            # Gemma 4: a block that reads another block's keys and values, or
            # whose values are its keys: its groups are not its own to remove.
            return WidthGroup("kv_heads", layer, [(parts["query"].kernel, self.heads_axis,
                                                   group_of)],
                              [(parts["output"].kernel, 0, group_of)], size=groups,
                              fixed="its key/value projections are shared (with another "
                                    "block, or keys with values)")
        members = [(parts["query"].kernel, self.heads_axis, group_of),
                   (parts["output"].kernel, 0, group_of)]
        for part, channels in (("query", group_of), ("key", None), ("value", None)):
            if part != "query":
                members.append((parts[part].kernel, self.heads_axis))
            if bias_of(parts[part]) is not None:
                members.append((parts[part].bias, 0, channels))
        return WidthGroup("kv_heads", layer, [m[:2] if m[-1] is None else m for m in members],
                          [(parts["output"].kernel, 0, group_of)],
                          probe=(parts["output"], "input", -2, group_of),
                          fixed=self._fixed("kv_heads"), size=groups,
                          even="key/value groups")

    def resize(self, layer, kept):
        overrides = {}
        for label, indices in kept.items():
            if label.endswith("/ffn"):
                overrides["intermediate_dim"] = int(len(indices)) * self.per_neuron
                continue
            heads, groups = self._counts(layer)
            if len(indices) == (groups if label.endswith("/kv_heads") else heads // groups):
                continue  # every head kept: nothing to say (nor a subclass to need)
            head_dim = int(self.parts(layer)["query"].kernel.shape[-1])
            if label.endswith("/kv_heads"):
                overrides.update(num_key_value_heads=int(len(indices)),
                                 num_query_heads=heads // groups * int(len(indices)),
                                 head_dim=head_dim)
            else:
                overrides.update(num_query_heads=groups * int(len(indices)),
                                 head_dim=head_dim)
        return overrides, kept

    def __repr__(self):
        return (f"GatedFeedForwardRule({self.gate!r}, {self.up!r}, {self.down!r}, "
                f"per_neuron={self.per_neuron}, attention={self.attention!r})")


_UNITS = {"heads": "query heads", "kv_heads": "key/value groups"}
# Which attention channels of a grouped-query block are pruned: query-head
# slots ("heads") or whole key/value groups ("kv_heads"). Both cut the same
# query kernel axis, so one is a width group at a time; `kp.prune_width`
# removes `kv_heads` in a pass of its own.
_ATTENTION_UNITS = contextvars.ContextVar("attention_units", default="heads")


@contextlib.contextmanager
def attention_units(units):
    """Chooses what channel pruning removes in grouped-query attention.

    By default a grouped-query block's attention channels are query-head
    slots (`"heads"`: the same query heads go from every key/value group,
    as Minitron does). Inside this block they are whole key/value groups
    (`"kv_heads"`). Wrap, train and shrink inside the same block: the
    choice is read whenever the channel groups are made.

    Args:
        units: `"heads"` or `"kv_heads"`.

    Example:

    ```python
    with kp.attention_units("kv_heads"):
        pruned = kp.prune_low_magnitude(task, schedule, structure="channel")
        pruned.fit(data, callbacks=[kp.ProgressivePruningCallback()])
        small = kp.shrink(pruned)
    ```
    """
    if units not in _UNITS:
        raise ValueError(
            f"`units` must be one of {sorted(_UNITS)}. Received: units={units!r}.")
    token = _ATTENTION_UNITS.set(units)
    try:
        yield
    finally:
        _ATTENTION_UNITS.reset(token)


# Decoder block class -> (gate, up, down, per_neuron, attention, query, output,
# heads_axis); keras-hub 0.32.0. Llama, Qwen (2.5) and Phi-3 derive their
# head size, so fewer heads rebuild them as their `hub_layers` subclass.
_GATED = {
    "LlamaTransformerDecoder": ("_feedforward_gate_dense", "_feedforward_intermediate_dense",
                                "_feedforward_output_dense", 1, "_self_attention_layer",
                                "_query_dense", "_output_dense", 1),
    "MistralTransformerDecoder": ("_feedforward_gate_dense",
                                  "_feedforward_intermediate_dense",
                                  "_feedforward_output_dense", 1, "_self_attention_layer",
                                  "_query_dense", "_output_dense", 1),
    "QwenTransformerDecoder": ("_feedforward_gate_dense", "_feedforward_intermediate_dense",
                               "_feedforward_output_dense", 1, "_self_attention_layer",
                               "_query_dense", "_output_dense", 1),
    "Qwen3TransformerDecoder": ("_feedforward_gate_dense",
                                "_feedforward_intermediate_dense",
                                "_feedforward_output_dense", 1, "_self_attention_layer",
                                "_query_dense", "_output_dense", 1),
    "Phi3Decoder": ("feedforward_gate_dense", "feedforward_intermediate_dense",
                    "feedforward_output_dense", 1, "attention", "query_dense",
                    "output_dense", 1),
    "GemmaDecoderBlock": ("gating_ffw", "gating_ffw_2", "ffw_linear", 2, "attention",
                          "query_dense", "output_dense", 0),
    "Gemma3DecoderBlock": ("gating_ffw", "gating_ffw_2", "ffw_linear", 1, "attention",
                           "query_dense", "output_dense", 0),
    "Gemma4TextDecoderBlock": ("gating_ffw", "gating_ffw_2", "ffw_linear", 1, "attention",
                               "query_dense", "output_dense", 0),
    "SmolLM3DecoderLayer": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", 1, None, None,
                            None, 0),
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
    for name, (gate, up, down, per_neuron, attention, query, output,
               axis) in _GATED.items():
        register_rule_by_name(walk.hub_class_path(name), GatedFeedForwardRule(
            gate, up, down, per_neuron, attention, query, output, axis))
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
