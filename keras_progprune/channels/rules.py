"""Layer rules: one object per layer class that says what the layer does to
channels, and the width rules for the channels inside a layer
(feed-forward neurons, attention heads).

`LayerRule` is the protocol; `register_layer_rule` the one registry. The
built-in rules of Keras's own layers (Dense, convolutions, normalization,
pooling, merges...) are in `kinds.py`; the width rules below.

The channel grouping (`graph.py`) sees a model's layers as nodes. Some
layers hold channels of their own that no other node sees: the
intermediate units of a transformer block's feed-forward network, the
heads of an attention layer. A `LayerRule` names them as `WidthGroup`s, and
says how the layer is rebuilt smaller; the grouping, the mask updates, the
MACs count and `shrink` then treat each group as one more channel space.

One rule per layer class, looked up along the class's MRO, so a rule for a
base class covers its subclasses. Built in: `keras.layers.MultiHeadAttention`
(heads), and KerasHub's `TransformerEncoder`, `TransformerDecoder`,
`ViTEncoderBlock` and `ViTEncoder` (feed-forward neurons; heads where the
block's config can say the head size, see `keras_progprune.hub_layers`). A user
registers a rule for their own class with `register_layer_rule`.

Exactness: a removed channel's *output* slices (the rows of the projection
that carries it back to the residual stream) are zero, so it contributes
exactly nothing, whatever its inputs and activation compute. Removing it
then changes no output.
"""

import numpy as np

import keras

from keras_progprune import walk

PRODUCER = "producer"      # new output channels from a kernel: Dense, Conv
FOLLOWER = "follower"      # per-channel weights on its input's channels: BN, depthwise
PASS = "pass"              # channel i in -> channel i out, no weights
MERGE = "merge"            # element-wise over several inputs: Add, Multiply
CONCAT = "concat"          # channels of the inputs side by side
FLATTEN = "flatten"        # (..., C) -> positions x C rows
RESHAPE = "reshape"        # a Reshape that keeps the channel axis last
UNKNOWN = "unknown"


class Kind:
    """How one operation treats channels.

    Attributes:
        name: one of the constants above.
        zero_reason: for PASS/PRODUCER/FOLLOWER, why a zero input channel
            may come out non-zero (None when zeros are kept); for MERGE,
            "all" (zero only if every input is: Add) or "any" (zero if one
            is: Multiply); for UNKNOWN, why the operation isn't understood.
    """

    def __init__(self, name, zero_reason=None):
        self.name = name
        self.zero_reason = zero_reason

    def __repr__(self):
        return f"Kind({self.name!r}, {self.zero_reason!r})"


_RULES = {}          # class -> LayerRule
_RULES_BY_NAME = {}  # "module.QualName" -> LayerRule, for optional packages
# An override key of `LayerRule.resize`: the class to rebuild the layer as.
CLASS = "__class__"


class Member:
    """One weight of a `WidthGroup`: `variable`, the `axis` that indexes the
    group's channels, and `channels`, the channel each index of that axis
    belongs to (an int array as long as the axis). Index `i` along `axis`
    is part of channel `channels[i]`: a key/value head owns its `head_dim`
    columns of a flat projection and is shared by a group of query heads;
    a gated feed-forward neuron owns one column of the gate kernel and one
    of the up kernel."""

    def __init__(self, variable, axis, channels=None):
        self.variable = variable
        self.axis = axis % len(variable.shape)
        length = int(variable.shape[self.axis])
        if channels is None:
            channels = np.arange(length)
        channels = np.asarray(channels, np.int64).reshape(-1)
        if len(channels) != length or (length and channels.min() < 0):
            raise ValueError(
                f"A width group's `channels` for {variable.path!r} must give one channel "
                f"(>= 0) per index of axis {axis} ({length} indices). Received: "
                f"{len(channels)} entries.")
        self.channels = channels

    def indices(self, kept):
        """The indices along `axis` of the channels `kept` (sorted)."""
        return np.flatnonzero(np.isin(self.channels, np.asarray(kept, np.int64)))

    def per_channel(self, per_index, size, reduce=np.add):
        """`per_index` (one value per index of `axis`) reduced per channel."""
        out = np.full(size, 0.0 if reduce is np.add else -np.inf)
        reduce.at(out, self.channels, np.asarray(per_index, np.float64))
        return out

    def __repr__(self):
        return f"Member({self.variable.path!r}, axis={self.axis})"


def _present(entries):
    return [e for e in entries
            if (e.variable if isinstance(e, Member) else e[0]) is not None]


def _member(entry):
    if isinstance(entry, Member):
        return entry
    return Member(*entry)


class WidthGroup:
    """Channels inside one layer that are kept or removed one at a time.

    Args:
        name: `"ffn"` (feed-forward neurons) or `"heads"` (attention
            heads), or a name of the rule's choosing.
        owner: the (sub)layer whose config sets this width.
        members: the weights that belong to the channels: `Member`s, or
            `(variable, axis)` (index `c` along `axis` is channel `c`) or
            `(variable, axis, channels)` (index `i` is channel
            `channels[i]`, so a channel may own several indices). All are
            masked and scored. `None` variables are skipped.
        outputs: the members (a subset, same forms) that carry a channel's
            contribution out of the layer; a channel whose output slices are
            all zero is removable exactly.
        probe: `(sublayer, "input" or "output", axis)` or `(sublayer,
            "input" or "output", axis, channels)`: the tensor whose `axis`
            indexes these channels (index `i` is channel `channels[i]`),
            read for activation importance.
        fixed: None, or why this group can't be removed (it is then only
            reported).
        size: the number of channels. Defaults to one more than the
            highest channel of the first member.

    Every reader of a group goes through its members' `channels`: masks,
    scores, probes, `shrink`'s slices and `zero_outputs`.
    """

    def __init__(self, name, owner, members, outputs, probe=None, fixed=None, size=None):
        self.name = name
        self.owner = owner
        self.members = [_member(m) for m in _present(members)]
        self.outputs = [_member(m) for m in _present(outputs)]
        self.probe = probe
        self.fixed = fixed
        self.size = int(size if size is not None else self.members[0].channels.max() + 1)
        for m in self.members + self.outputs:
            if m.channels.max(initial=-1) >= self.size:
                raise ValueError(
                    f"Width group {self.name!r} has {self.size} channels, but a member "
                    f"({m.variable.path!r}) names channel {int(m.channels.max())}. Pass "
                    "`size`, or number the channels from 0.")

    @property
    def label(self):
        return f"{self.owner.name}/{self.name}"

    def zero_outputs(self):
        """Per channel: whether every output slice is all zero."""
        zero = np.ones(self.size, bool)
        for m in self.outputs:
            value = np.asarray(keras.ops.convert_to_numpy(m.variable))
            others = tuple(a for a in range(value.ndim) if a != m.axis)
            nonzero = np.any(value != 0, axis=others).astype(np.float64)
            zero &= m.per_channel(nonzero, self.size, np.maximum) <= 0
        return zero

    def __repr__(self):
        return f"WidthGroup({self.label!r}, size={self.size})"


class LayerRule:
    """Everything the channel code knows about one layer class.

    Subclass it for your own layer class and register it with
    `keras_progprune.register_layer_rule`; every method has a default, so a
    rule says only what applies. Two parts:

    The layer as a node of the channel grouping (`channels/graph.py`):

    - `kind(layer, rank)`: a `Kind`, how it maps the channels (last axis)
      of its inputs to its outputs. Default: unknown, so every channel
      around it stays whole.
    - `carries_channels`: class attribute, True when channel masks cover
      its weights (producers and followers).
    - `channel_weights(layer)`: `[(variable, axis)]` a channel mask cuts
      (a producer's kernel slice and bias entry; a follower's per-channel
      weights).
    - `reader(layer)`: `(variable, axis, multiplier)`, the weight whose rows
      read the input channels (`multiplier` rows per channel), masked with
      them.
    - `ignored_inputs(layer)`: per input channel, whether its weights for it
      are all zero (it then reads nothing of it).
    - `constants(layer, inputs, width)`: the per-channel constant output
      from the inputs' per-channel constants (NaN: depends on the input).
    - `absorbs_constants(layer)`: whether its bias takes a constant input
      channel exactly (then `shrink` folds it in).
    - `resize_channels(layer, in_rows, out_rows)`: `(config overrides,
      {id(variable): slice function})` that rebuild it with those channels.
    - `channel_macs(layer, input_shape, output_shape, in_channels,
      out_channels)`: multiply-accumulates per example.

    The channels inside the layer (width groups, for transformers):

    - `width_groups(layer)`: the `WidthGroup`s of a built layer.
    - `resize(layer, kept)`: `kept` maps each group's `label` to the sorted
      channel indices that stay; returns `(config overrides, kept)`: the
      config changes that rebuild the layer at those widths, and the
      indices to keep (the same, or more where the layer's config can only
      say one width for several groups: extra channels are ones whose
      output slices are zero, so the result stays exact).
    - `macs(layer, input_shape, widths)` may return the multiply-accumulates
      per example at `widths` (`{label: channels}`), or None (not counted).
    """

    carries_channels = False

    def kind(self, layer, rank=None):
        return Kind(UNKNOWN, f"layer {layer.name!r} of type {type(layer).__name__} is "
                             "not known to the channel grouping")

    def channel_weights(self, layer):
        return None

    def reader(self, layer):
        return None

    def ignored_inputs(self, layer):
        # By default from `reader`: a channel whose rows are all zero.
        variable, axis, multiplier = self.reader(layer)
        value = np.asarray(keras.ops.convert_to_numpy(variable))
        axis = axis % value.ndim
        zero = np.all(value == 0, axis=tuple(a for a in range(value.ndim) if a != axis))
        return np.all(zero.reshape(-1, multiplier), axis=1)

    def constants(self, layer, inputs, width):
        return np.full(width, np.nan)

    def absorbs_constants(self, layer):
        return False

    def resize_channels(self, layer, in_rows, out_rows):
        return {}, {}

    def channel_macs(self, layer, input_shape, output_shape, in_channels, out_channels):
        return 0

    def width_groups(self, layer):
        return []

    def has_width(self):
        """Whether this rule names channels inside its layer."""
        return type(self).width_groups is not LayerRule.width_groups

    def resize(self, layer, kept):
        raise NotImplementedError(
            f"{type(self).__name__} names width groups but has no `resize`: implement "
            "`resize(layer, kept)` to rebuild the layer at the kept widths.")

    def macs(self, layer, input_shape, widths):
        return None

    def __repr__(self):
        return f"{type(self).__name__}()"


def register_layer_rule(layer_class, rule):
    """Registers `rule` (a `LayerRule`) for `layer_class` and its subclasses.

    Then `structure="channel"`, `kp.shrink` and `kp.prune_width` treat the
    layer as the rule says: a built-in rule (`kp.DenseRule()`,
    `kp.ProducerRule(...)`, ...) for a class that acts on channels like a
    Keras layer, a `kp.FeedForwardRule`/`kp.AttentionRule` for the width
    channels inside it, or a `LayerRule` subclass of your own. A rule
    registered later for the same class replaces the earlier one.

    Args:
        layer_class: a subclass of `keras.layers.Layer`.
        rule: a `LayerRule` instance.

    Raises:
        ValueError: if `layer_class` is not a Layer class or `rule` is not a
            `LayerRule`.

    Examples:
        >>> import keras, keras_progprune as kp
        >>> class Block(keras.layers.Layer):
        ...     def __init__(self, units=8, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.units = units
        ...     def build(self, shape):
        ...         self.up = keras.layers.Dense(self.units, activation="relu")
        ...         self.up.build(shape)
        ...         self.down = keras.layers.Dense(shape[-1])
        ...         self.down.build(shape[:-1] + (self.units,))
        ...     def call(self, x):
        ...         return x + self.down(self.up(x))
        ...     def get_config(self):
        ...         return {**super().get_config(), "units": self.units}
        >>> kp.register_layer_rule(Block, kp.FeedForwardRule("up", "down", "units"))
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise ValueError(
            "`layer_class` must be a subclass of keras.layers.Layer. Received: "
            f"layer_class={layer_class!r}.")
    if not isinstance(rule, LayerRule):
        raise ValueError(
            "`rule` must be a keras_progprune.LayerRule instance (for example "
            "kp.FeedForwardRule(...)). Received: "
            f"rule={rule!r} of type {type(rule).__name__}.")
    _RULES[layer_class] = rule


def registered():
    """`{class: LayerRule}` of every rule registered by class."""
    return dict(_RULES)


def rule_for(layer):
    """The `LayerRule` of `layer`'s class (the nearest along its MRO), or None."""
    for cls in type(layer).__mro__:
        if cls in _RULES:
            return _RULES[cls]
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name in _RULES_BY_NAME:
            return _RULES_BY_NAME[name]
    return None


def width_groups(layer):
    """The `WidthGroup`s of a built layer (none if it has no rule)."""
    rule = rule_for(layer)
    if rule is None or not getattr(layer, "built", False):
        return []
    return rule.width_groups(layer)


def _sub(layer, path):
    for part in path.split(".") if path else ():
        layer = getattr(layer, part)
    return layer


def _bias(layer):
    return getattr(layer, "bias", None)


# -- the two kinds of width ------------------------------------------------
def heads_group(attention, owner, fixed=None):
    """The heads of a `keras.layers.MultiHeadAttention` (or subclass): each
    head's query, key and value kernel and bias slices, and its rows of the
    output projection."""
    members = []
    for dense in (attention.query_dense, attention.key_dense, attention.value_dense):
        members += [(dense.kernel, 1), (_bias(dense), 0)]
    members.append((attention.output_dense.kernel, 0))
    return WidthGroup("heads", owner, members, [(attention.output_dense.kernel, 0)],
                      probe=(attention.output_dense, "input", -2), fixed=fixed)


def ffn_group(inner, outer, owner):
    """The intermediate units of Dense `inner` -> activation -> Dense `outer`."""
    return WidthGroup("ffn", owner,
                      [(inner.kernel, -1), (_bias(inner), 0), (outer.kernel, 0)],
                      [(outer.kernel, 0)], probe=(inner, "output", -1))


def attention_macs(attention, length, heads):
    """MACs of one attention call per example, self-attention of `length`
    positions with `heads` heads."""
    model_dim = int(attention.query_dense.kernel.shape[0])
    key_dim, value_dim = int(attention.key_dim), int(attention.value_dim or attention.key_dim)
    out_dim = int(attention.output_dense.kernel.shape[-1])
    projections = length * model_dim * heads * (2 * key_dim + value_dim)
    scores = length * length * heads * (key_dim + value_dim)
    return projections + scores + length * heads * value_dim * out_dim


def _length(input_shape):
    shape = list(input_shape)
    return None if len(shape) < 3 or shape[1] is None else int(np.prod(shape[1:-1]))


class AttentionRule(LayerRule):
    """`keras.layers.MultiHeadAttention`: whole heads, rebuilt with a lower
    `num_heads` (its `key_dim` and `value_dim` are in its config)."""

    def width_groups(self, layer):
        return [heads_group(layer, layer)]

    def resize(self, layer, kept):
        (indices,) = kept.values()
        return {"num_heads": int(len(indices))}, kept

    def macs(self, layer, input_shape, widths):
        length = _length(input_shape)
        (heads,) = widths.values()
        return None if length is None else attention_macs(layer, length, heads)


class FeedForwardRule(LayerRule):
    """A layer with a feed-forward network inside: Dense `inner` ->
    activation -> Dense `outer`, its width in config key `config_key`.

    Args:
        inner: attribute path (dots for nesting) of the first Dense.
        outer: attribute path of the second Dense.
        config_key: the config key holding the intermediate width.
        attention: optional attribute path of a MultiHeadAttention inside;
            its heads are removable when `heads_key` is given.
        heads_key: the config key holding the number of heads, or None.
        heads_fixed: why the heads can't be removed when `heads_key` is
            None (reported).
    """

    def __init__(self, inner, outer, config_key, attention=None, heads_key=None,
                 heads_fixed=None):
        self.inner, self.outer, self.config_key = inner, outer, config_key
        self.attention, self.heads_key = attention, heads_key
        self.heads_fixed = heads_fixed

    def width_groups(self, layer):
        groups = [ffn_group(_sub(layer, self.inner), _sub(layer, self.outer), layer)]
        if self.attention is not None:
            fixed = None if self.heads_key else (
                self.heads_fixed or f"{type(layer).__name__} has no config key for "
                "its number of heads")
            groups.append(heads_group(_sub(layer, self.attention), layer, fixed))
        return groups

    def resize(self, layer, kept):
        overrides = {}
        for label, indices in kept.items():
            key = self.config_key if label.endswith("/ffn") else self.heads_key
            overrides[key] = int(len(indices))
        return overrides, kept

    def macs(self, layer, input_shape, widths):
        length = _length(input_shape)
        if length is None:
            return None
        inner = _sub(layer, self.inner)
        model_dim = int(inner.kernel.shape[0])
        out_dim = int(_sub(layer, self.outer).kernel.shape[-1])
        total = 0
        for label, width in widths.items():
            if label.endswith("/ffn"):
                total += length * width * (model_dim + out_dim)
            else:
                total += attention_macs(_sub(layer, self.attention), length, width)
        return total


def pad_to(kept, groups, width):
    """Each group's kept indices, padded to `width` with removed channels
    whose output slices are zero (exact: they add nothing)."""
    out = {}
    for group in groups:
        indices = np.asarray(kept[group.label], np.int64)
        spare = np.setdiff1d(np.flatnonzero(group.zero_outputs()), indices)
        out[group.label] = np.sort(np.concatenate(
            [indices, spare[:width - len(indices)]]))
    return out


class UniformStackRule(LayerRule):
    """A stack of blocks whose config says one width for all of them
    (KerasHub's `ViTEncoder`: `mlp_dim` for every block). Each block is
    rebuilt at the widest kept width; the extra channels of narrower blocks
    are removed ones, zero, so the result is exact.

    Args:
        blocks: attribute holding the list of blocks.
        block_rule: the `LayerRule` of one block.
        keys: `{group name: config key of the stack}`.
    """

    def __init__(self, blocks, block_rule, keys):
        self.blocks, self.block_rule, self.keys = blocks, block_rule, keys

    def width_groups(self, layer):
        return [g for block in getattr(layer, self.blocks)
                for g in self.block_rule.width_groups(block)]

    def resize(self, layer, kept):
        groups = [g for g in self.width_groups(layer) if g.label in kept]
        overrides, out = {}, {}
        for name, key in self.keys.items():
            same = [g for g in groups if g.name == name]
            if same:
                width = max(len(kept[g.label]) for g in same)
                overrides[key] = int(width)
                out.update(pad_to(kept, same, width))
        return overrides, out

    def macs(self, layer, input_shape, widths):
        total = 0
        for block in getattr(layer, self.blocks):
            own = {k: v for k, v in widths.items() if k.startswith(block.name + "/")}
            count = self.block_rule.macs(block, input_shape, own)
            if count is None:
                return None
            total += count
        return total


class HubBlockRule(FeedForwardRule):
    """KerasHub's `TransformerEncoder` / `TransformerDecoder`: feed-forward
    neurons by `intermediate_dim`; heads by rebuilding the block as its
    `keras_progprune.hub_layers` subclass with an explicit `head_dim` (its
    own head size is `hidden_dim // num_heads`). A decoder with
    cross-attention keeps its heads (both attentions share `num_heads`)."""

    def __init__(self):
        super().__init__("_feedforward_intermediate_dense", "_feedforward_output_dense",
                         "intermediate_dim", attention="_self_attention_layer",
                         heads_key="num_heads")

    def width_groups(self, layer):
        groups = super().width_groups(layer)
        if getattr(layer, "_cross_attention_layer", None) is not None:
            groups[1].fixed = ("its cross-attention shares `num_heads` with its "
                               "self-attention")
        return groups

    def resize(self, layer, kept):
        overrides, kept = super().resize(layer, kept)
        return head_sized(layer, overrides, _sub(layer, self.attention)), kept


def head_sized(layer, overrides, attention):
    """Overrides that rebuild a KerasHub block with fewer heads as its
    `hub_layers` subclass, whose `head_dim` keeps the heads' size."""
    if overrides.get("num_heads", layer.num_heads) == layer.num_heads:
        return overrides
    from keras_progprune import hub_layers  # noqa: PLC0415 (needs KerasHub)

    overrides["head_dim"] = int(attention.key_dim)
    for base, sized in hub_layers.HEAD_SIZED.items():
        if isinstance(layer, base):
            overrides[CLASS] = sized
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
        return head_sized(layer, overrides, layer.encoder_layers[0].mha), kept


def _vit_block_rule():
    """KerasHub's `ViTEncoderBlock`: `mlp_dim` neurons, `num_heads` heads
    (its config holds `key_dim`)."""
    return FeedForwardRule("mlp.dense_1", "mlp.dense_2", "mlp_dim", attention="mha",
                           heads_key="num_heads")


def _register_builtins():
    register_layer_rule(keras.layers.MultiHeadAttention, AttentionRule())
    _RULES_BY_NAME[walk.hub_class_path("TransformerEncoder")] = HubBlockRule()
    _RULES_BY_NAME[walk.hub_class_path("TransformerDecoder")] = HubBlockRule()
    _RULES_BY_NAME[walk.hub_class_path("ViTEncoderBlock")] = _vit_block_rule()
    _RULES_BY_NAME[walk.hub_class_path("ViTEncoder")] = HubViTRule()


_register_builtins()
