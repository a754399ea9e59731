"""Multiply-accumulates per example, as built and as `shrink` would leave it.

Each layer's rule counts its own (`LayerRule.channel_macs`, or `macs` for
a layer with width groups): Dense and convolution layers (regular,
transposed, depthwise, separable), the layers that hold nearly all of a
network's arithmetic, and attention and transformer blocks; normalization,
activations, pooling and merges count 0.
"""


import keras

from keras_progprune.channels import graph as graph_lib
from keras_progprune import rules
from keras_progprune.channels import shrink as shrink_lib

def layer_macs(layer, input_shape, output_shape, in_channels, out_channels):
    """MACs of one call per example, with the given channel counts (its
    rule's `channel_macs`)."""
    return rules.rule_of(layer).channel_macs(layer, input_shape, output_shape,
                                             in_channels, out_channels)


def _width_macs(layer, input_shape, spaces, keep):
    """A layer with width groups (`keras_progprune.rules`): its rule counts them."""
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
