"""Width rules: the channels inside a layer (feed-forward neurons,
attention heads), and the rules of layers that have them."""

import numpy as np

from keras_progprune.rules.base import LayerRule
from keras_progprune.rules.base import WidthGroup
from keras_progprune.rules.base import bias_of
from keras_progprune.rules.base import sub_layer

def heads_group(attention, owner, fixed=None):
    """The heads of a `keras.layers.MultiHeadAttention` (or subclass): each
    head's query, key and value kernel and bias slices, and its rows of the
    output projection."""
    members = []
    for dense in (attention.query_dense, attention.key_dense, attention.value_dense):
        members += [(dense.kernel, 1), (bias_of(dense), 0)]
    members.append((attention.output_dense.kernel, 0))
    return WidthGroup("heads", owner, members, [(attention.output_dense.kernel, 0)],
                      probe=(attention.output_dense, "input", -2), fixed=fixed)


def ffn_group(inner, outer, owner):
    """The intermediate units of Dense `inner` -> activation -> Dense `outer`."""
    return WidthGroup("ffn", owner,
                      [(inner.kernel, -1), (bias_of(inner), 0), (outer.kernel, 0)],
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
    """`keras.layers.MultiHeadAttention`: its four projection kernels are
    prunable (EinsumDense kernels, each with its own input axis); whole
    heads, rebuilt with a lower `num_heads` (its `key_dim` and `value_dim`
    are in its config)."""

    prunable = ("kernel",)

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
        groups = [ffn_group(sub_layer(layer, self.inner), sub_layer(layer, self.outer), layer)]
        if self.attention is not None:
            fixed = None if self.heads_key else (
                self.heads_fixed or f"{type(layer).__name__} has no config key for "
                "its number of heads")
            groups.append(heads_group(sub_layer(layer, self.attention), layer, fixed))
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
        inner = sub_layer(layer, self.inner)
        model_dim = int(inner.kernel.shape[0])
        out_dim = int(sub_layer(layer, self.outer).kernel.shape[-1])
        total = 0
        for label, width in widths.items():
            if label.endswith("/ffn"):
                total += length * width * (model_dim + out_dim)
            else:
                total += attention_macs(sub_layer(layer, self.attention), length, width)
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
