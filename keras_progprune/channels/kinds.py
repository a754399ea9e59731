"""What each kind of layer does to channels: the rules of the grouping.

`classify(layer_or_op)` says how an operation maps the channels (last axis)
of its inputs to those of its outputs. The grouping in `graph.py` applies
these rules, and the width rules of `rules.py` for the channels inside a
layer (feed-forward neurons, attention heads).
A type not listed is `Kind("unknown")`: every channel around it is left
unpruned, never removed wrongly.

Zero preservation: a removed channel must reach every consumer as exact
zeros. An activation keeps zeros when f(0) = 0; this is checked by
evaluating it at 0, not by name.
"""

import numpy as np

import keras

L = keras.layers

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


_CHANNEL_PASS = (
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
    L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
    L.Identity, L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
    L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
    L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
    L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
    L.Cropping1D, L.Cropping2D, L.Cropping3D,
    L.UpSampling1D, L.UpSampling2D, L.UpSampling3D,
)
_ELEMENTWISE_ACTIVATIONS = (L.Activation, L.ReLU, L.LeakyReLU, L.ELU)
_CONVS = (L.Conv1D, L.Conv2D, L.Conv3D)
_TRANSPOSED = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
_SEPARABLE = (L.SeparableConv1D, L.SeparableConv2D)
_DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)
_MERGE_ALL = (L.Add, L.Subtract, L.Average, L.Maximum, L.Minimum)

# Operation nodes of Functional graphs (`x + y`, `keras.ops.relu(x)`), by
# class name: element-wise with f(0) = 0, element-wise with f(0) != 0.
_OP_MERGE = {"Add": "all", "Subtract": "all", "Maximum": "all", "Minimum": "all",
             "Multiply": "any"}
_OP_ZERO_KEEPING = {"Relu", "Relu6", "Silu", "Swish", "Gelu", "Tanh", "HardSilu",
                    "HardSwish", "LeakyRelu", "Elu", "Selu", "Celu", "Softsign",
                    "Abs", "Negative", "Square", "Sign", "Identity", "Mish"}
_OP_NONZERO = {"Sigmoid", "HardSigmoid", "Softplus", "Exp", "Cos", "LogSigmoid",
               "SparsePlus", "Squareplus"}


def f0_nonzero(function, label):
    """None if `function(0) == 0` exactly, else the reason as a string."""
    try:
        value = keras.ops.convert_to_numpy(function(keras.ops.zeros((1, 1))))
    except Exception:  # noqa: BLE001 - an activation we can't evaluate
        return f"{label} could not be evaluated at 0"
    if np.all(value == 0):
        return None
    return f"{label} gives f(0) = {float(np.ravel(value)[0]):g}, not 0"


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def _activation_reason(layer):
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    name = getattr(activation, "__name__", repr(activation))
    if name in ("linear", "relu"):
        return None
    if name in ("softmax", "log_softmax"):
        return f"the softmax of layer {layer.name!r} mixes the channels"
    return f0_nonzero(activation, f"the activation {name!r} of layer {layer.name!r}")


def classify(operation, rank=None):
    """The `Kind` of a Layer or operation node (a `PruningWrapper` is seen
    through by the caller); `rank` is its input's rank."""
    if not isinstance(operation, keras.layers.Layer):
        return _classify_op(operation)
    layer = operation
    if not _channels_last(layer):
        return Kind(UNKNOWN, f"layer {layer.name!r} is channels_first")
    if isinstance(layer, _DEPTHWISE):
        if layer.depth_multiplier != 1:
            return Kind(UNKNOWN, f"depthwise layer {layer.name!r} has depth_multiplier "
                                 f"{layer.depth_multiplier}, not 1")
        return Kind(FOLLOWER, _activation_reason(layer))
    if isinstance(layer, _SEPARABLE) or isinstance(layer, _TRANSPOSED):
        return Kind(PRODUCER, _activation_reason(layer))
    if isinstance(layer, _CONVS):
        if getattr(layer, "groups", 1) != 1:
            return Kind(UNKNOWN, f"layer {layer.name!r} is a grouped convolution")
        return Kind(PRODUCER, _activation_reason(layer))
    if isinstance(layer, L.Dense):
        return Kind(PRODUCER, _activation_reason(layer))
    if isinstance(layer, L.BatchNormalization):
        axis = layer.axis if isinstance(layer.axis, int) else None
        if axis is None or (axis != -1 and axis != (rank or 0) - 1):
            return Kind(UNKNOWN, f"BatchNormalization {layer.name!r} normalizes "
                                 f"axis {layer.axis}, not the channels")
        return Kind(FOLLOWER)
    if isinstance(layer, _CHANNEL_PASS):
        return Kind(PASS)
    if isinstance(layer, L.Softmax) or (isinstance(layer, L.Activation) and getattr(
            layer.activation, "__name__", "") in ("softmax", "log_softmax")):
        return Kind(UNKNOWN, f"layer {layer.name!r} (softmax) mixes the channels")
    if isinstance(layer, _ELEMENTWISE_ACTIVATIONS):
        return Kind(PASS, f0_nonzero(layer, f"layer {layer.name!r}"))
    if isinstance(layer, L.Rescaling):
        if np.ndim(layer.scale) or np.ndim(layer.offset):
            return Kind(UNKNOWN, f"Rescaling {layer.name!r} has per-channel values")
        return Kind(PASS, None if layer.offset == 0 else
                    f"Rescaling {layer.name!r} adds offset {layer.offset}")
    if isinstance(layer, L.Multiply):
        return Kind(MERGE, "any")
    if isinstance(layer, _MERGE_ALL):
        return Kind(MERGE, "all")
    if isinstance(layer, L.Concatenate):
        return Kind(CONCAT)
    if isinstance(layer, L.Flatten):
        return Kind(FLATTEN)
    if isinstance(layer, L.Reshape):
        return Kind(RESHAPE)
    if isinstance(layer, (L.LayerNormalization, L.GroupNormalization)):
        return Kind(UNKNOWN, f"{type(layer).__name__} {layer.name!r} normalizes across "
                             "channels")
    return Kind(UNKNOWN, f"layer {layer.name!r} of type {type(layer).__name__} is not "
                         "known to the channel grouping")


def _classify_op(op):
    name = type(op).__name__
    if name in _OP_MERGE:
        return Kind(MERGE, _OP_MERGE[name])
    if name in _OP_ZERO_KEEPING:
        return Kind(PASS)
    if name in _OP_NONZERO:
        return Kind(PASS, f"operation {name} gives f(0) != 0")
    return Kind(UNKNOWN, f"operation {name} is not known to the channel grouping")


def channel_weights(layer):
    """`[(variable, channel axis)]` of a layer whose weights follow its
    output channels (a producer or a follower), or None for other layers.

    These are the weights a channel mask zeroes: a producer's kernel slice
    and bias entry, a BatchNormalization's gamma and beta, a depthwise
    kernel slice and bias entry. With all of them zero, the channel outputs
    exactly 0.
    """
    if isinstance(layer, _SEPARABLE):
        pairs = [(layer.pointwise_kernel, -1), (layer.bias, 0)]
    elif isinstance(layer, _DEPTHWISE):
        pairs = [(layer.kernel, -2), (layer.bias, 0)]
    elif isinstance(layer, _TRANSPOSED):
        pairs = [(layer.kernel, -2), (layer.bias, 0)]  # kernel [..., out, in]
    elif isinstance(layer, _CONVS + (L.Dense,)):
        pairs = [(layer.kernel, -1), (layer.bias, 0)]
    elif isinstance(layer, L.BatchNormalization):
        pairs = [(layer.gamma, 0), (layer.beta, 0)]
    else:
        return None
    return [(w, axis) for w, axis in pairs if w is not None]


def carries_channels(layer):
    """Whether `layer` has weights a channel mask can zero (by class)."""
    return isinstance(layer, _SEPARABLE + _DEPTHWISE + _TRANSPOSED + _CONVS
                      + (L.Dense, L.BatchNormalization))


def input_axis(layer):
    """The axis of a producer's main kernel that runs over its input channels
    (for a separable layer, of its pointwise kernel)."""
    if isinstance(layer, _TRANSPOSED):
        return -1  # kernel [..., out, in]
    if isinstance(layer, L.Dense):
        return 0
    return -2
