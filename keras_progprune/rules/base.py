"""Layer rules: one object per layer type that says everything the package
knows about it, and the one registry of them.

A `LayerRule` says, for one layer class (or operation):

- which weights unstructured and N:M pruning may mask (`prunable`) and
  each one's input-channel axis (`input_axes`, where N:M groups run);
- what the layer does to channels (`kind`, `channel_weights`, `reader`,
  `constants`...), for the channel grouping (`channels/graph.py`);
- the channels inside it (`width_groups`: feed-forward neurons, heads);
- how it is rebuilt smaller (`resize_channels`, `resize`) and its MACs.

`register_layer_rule` is the one registry, looked up along a class's MRO
(`rule_for`), so a rule for a base class covers its subclasses. Classes of
optional packages (KerasHub) are registered by their path
(`register_rule_by_name`), and operation nodes of Functional graphs by
their class name (`register_operation_rule`), in the same table. The
built-in rules: `keras_layers.py` (Keras's own layers and operations),
`width.py` (feed-forward and attention widths) and `keras_hub.py`
(KerasHub's blocks).

Exactness: a removed channel's *output* slices (the rows of the projection
that carries it back to the residual stream) are zero, so it contributes
exactly nothing, whatever its inputs and activation compute. Removing it
then changes no output.
"""

import numpy as np

import keras

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


# The one table: a class, "module.QualName" (a class of an optional package)
# or ("operation", class name) -> LayerRule.
_RULES = {}
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
        even: None, or what one channel is, when a one-shot fraction must
            remove a whole number of them (`"query heads of each key/value
            group"`): `kp.prune_width` then refuses a fraction that doesn't
            split evenly, rather than round it.

    Every reader of a group goes through its members' `channels`: masks,
    scores, probes, `shrink`'s slices and `zero_outputs`.
    """

    def __init__(self, name, owner, members, outputs, probe=None, fixed=None, size=None,
                 even=None):
        self.name = name
        self.even = even
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
    """Everything the package knows about one layer class.

    Subclass it for your own layer class and register it with
    `keras_progprune.register_layer_rule`; every method has a default, so a
    rule says only what applies. Three parts:

    Its weights, for unstructured and N:M masks: `prunable` (class
    attribute: variable names), `prunable_weights(layer)`,
    `input_axes(layer, weights)` and `inner_layers(layer)`.

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
    # Names of the variables that unstructured and N:M pruning mask
    # (matched against `variable.name` over the layer's weights, nested
    # ones included); empty: none. Biases and normalization parameters
    # never appear.
    prunable = ()

    def has_prunable(self):
        """Whether this rule names weights to mask (built or not)."""
        return bool(self.prunable)

    def prunable_weights(self, layer):
        """The variables of a built `layer` that get masks (see `prunable`),
        or None when this rule names none (the layer may still be prunable
        through its sublayers, or by its own `get_prunable_weights()`)."""
        if not self.has_prunable():
            return None
        return [w for w in layer.weights if w.name in self.prunable]

    def inner_layers(self, layer):
        """For a layer that only holds others (`TimeDistributed`), those
        layers: its prunable weights are theirs. None otherwise."""
        return None

    def input_axes(self, layer, weights):
        """The input-channel (reduction) axis of each of `weights`: where
        N:M groups run. Axis -2 by default (Dense `[in, out]`,
        convolutions `[..., in, out]`, recurrent kernels)."""
        return [max(len(w.shape) - 2, 0) for w in weights]

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
    return {k: v for k, v in _RULES.items() if isinstance(k, type)}


def register_rule_by_name(path, rule):
    """Registers `rule` for the class at `path` (`"module.QualName"`) and its
    subclasses, without importing it: for classes of optional packages."""
    _RULES[path] = rule


def register_operation_rule(name, rule):
    """Registers `rule` for the operation nodes (not Layers) of Functional
    graphs whose class is named `name` (`keras.ops.add` -> `"Add"`)."""
    _RULES[("operation", name)] = rule


def rule_for(layer):
    """The `LayerRule` of `layer`'s class (the nearest along its MRO), or None."""
    for cls in type(layer).__mro__:
        rule = _RULES.get(cls) or _RULES.get(f"{cls.__module__}.{cls.__qualname__}")
        if rule is not None:
            return rule
    return None


def width_groups(layer):
    """The `WidthGroup`s of a built layer (none if it has no rule)."""
    rule = rule_for(layer)
    if rule is None or not getattr(layer, "built", False):
        return []
    return rule.width_groups(layer)


def sub_layer(layer, path):
    """The sublayer of `layer` at attribute path `path` (dots for nesting)."""
    for part in path.split(".") if path else ():
        layer = getattr(layer, part)
    return layer


def bias_of(layer):
    """`layer.bias`, or None."""
    return getattr(layer, "bias", None)



_UNKNOWN_LAYER = LayerRule()


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def rule_of(operation):
    """The rule of a Layer (its class's, nearest along the MRO) or of an
    operation node (by class name); a rule whose kind is unknown when there
    is none."""
    if isinstance(operation, keras.layers.Layer):
        return rule_for(operation) or _UNKNOWN_LAYER
    name = type(operation).__name__
    return _RULES.get(("operation", name)) or _UnknownOperation(name)


class _UnknownOperation(LayerRule):
    def __init__(self, name):
        self.name = name

    def kind(self, layer, rank=None):
        return Kind(UNKNOWN, f"operation {self.name} is not known to the channel grouping")


def classify(operation, rank=None):
    """The `Kind` of a Layer or operation node (a `PruningWrapper` is seen
    through by the caller); `rank` is its input's rank."""
    if isinstance(operation, keras.layers.Layer) and not _channels_last(operation):
        return Kind(UNKNOWN, f"layer {operation.name!r} is channels_first")
    return rule_of(operation).kind(operation, rank)


def channel_weights(layer):
    """`[(variable, channel axis)]` a channel mask zeroes in `layer` (a
    producer's kernel slice and bias entry, a follower's per-channel
    weights), or None for a layer whose rule has none."""
    return rule_of(layer).channel_weights(layer)


def channel_layer_names():
    """The registered classes whose weights channel masks cover, by name."""
    return sorted({cls.__name__ for cls, rule in registered().items()
                   if rule.carries_channels or rule.has_width()})


def prunable_layer_names():
    """The registered classes with weights that unstructured pruning masks."""
    return sorted(cls.__name__ for cls, rule in registered().items() if rule.has_prunable())
