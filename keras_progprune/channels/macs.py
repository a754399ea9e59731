"""Multiply-accumulates per example, as built and as `shrink` would leave it.

Counted for Dense and convolution layers (regular, transposed, depthwise,
separable), the layers that hold nearly all of a network's arithmetic, and
for layers with a width rule (`rules.py`: attention, transformer blocks),
which count themselves; normalization, activations, pooling and merges are
not counted.
"""

import numpy as np

import keras

from keras_progprune.channels import graph as graph_lib
from keras_progprune.channels import rules
from keras_progprune.channels import shrink as shrink_lib

L = keras.layers


def _prod(values):
    return int(np.prod([int(v) for v in values])) if len(values) else 1


def layer_macs(layer, input_shape, output_shape, in_channels, out_channels):
    """MACs of one call per example, with the given channel counts."""
    out_positions = _prod(output_shape[1:-1])
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        depthwise = out_positions * _prod(layer.kernel_size) * in_channels * layer.depth_multiplier
        return depthwise + out_positions * in_channels * layer.depth_multiplier * out_channels
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        return out_positions * _prod(layer.kernel_size) * in_channels * layer.depth_multiplier
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return _prod(input_shape[1:-1]) * _prod(layer.kernel_size) * in_channels * out_channels
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        groups = getattr(layer, "groups", 1) or 1
        return out_positions * _prod(layer.kernel_size) * in_channels * out_channels // groups
    if isinstance(layer, L.Dense):
        return out_positions * in_channels * out_channels
    return 0


def _width_macs(layer, input_shape, spaces, keep):
    """A layer with width groups (`rules.py`): its rule counts them."""
    widths = {s.width[1].label: len(keep.get(s.index, range(s.size))) for s in spaces}
    return rules.rule_for(layer).macs(layer, input_shape, widths)


def count(graph, keep=None):
    """MACs per example of the graph's Dense/conv layers; with `keep`
    (`{space index: kept channels}`), as after removing the others."""
    keep = keep or {}
    total = 0
    for node in graph.nodes:
        layer = graph_lib.layer_of(node.operation)
        if not node.inputs or not node.outputs or not isinstance(layer, keras.layers.Layer):
            continue
        x, y = node.inputs[0], node.outputs[0]
        if any(d is None for d in list(x.shape[1:]) + list(y.shape[1:])):
            continue  # dynamic spatial size: not counted
        width = graph.width_spaces(layer)
        if width:
            counted = _width_macs(layer, x.shape, width, keep)
            if counted is not None:
                total += counted
                continue
        width_in = len(shrink_lib.kept_rows(graph, x, keep)) if graph.desc(x) else x.shape[-1]
        width_out = len(shrink_lib.kept_rows(graph, y, keep)) if graph.desc(y) else y.shape[-1]
        total += layer_macs(layer, x.shape, y.shape, width_in, width_out)
    return int(total)
