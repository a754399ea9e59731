"""Coupled channels of a Sequential or Functional graph.

`analyze(model)` walks the graph once, producers first, and tracks for every
tensor which *channel space* each of its last-axis channels belongs to. A
space is a set of channels that must be kept or removed together: the
output channels of one Dense/Conv, joined with others wherever an
element-wise merge ties them (both branches of a residual `Add` share one
space). Concatenate lays spaces side by side; Flatten repeats them once per
spatial position.

Each space lists its members, which all lose channel `c` when the space
does:

- producers: the layers whose output channels the space is (kernel's
  output axis, bias);
- followers: BatchNormalization and depthwise convolutions on those
  channels, at an offset when they follow a Concatenate;
- consumers: the Dense/Conv layers that read them (their input rows).

A layer with a width rule (`keras_progprune.rules`: the feed-forward neurons and
attention heads inside a transformer block) adds one space per
`WidthGroup`: internal channels, never coupled to other nodes, whose
members are the group's weights (`Space.width`).

A space is *frozen* (never pruned) when removing a channel could change the
model's outputs, with the reasons kept for the report: it is a model input,
reaches a model output, reaches an operation the rules in `keras_progprune.rules` don't
know, or reaches a consumer through an operation with f(0) != 0.
"""

import numpy as np

from keras_progprune import hub_models
from keras_progprune import walk
from keras_progprune import rules


class Consumer:
    """A layer that reads a space's channels as input rows.

    Channel `c` of the space is row `p * total + offset + c` of the layer's
    input, for every spatial position `p < repeat` (repeat > 1 after a
    Flatten).
    """

    def __init__(self, layer, tensor, offset, total, repeat):
        self.layer = layer
        self.tensor = tensor            # the input KerasTensor read
        self.offset = offset
        self.total = total
        self.repeat = repeat

    def rows(self, channels):
        channels = np.asarray(channels, np.int64)
        positions = np.arange(self.repeat, dtype=np.int64)[:, None] * self.total
        return (positions + self.offset + channels[None, :]).ravel()


class Space:
    """Channels kept or removed together. See the module docstring."""

    def __init__(self, index, size, origin):
        self.index = index
        self.size = int(size)
        self.origin = origin            # the layer name that created it
        self.producers = []             # layers
        self.followers = []             # (layer, offset)
        self.consumers = []             # Consumer
        self.frozen = []                # reasons, in the order found
        # Reasons a masked channel may not reach a consumer as zeros (an
        # activation with f(0) != 0 on the way): no training masks, but
        # `shrink` may still remove channels it finds constant.
        self.soft = []
        # `(layer, rules.WidthGroup)` for a width space: the channels inside
        # `layer` (the graph node's layer, which a wrapper wraps whole).
        self.width = None

    @property
    def shrinkable(self):
        return not self.frozen and self.size > 1 and (
            bool(self.producers) or self.width is not None)

    @property
    def prunable(self):
        return self.shrinkable and not self.soft

    def __repr__(self):
        names = [l.name for l in self.producers]
        state = "prunable" if self.prunable else f"frozen: {(self.frozen + self.soft)[:1]}"
        return f"Space({self.index}, size={self.size}, producers={names}, {state})"


class Desc:
    """The channels of one tensor: `segments` is a list of `[space index,
    zero reason]`, side by side; `repeat` counts spatial positions folded
    into the last axis by a Flatten."""

    def __init__(self, segments, repeat=1):
        self.segments = [list(s) for s in segments]
        self.repeat = repeat


class ChannelGraph:
    """The result of `analyze`: spaces, and each tensor's channel layout.

    Attributes:
        nodes: the graph's `walk.GraphNode`s, producers first.
        inputs, outputs: the model's input and output KerasTensors.
    """

    def __init__(self):
        self._parent = []
        self._spaces = []
        self.descs = {}
        self.kinds = {}                 # id(node) -> rules.Kind
        self.nodes = []
        self.inputs = []
        self.outputs = []

    # -- union-find over spaces ------------------------------------------
    def new_space(self, size, origin):
        index = len(self._spaces)
        self._parent.append(index)
        self._spaces.append(Space(index, size, origin))
        return index

    def find(self, index):
        while self._parent[index] != index:
            self._parent[index] = self._parent[self._parent[index]]
            index = self._parent[index]
        return index

    def space(self, index):
        return self._spaces[self.find(index)]

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        sa, sb = self._spaces[a], self._spaces[b]
        self._parent[b] = a
        sa.producers += sb.producers
        sa.followers += sb.followers
        sa.consumers += sb.consumers
        sa.frozen += sb.frozen
        sa.soft += sb.soft
        return a

    def freeze(self, index, reason, soft=False):
        """Marks a space unprunable; `soft`: for training masks only."""
        space = self.space(index)
        reasons = space.soft if soft else space.frozen
        if reason not in reasons:
            reasons.append(reason)

    # -- queries ------------------------------------------------------------
    @property
    def spaces(self):
        """Every space (after merging), in creation order."""
        return [s for i, s in enumerate(self._spaces) if self.find(i) == i]

    def prunable_spaces(self):
        """Spaces that training masks may prune."""
        return [s for s in self.spaces if s.prunable]

    def shrinkable_spaces(self):
        """Spaces whose constant channels `shrink` may remove."""
        return [s for s in self.spaces if s.shrinkable]

    def width_spaces(self, layer=None):
        """The width spaces (see `keras_progprune.rules`), prunable or not; with `layer`,
        only those inside it."""
        return [s for s in self.spaces if s.width is not None
                and (layer is None or s.width[0] is layer)]

    def desc(self, tensor):
        return self.descs.get(id(tensor))

    def segments(self, tensor):
        """`(space, offset)` pairs of a tensor's channels (None if unknown)."""
        desc = self.desc(tensor)
        if desc is None:
            return None
        out, offset = [], 0
        for index, _ in desc.segments:
            space = self.space(index)
            out.append((space, offset))
            offset += space.size
        return out

    def member_layers(self):
        """Names of the layers holding weights of prunable spaces (producers
        and followers): the layers a channel-structured prune wraps."""
        names = []
        for space in self.prunable_spaces():
            width = [space.width[0]] if space.width else []
            for layer in space.producers + [f for f, _ in space.followers] + width:
                if layer.name not in names:
                    names.append(layer.name)
        return names

    def frozen_reasons(self):
        """`{origin layer: first reason}` for every space that can't be pruned."""
        out = {}
        for space in self.spaces:
            if space.prunable:
                continue
            if space.frozen or space.soft:
                reason = (space.frozen + space.soft)[0]
            elif space.width is not None:
                reason = "a single channel"
            elif not space.producers:
                reason = "no layer produces these channels"
            else:
                reason = "a single channel"
            out[space.origin] = reason
        return out


def _channels(tensor):
    shape = tensor.shape
    return shape[-1] if len(shape) else None


def layer_of(operation):
    """The operation whose channel rules apply: a `PruningWrapper` is read
    through (its rules are its layer's); anything else is itself."""
    return operation.layer if getattr(operation, "prunes_inner_layer", False) else operation


def analyze(model):
    """Groups the channels of a Sequential or Functional `model`.

    A KerasHub task's channels are its backbone's: the width groups are in
    the backbone's blocks, and the task adds its head around it.

    Returns:
        A `ChannelGraph`.
    """
    if hub_models.is_hub_model(model):
        model = hub_models.backbone_of(model)
    graph = ChannelGraph()
    inputs, nodes, outputs = walk.graph_nodes(model)
    graph.nodes, graph.inputs, graph.outputs = nodes, inputs, outputs
    calls = {}
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
    for tensor in inputs:
        index = graph.new_space(_channels(tensor) or 0, "model input")
        graph.freeze(index, "model input")
        graph.descs[id(tensor)] = Desc([[index, None]])
    seen = set()
    for node in nodes:
        _add_width_spaces(graph, layer_of(node.operation), seen)
        _visit(graph, node, calls[id(node.operation)])
    for tensor in outputs:
        desc = graph.desc(tensor)
        for index, _ in (desc.segments if desc else []):
            graph.freeze(index, "reaches a model output")
    return graph


def _add_width_spaces(graph, layer, seen):
    """One space per width group of `layer` (once per layer)."""
    if id(layer) in seen or not walk.is_layer(layer):
        return
    seen.add(id(layer))
    for group in rules.width_groups(layer):
        index = graph.new_space(group.size, group.label)
        graph.space(index).width = (layer, group)
        if group.fixed:
            graph.freeze(index, group.fixed)


def _unknown(graph, node, reason, layer):
    graph.kinds[id(node)] = rules.Kind(rules.UNKNOWN, reason)
    for tensor in node.inputs:
        desc = graph.desc(tensor)
        for index, _ in (desc.segments if desc else []):
            graph.freeze(index, reason)
    for tensor in node.outputs:
        index = graph.new_space(_channels(tensor) or 0, getattr(layer, "name", reason))
        graph.freeze(index, reason)
        graph.descs[id(tensor)] = Desc([[index, None]])


def _visit(graph, node, calls):
    layer = layer_of(node.operation)
    label = getattr(layer, "name", type(layer).__name__)
    descs = [graph.desc(t) for t in node.inputs]
    if any(d is None for d in descs) or not node.outputs or any(
            _channels(t) is None for t in list(node.inputs) + list(node.outputs)):
        return _unknown(graph, node, f"{label!r} has inputs or outputs of unknown "
                                     "channel count", layer)
    if calls > 1:
        return _unknown(graph, node, f"layer {label!r} is called more than once", layer)
    kind = rules.classify(layer, len(node.inputs[0].shape) if node.inputs else None)
    if kind.name == rules.MERGE and len(node.inputs) == 1:
        kind = _merge_with_constants(node, kind)
    if kind.name == rules.UNKNOWN:
        return _unknown(graph, node, kind.zero_reason, layer)
    out = node.outputs[0]
    graph.kinds[id(node)] = kind
    handler = _HANDLERS[kind.name]
    result = handler(graph, node, layer, descs, kind)
    if result is None:  # the handler refused: a layout it can't follow
        return _unknown(graph, node, f"layer {label!r} changes the channel layout "
                                     "in a way the grouping doesn't follow", layer)
    graph.descs[id(out)] = result


def _merge_with_constants(node, kind):
    """`x * 2.0`, `x + 1.0`: an element-wise op with Python scalars."""
    values = node.constants
    if not all(np.ndim(v) == 0 and not hasattr(v, "shape") for v in values):
        return rules.Kind(rules.UNKNOWN, f"operation {type(node.operation).__name__} "
                                         "takes a constant array")
    if kind.zero_reason == "any" or all(float(v) == 0 for v in values):
        return rules.Kind(rules.PASS)
    return rules.Kind(rules.PASS, f"operation {type(node.operation).__name__} with "
                                  f"constant {values[0]!r} gives f(0) != 0")


def _consume(graph, layer, tensor, desc):
    """Records `layer` reading `desc`'s channels as input rows."""
    total = sum(graph.space(i).size for i, _ in desc.segments)
    offset = 0
    for index, reason in desc.segments:
        space = graph.space(index)
        if reason is not None:
            graph.freeze(index, f"reaches layer {layer.name!r} after {reason}", soft=True)
        space.consumers.append(Consumer(layer, tensor, offset, total, desc.repeat))
        offset += space.size


def _producer(graph, node, layer, descs, kind):
    (desc,) = descs
    _consume(graph, layer, node.inputs[0], desc)
    index = graph.new_space(_channels(node.outputs[0]), layer.name)
    graph.space(index).producers.append(layer)
    return Desc([[index, kind.zero_reason]])


def _follower(graph, node, layer, descs, kind):
    (desc,) = descs
    if desc.repeat != 1:
        return None
    offset = 0
    for index, _ in desc.segments:
        space = graph.space(index)
        space.followers.append((layer, offset))
        offset += space.size
    # Its per-channel weights are masked with the space: zeros again.
    return Desc([[i, kind.zero_reason] for i, _ in desc.segments], desc.repeat)


def _pass(graph, node, layer, descs, kind):
    (desc,) = descs
    return Desc([[i, r if r is not None else kind.zero_reason] for i, r in desc.segments],
                desc.repeat)


def _merge(graph, node, layer, descs, kind):
    counts = [sum(graph.space(i).size for i, _ in d.segments) * d.repeat for d in descs]
    full = max(counts)
    wide = [d for d, c in zip(descs, counts) if c == full]
    for d, c in zip(descs, counts):
        if c != full:  # a broadcast factor, such as (N, 1): not tied
            for index, _ in d.segments:
                graph.freeze(index, f"broadcast into merge {layer.name!r}")
    narrow = len(wide) < len(descs)
    first = wide[0]
    sizes = [graph.space(i).size for i, _ in first.segments]
    for d in wide[1:]:
        if d.repeat != first.repeat or [graph.space(i).size for i, _ in d.segments] != sizes:
            for dd in wide:
                for index, _ in dd.segments:
                    graph.freeze(index, f"merge {layer.name!r} joins differently "
                                        "split channels")
            return Desc(first.segments, first.repeat)
    segments = []
    for position in range(len(first.segments)):
        index = first.segments[position][0]
        reasons = [d.segments[position][1] for d in wide]
        for d in wide[1:]:
            index = graph.union(index, d.segments[position][0])
        if kind.zero_reason == "any":  # Multiply: zero if any input is
            reason = None if any(r is None for r in reasons) else reasons[0]
        else:
            reason = next((r for r in reasons if r is not None), None)
            if narrow and reason is None:
                reason = f"merge {layer.name!r} adds a broadcast value"
        segments.append([index, reason])
    return Desc(segments, first.repeat)


def _concat(graph, node, layer, descs, kind):
    rank = len(node.outputs[0].shape)
    if layer.axis not in (-1, rank - 1) or any(d.repeat != 1 for d in descs):
        return None
    return Desc([s for d in descs for s in d.segments])


def _flatten(graph, node, layer, descs, kind):
    (desc,) = descs
    shape = node.inputs[0].shape
    positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
    if any(d is None for d in shape[1:]):
        return None
    return Desc(desc.segments, desc.repeat * positions)


def _reshape(graph, node, layer, descs, kind):
    (desc,) = descs
    if desc.repeat != 1 or node.outputs[0].shape[-1] != node.inputs[0].shape[-1]:
        return None
    return Desc(desc.segments)


_HANDLERS = {
    rules.PRODUCER: _producer,
    rules.FOLLOWER: _follower,
    rules.PASS: _pass,
    rules.MERGE: _merge,
    rules.CONCAT: _concat,
    rules.FLATTEN: _flatten,
    rules.RESHAPE: _reshape,
}
