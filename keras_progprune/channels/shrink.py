"""`shrink`: rebuild a model without the channels that contribute nothing.

1. Strip the wrappers (masks baked in as zeros) and group the channels
   (`graph.analyze`).
2. Find each tensor's *constant* channels: channels whose value doesn't
   depend on the input (a producer whose kernel slice is all zero outputs
   act(bias); BatchNormalization, activations, pooling and merges carry the
   constant on). Zero is the common constant.
3. A channel of a space can go when, at every layer that reads it, it is
   zero, or that layer's weights for it are zero, or it is a constant that
   the reader's bias can absorb exactly (a Dense, or a "valid" convolution:
   no zero padding changes the constant at the borders).
4. Rebuild with smaller layers (units, filters, Reshape targets) and sliced
   weights; absorbed constants are added to the readers' biases.

Every decision is exact, so the shrunk model computes what the masked one
did, up to float rounding.
"""

import warnings

import keras
import numpy as np

from keras_progprune import hub_models
from keras_progprune import prune
from keras_progprune import surgery
from keras_progprune import walk
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.channels import graph as graph_lib
from keras_progprune import rules

_np = rules.to_numpy
_take = rules.take


def constant_channels(graph):
    """`{id(tensor): per-channel constant}`: NaN where a channel depends on
    the input. A Flattened tensor keeps its pre-Flatten channels."""
    values = {}
    for tensor in graph.inputs:
        values[id(tensor)] = np.full(_width(graph, tensor), np.nan)
    for node in graph.nodes:
        layer = graph_lib.layer_of(node.operation)
        kind = graph.kinds.get(id(node))
        out = node.outputs[0] if node.outputs else None
        if out is None or graph.desc(out) is None:
            continue
        width = _width(graph, out)
        ins = [values.get(id(t)) for t in node.inputs]
        if kind is None or kind.name == rules.UNKNOWN or any(v is None for v in ins):
            result = np.full(width, np.nan)
        elif kind.name == rules.PASS and not walk.is_layer(node.operation):
            # An operation node (`relu(x)`, or `x * 2.0` whose kind the
            # grouping read from its constants): only zeros are followed.
            result = rules.OperationRule(kind.zero_reason).constants(layer, ins, width)
        else:
            result = rules.rule_of(layer).constants(layer, ins, width)
        for tensor in node.outputs:
            values[id(tensor)] = result
    return values


def _width(graph, tensor):
    desc = graph.desc(tensor)
    return sum(graph.space(i).size for i, _ in desc.segments)


# -- which channels go ------------------------------------------------------
def _reader_rows_zero(consumer, channels):
    """Per channel: whether the reading layer's weights for it are all zero."""
    zero_rows = rules.rule_of(consumer.layer).ignored_inputs(consumer.layer)
    rows = consumer.rows(channels).reshape(consumer.repeat, len(channels))
    return np.all(zero_rows[rows], axis=0)


def removable(graph, values):
    """`{space index: bool array}`: channels that can go, exactly."""
    out = {}
    for space in graph.shrinkable_spaces():
        if space.width is not None:  # inside a layer: zero output slices
            ok = space.width[1].zero_outputs()
            if ok.all():
                ok[0] = False  # a block keeps at least one neuron or head
            out[space.index] = ok
            continue
        ok = np.ones(space.size, bool)
        for consumer in space.consumers:
            v = values[id(consumer.tensor)][consumer.offset:consumer.offset + space.size]
            fine = (v == 0)
            if rules.rule_of(consumer.layer).absorbs_constants(consumer.layer):
                fine |= np.isfinite(v)
            unsure = np.flatnonzero(~fine & ok)
            if unsure.size:
                fine[unsure] = _reader_rows_zero(consumer, unsure)
            ok &= fine
        if ok.all():
            ok[0] = False  # keep one channel: a layer of width 0 can't be built
        out[space.index] = ok
    return out


# -- rebuilding -----------------------------------------------------------
def kept_rows(graph, tensor, keep):
    """Indices of a tensor's channels (Flatten rows included) that stay."""
    desc = graph.desc(tensor)
    parts, offset = [], 0
    for index, _ in desc.segments:
        space = graph.space(index)
        kept = keep.get(space.index, np.arange(space.size))
        parts.append(kept + offset)
        offset += space.size
    channels = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return (np.arange(desc.repeat)[:, None] * offset + channels[None, :]).ravel()


def _fold(graph, node, layer, values, keep):
    """The reader's bias plus what the removed constant channels gave it."""
    bias = _np(layer.bias)
    tensor = node.inputs[0]
    v = values[id(tensor)]
    desc = graph.desc(tensor)
    total = len(v)
    gone = np.ones(total * desc.repeat, bool)
    gone[kept_rows(graph, tensor, keep)] = False
    constants = np.tile(np.nan_to_num(v), desc.repeat)
    rows = np.flatnonzero(gone & (constants != 0))
    if rows.size == 0:
        return bias
    variable, in_axis, _ = rules.rule_of(layer).reader(layer)
    kernel = _np(variable)
    in_axis = in_axis % kernel.ndim
    taken = np.take(kernel, rows, axis=in_axis)
    # Sum over every axis but the output one, each row weighted by its value.
    shape = [1] * kernel.ndim
    shape[in_axis] = -1
    contribution = (taken * constants[rows].reshape(shape))
    return bias + contribution.reshape(-1, contribution.shape[-1]).sum(axis=0)


def slicers(graph, node, keep):
    """How one node's layer changes: `(config overrides, {id(variable): f})`,
    where `f` maps a value shaped like the variable (the weight, its mask,
    an optimizer slot) to its shrunk value. Variables not listed keep their
    shape."""
    layer = graph_lib.layer_of(node.operation)
    width = graph.width_spaces(layer)
    if width:
        return width_slicers(layer, width, keep)
    kind = graph.kinds.get(id(node))
    if kind is None or kind.name not in (rules.PRODUCER, rules.FOLLOWER, rules.RESHAPE):
        return {}, {}
    out_rows = kept_rows(graph, node.outputs[0], keep)
    in_rows = kept_rows(graph, node.inputs[0], keep)
    return rules.rule_of(layer).resize_channels(layer, in_rows, out_rows)


def width_slicers(layer, spaces, keep):
    """`slicers` for a layer with width groups inside (`keras_progprune.rules`): its
    rule's config overrides, and each group member cut to the kept
    channels."""
    spaces = [s for s in spaces if not s.width[1].fixed]
    kept = {s.width[1].label: keep.get(s.index, np.arange(s.size)) for s in spaces}
    if all(len(k) == s.size for k, s in zip(kept.values(), spaces)):
        return {}, {}
    overrides, kept = rules.rule_for(layer).resize(layer, kept)
    cut = {}
    for space in spaces:
        group = space.width[1]
        for member in group.members:
            cut[id(member.variable)] = _take(member.indices(kept[group.label]), member.axis)
    return overrides, cut


def layer_changes(graph, node, values, keep):
    """`(config overrides, new weights in `layer.weights` order or None,
    slice functions)` for one node (see `slicers`)."""
    layer = graph_lib.layer_of(node.operation)
    overrides, cut = slicers(graph, node, keep)
    if not cut:
        return overrides, None, cut
    weights = []
    for w in layer.weights:
        value = _np(w)
        if w is getattr(layer, "bias", None) and id(w) in cut \
                and graph.kinds[id(node)].name == rules.PRODUCER \
                and rules.rule_of(layer).absorbs_constants(layer):
            value = _fold(graph, node, layer, values, keep)
        weights.append(cut[id(w)](value) if id(w) in cut else value)
    return overrides, weights, cut


def removable_channels(model):
    """`(graph, constants, {space index: kept channel indices})` read from
    `model` as it is (wrappers seen through; the stored values of pruned
    weights are set to 0 first, which changes no output): no copy, so cheap
    enough for reports. `shrink` itself plans on the stripped copy, where
    the masks are baked in."""
    wrapper_lib.settle(model)
    graph = graph_lib.analyze(model)
    values = constant_channels(graph)
    keep = {index: np.flatnonzero(~gone) for index, gone in removable(graph, values).items()}
    return graph, values, keep


def plan(model):
    """`(plain model, graph, {space index: kept channel indices})`.

    The plain model is `model` with wrappers stripped (or a copy).
    """
    plain = prune.strip_pruning(model)
    return (plain,) + removable_channels(plain)


def shrink(model):
    """Returns a smaller plain Keras model without the channels that do nothing.

    Removes every output channel (Dense unit, convolution filter) that is
    all zero after pruning, or otherwise constant, together with what is
    coupled to it: BatchNormalization entries, depthwise slices, the
    matching channel of every input of a residual merge, and the input rows
    of the layers that read it (Flatten -> Dense included). Works on models
    pruned with `structure="channel"` and on unstructured ones (a Dense unit
    whose incoming weights are all pruned is removed, its constant output
    folded into the next layer's bias). The model's inputs and outputs keep
    their shapes; channels behind a layer the grouping doesn't know stay.

    The result has no wrappers and the original layer classes, so it saves
    as `.keras` and exports as a SavedModel without this package. Its
    outputs equal `model`'s up to float rounding.

    Args:
        model: a Sequential or Functional `keras.Model`, pruned or not.

    Returns:
        A new `keras.Model`; `model` is not modified.

    Raises:
        ValueError: if `model` is not a Sequential or Functional model.

    Examples:
        >>> import keras, numpy as np, keras_progprune as kp
        >>> inputs = keras.Input((4,))
        >>> hidden = keras.layers.Dense(8, activation="relu")(inputs)
        >>> model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
        >>> kernel, bias = model.layers[1].get_weights()
        >>> kernel[:, 4:] = 0.0; bias[4:] = 0.0
        >>> model.layers[1].set_weights([kernel, bias])
        >>> kp.shrink(model).layers[1].units
        4
    """
    if not isinstance(model, keras.Model) or not walk.is_graph_model(model):
        kind = type(model).__name__
        raise ValueError(
            "`shrink` takes a Sequential or Functional keras.Model (pruned or not). "
            f"Received: model={model!r} of type {kind}. "
            + ("A subclassed model has no graph to rebuild: build it with the "
               "Functional API." if isinstance(model, keras.Model) else
               "Pass the model, not a layer or a file path (load a file with "
               "keras.saving.load_model first)."))
    plain, graph, values, keep = plan(model)
    removed = sum(graph.space(i).size - len(k) for i, k in keep.items())
    if removed == 0:
        warnings.warn(
            f"shrink found no channel of model {model.name!r} that can be removed "
            "(none is all zero or constant, or each is needed by a layer the "
            "grouping doesn't know); it returns a plain copy of the same size.",
            stacklevel=2)
        return plain
    changes = {}
    for node in graph.nodes:
        if walk.is_layer(node.operation):
            changes[id(node.operation)] = layer_changes(graph, node, values, keep)[:2]
    return _rebuild(plain, changes)


def _rebuild(plain, changes):
    if hub_models.is_hub_model(plain):  # KerasHub's own class, when it can say the shape
        new = hub_models.shrunk(plain, changes)
        if new is not None:
            return new
        warnings.warn(
            f"{type(plain).__name__}'s config can't say the new shape (fewer heads of "
            "the same size), so `shrink` returns a plain keras.Model of its graph.",
            stacklevel=3)
    changed = {k for k, (o, w) in changes.items() if o or w is not None}
    clone, pairs = surgery.rebuilt(plain, {k: o for k, (o, _) in changes.items()}, changed)

    def values_of(old, new):
        weights = changes.get(id(old), ({}, None))[1]
        return new, weights if weights is not None else old.get_weights()

    surgery.copy_weights(pairs, values_of)
    return clone
