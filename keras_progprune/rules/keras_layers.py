"""The built-in rules of Keras's own layers and graph operations.

Each says which weights are prunable, what the layer does to channels
(its `Kind`: how it maps the channels of its inputs to those of its
outputs), which weights a channel mask cuts, which weights read its input
channels, the constant it outputs for a removed channel, how it is rebuilt
smaller, and its multiply-accumulates. The grouping (`channels/graph.py`),
the mask updates, `shrink` and `macs` ask the rule and never test a
layer's class themselves, so support for a layer type is one rule here (or
one `kp.register_layer_rule` call for a user's own class).

Operation nodes of Functional graphs (`x + y`, `keras.ops.relu(x)`) have
rules too, registered by the operation's class name; an element-wise merge
is one rule shared by its layer (`keras.layers.Add`) and its operation.

A type without a rule is `Kind("unknown")`: every channel around it is
left unpruned, never removed wrongly.

Zero preservation: a removed channel must reach every consumer as exact
zeros. An activation keeps zeros when f(0) = 0; this is checked by
evaluating it at 0, not by name.
"""

import numpy as np

import keras

from keras_progprune.rules import base
from keras_progprune.rules.base import CONCAT  # noqa: F401 (re-exported)
from keras_progprune.rules.base import FLATTEN  # noqa: F401
from keras_progprune.rules.base import FOLLOWER  # noqa: F401
from keras_progprune.rules.base import MERGE  # noqa: F401
from keras_progprune.rules.base import PASS  # noqa: F401
from keras_progprune.rules.base import PRODUCER  # noqa: F401
from keras_progprune.rules.base import RESHAPE  # noqa: F401
from keras_progprune.rules.base import UNKNOWN  # noqa: F401
from keras_progprune.rules.base import Kind
from keras_progprune.rules.base import LayerRule
from keras_progprune.rules.width import AttentionRule

L = keras.layers


def f0_nonzero(function, label):
    """None if `function(0) == 0` exactly, else the reason as a string."""
    try:
        value = keras.ops.convert_to_numpy(function(keras.ops.zeros((1, 1))))
    except Exception:  # noqa: BLE001 - an activation we can't evaluate
        return f"{label} could not be evaluated at 0"
    if np.all(value == 0):
        return None
    return f"{label} gives f(0) = {float(np.ravel(value)[0]):g}, not 0"


def activation_reason(layer):
    """Why `layer`'s own `activation` may turn a zero channel non-zero, or None."""
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    name = getattr(activation, "__name__", repr(activation))
    if name in ("linear", "relu"):
        return None
    if name in ("softmax", "log_softmax"):
        return f"the softmax of layer {layer.name!r} mixes the channels"
    return f0_nonzero(activation, f"the activation {name!r} of layer {layer.name!r}")


# -- NumPy helpers of the constant propagation --------------------------------
def to_numpy(variable):
    """A variable's value as float64 NumPy."""
    return np.asarray(keras.ops.convert_to_numpy(variable), np.float64)


def zero_along(array, axis):
    """Per index of `axis`: whether the whole slice is zero."""
    axis = axis % array.ndim
    others = tuple(a for a in range(array.ndim) if a != axis)
    return np.all(array == 0, axis=others)


def apply(function, values):
    """`function` on the finite entries of a 1-D array; NaN stays NaN."""
    out = np.full_like(values, np.nan)
    finite = np.isfinite(values)
    if finite.any():
        result = keras.ops.convert_to_numpy(function(
            keras.ops.convert_to_tensor(values[finite][None, :].astype("float32"))))
        out[finite] = np.asarray(result, np.float64).ravel()
    return out


def activate(layer, values):
    activation = getattr(layer, "activation", None)
    return values if activation is None else apply(activation, values)


def take(rows, axis):
    """A slice function: `array -> np.take(array, rows, axis)`."""
    return lambda array: np.take(array, rows, axis=axis)


def _prod(values):
    return int(np.prod([int(v) for v in values])) if len(values) else 1


# -- producers: new output channels from a kernel -----------------------------
class ProducerRule(LayerRule):
    """A layer whose kernel makes new output channels from its input
    channels (`keras.layers.Conv2D` and the like): removing an output
    channel cuts its kernel slice and bias entry; removing an input channel
    cuts its kernel rows.

    Args:
        kernel: the attribute holding the kernel.
        in_axis: the kernel's axis over input channels.
        out_axis: the kernel's axis over output channels.
        size_key: the config key of the number of output channels.
        bias: the attribute holding the bias (None allowed on the layer).
    """

    carries_channels = True

    def __init__(self, kernel="kernel", in_axis=-2, out_axis=-1, size_key="filters",
                 bias="bias"):
        self.kernel_attr, self.bias_attr = kernel, bias
        self.in_axis, self.out_axis, self.size_key = in_axis, out_axis, size_key

    def kernel(self, layer):
        return getattr(layer, self.kernel_attr)

    def has_prunable(self):
        return True

    def prunable_weights(self, layer):
        """Its kernel variable (biases are never pruned): the weight named
        like the kernel attribute (a Dense's `kernel` property may be a
        computed tensor, with LoRA), else the attribute itself; none before
        the layer is built."""
        named = [w for w in layer.weights if w.name == self.kernel_attr]
        if named or not layer.built:
            return named
        kernel = self.kernel(layer)
        return [kernel] if isinstance(kernel, keras.Variable) else []

    def input_axes(self, layer, weights):
        kernel = self.prunable_weights(layer)
        return [self.in_axis % len(w.shape) if any(w is k for k in kernel)
                else max(len(w.shape) - 2, 0) for w in weights]

    def bias(self, layer):
        return getattr(layer, self.bias_attr, None) if self.bias_attr else None

    def kind(self, layer, rank=None):
        return Kind(PRODUCER, activation_reason(layer))

    def channel_weights(self, layer):
        pairs = [(self.kernel(layer), self.out_axis), (self.bias(layer), 0)]
        return [(w, axis) for w, axis in pairs if w is not None]

    def reader(self, layer):
        return self.kernel(layer), self.in_axis, 1

    def constants(self, layer, inputs, width):
        zero = zero_along(to_numpy(self.kernel(layer)), self.out_axis)
        bias = self.bias(layer)
        bias = to_numpy(bias) if bias is not None else np.zeros(width)
        return activate(layer, np.where(zero, bias, np.nan))

    def absorbs_constants(self, layer):
        return self.bias(layer) is not None and getattr(layer, "padding", None) == "valid"

    def resize_channels(self, layer, in_rows, out_rows):
        out = {}
        if self.bias(layer) is not None:
            out[id(self.bias(layer))] = take(out_rows, 0)
        in_axis, out_axis = self.in_axis, self.out_axis
        out[id(self.kernel(layer))] = lambda a: np.take(
            np.take(a, in_rows, axis=in_axis), out_rows, axis=out_axis)
        return {self.size_key: int(len(out_rows))}, out

    def channel_macs(self, layer, input_shape, output_shape, in_channels, out_channels):
        positions = _prod(output_shape[1:-1]) * _prod(getattr(layer, "kernel_size", ()))
        return positions * in_channels * out_channels // (getattr(layer, "groups", 1) or 1)


class DenseRule(ProducerRule):
    """`keras.layers.Dense`: kernel `[in, units]`; its bias takes a constant
    input channel exactly."""

    def __init__(self):
        super().__init__(in_axis=0, out_axis=-1, size_key="units")

    def absorbs_constants(self, layer):
        return layer.bias is not None


class ConvRule(ProducerRule):
    """`keras.layers.Conv1D/2D/3D` (not grouped): kernel `[..., in, out]`; a
    "valid" one's bias takes a constant input channel exactly (zero
    padding would change it at the borders)."""

    def kind(self, layer, rank=None):
        if getattr(layer, "groups", 1) != 1:
            return Kind(UNKNOWN, f"layer {layer.name!r} is a grouped convolution")
        return super().kind(layer, rank)


class TransposedConvRule(ProducerRule):
    """`keras.layers.Conv*DTranspose`: kernel `[..., out, in]`."""

    def __init__(self):
        super().__init__(in_axis=-1, out_axis=-2)

    def absorbs_constants(self, layer):
        return False

    def channel_macs(self, layer, input_shape, output_shape, in_channels, out_channels):
        return (_prod(input_shape[1:-1]) * _prod(layer.kernel_size) * in_channels
                * out_channels)


class SeparableConvRule(ProducerRule):
    """`keras.layers.SeparableConv1D/2D`: a depthwise kernel per input
    channel (`depth_multiplier` each), then a pointwise kernel whose rows
    come `depth_multiplier` per input channel."""

    # The pointwise kernel only, as tfmot's registry: the depthwise kernel
    # holds few weights (k*k per channel against C_out), starts smaller, and
    # a channel whose k*k taps are all pruned silences its whole input
    # channel. Ranked with the pointwise kernel, 80% emptied it completely.
    def __init__(self):
        super().__init__(kernel="pointwise_kernel")

    def reader(self, layer):
        return layer.pointwise_kernel, -2, layer.depth_multiplier

    def ignored_inputs(self, layer):
        return zero_along(to_numpy(layer.depthwise_kernel), -2)

    def absorbs_constants(self, layer):
        return False

    def resize_channels(self, layer, in_rows, out_rows):
        overrides, out = super().resize_channels(layer, in_rows, out_rows)
        m = layer.depth_multiplier
        pointwise_rows = (in_rows[:, None] * m + np.arange(m)[None, :]).ravel()
        out[id(layer.depthwise_kernel)] = take(in_rows, -2)
        out[id(layer.pointwise_kernel)] = lambda a: np.take(
            np.take(a, pointwise_rows, axis=-2), out_rows, axis=-1)
        return overrides, out

    def channel_macs(self, layer, input_shape, output_shape, in_channels, out_channels):
        depthwise = _prod(output_shape[1:-1]) * in_channels * layer.depth_multiplier
        return depthwise * (_prod(layer.kernel_size) + out_channels)


# -- followers: per-channel weights on their input's channels -----------------
class FollowerRule(LayerRule):
    """A layer with weights per input channel that keeps the channels where
    they are; its channels are masked and cut with the space it reads."""

    carries_channels = True

    def kind(self, layer, rank=None):
        return Kind(FOLLOWER)

    def resize_channels(self, layer, in_rows, out_rows):
        axes = {id(w): axis for w, axis in self.channel_weights(layer)}
        return {}, {id(w): take(in_rows, axes.get(id(w), 0)) for w in layer.weights}


class DepthwiseRule(FollowerRule):
    """`keras.layers.DepthwiseConv1D/2D` with `depth_multiplier=1`; its
    kernel `[..., in, mult]` is prunable."""

    prunable = ("kernel",)

    def kind(self, layer, rank=None):
        if layer.depth_multiplier != 1:
            return Kind(UNKNOWN, f"depthwise layer {layer.name!r} has depth_multiplier "
                                 f"{layer.depth_multiplier}, not 1")
        return Kind(FOLLOWER, activation_reason(layer))

    def channel_weights(self, layer):
        return [(w, axis) for w, axis in ((layer.kernel, -2), (layer.bias, 0))
                if w is not None]

    def constants(self, layer, inputs, width):
        (v,) = inputs
        zero = zero_along(to_numpy(layer.kernel), -2) | (v == 0)
        bias = to_numpy(layer.bias) if layer.bias is not None else np.zeros_like(v)
        return activate(layer, np.where(zero, bias, np.nan))

    def channel_macs(self, layer, input_shape, output_shape, in_channels, out_channels):
        return (_prod(output_shape[1:-1]) * _prod(layer.kernel_size) * in_channels
                * layer.depth_multiplier)


class BatchNormRule(FollowerRule):
    """`keras.layers.BatchNormalization` over the channels (last axis)."""

    def kind(self, layer, rank=None):
        axis = layer.axis if isinstance(layer.axis, int) else None
        if axis is None or (axis != -1 and axis != (rank or 0) - 1):
            return Kind(UNKNOWN, f"BatchNormalization {layer.name!r} normalizes "
                                 f"axis {layer.axis}, not the channels")
        return Kind(FOLLOWER)

    def channel_weights(self, layer):
        return [(w, 0) for w in (layer.gamma, layer.beta) if w is not None]

    def constants(self, layer, inputs, width):
        (v,) = inputs
        gamma = to_numpy(layer.gamma) if layer.gamma is not None else np.ones_like(v)
        beta = to_numpy(layer.beta) if layer.beta is not None else np.zeros_like(v)
        scale = gamma / np.sqrt(to_numpy(layer.moving_variance) + layer.epsilon)
        out = scale * (v - to_numpy(layer.moving_mean)) + beta
        return np.where(gamma == 0, beta, out)


# -- layers without weights --------------------------------------------------
class PassRule(LayerRule):
    """Channel `i` in, channel `i` out, no weights (pooling, dropout,
    padding, cropping, upsampling): a constant channel stays constant."""

    def kind(self, layer, rank=None):
        return Kind(PASS)

    def constants(self, layer, inputs, width):
        return inputs[0]


class ZeroPaddingRule(PassRule):
    """`keras.layers.ZeroPadding*D`: only a zero channel stays constant."""

    def constants(self, layer, inputs, width):
        return np.where(inputs[0] == 0, 0.0, np.nan)


class ActivationRule(PassRule):
    """An element-wise activation layer; f(0) is checked, a softmax mixes
    the channels."""

    def kind(self, layer, rank=None):
        if getattr(getattr(layer, "activation", None), "__name__", "") in (
                "softmax", "log_softmax"):
            return Kind(UNKNOWN, f"layer {layer.name!r} (softmax) mixes the channels")
        return Kind(PASS, f0_nonzero(layer, f"layer {layer.name!r}"))

    def constants(self, layer, inputs, width):
        return apply(layer, inputs[0])


class RescalingRule(PassRule):
    """`keras.layers.Rescaling` with one scale and offset."""

    def kind(self, layer, rank=None):
        if np.ndim(layer.scale) or np.ndim(layer.offset):
            return Kind(UNKNOWN, f"Rescaling {layer.name!r} has per-channel values")
        return Kind(PASS, None if layer.offset == 0 else
                    f"Rescaling {layer.name!r} adds offset {layer.offset}")

    def constants(self, layer, inputs, width):
        return inputs[0] * float(layer.scale) + float(layer.offset)


class MixingRule(LayerRule):
    """A layer that mixes the channels (softmax, layer or group
    normalization): its channels stay whole."""

    def __init__(self, why):
        self.why = why

    def kind(self, layer, rank=None):
        return Kind(UNKNOWN, f"{type(layer).__name__} {layer.name!r} {self.why}")


class MergeRule(LayerRule):
    """An element-wise merge, as a layer (`keras.layers.Add`) or an
    operation (`x + y`).

    Args:
        zero: `"all"` (a channel is zero only if it is in every input: Add)
            or `"any"` (zero if it is in one: Multiply).
        combine: NumPy function of the list of the inputs' per-channel
            constants.
    """

    def __init__(self, zero, combine):
        self.zero, self.combine = zero, combine

    def kind(self, layer, rank=None):
        return Kind(MERGE, self.zero)

    def constants(self, layer, inputs, width):
        full = max(len(v) for v in inputs)
        wide = [v for v in inputs if len(v) == full]
        whole = len(wide) == len(inputs)  # else a broadcast input: not followed
        out = self.combine(wide) if whole else np.full(full, np.nan)
        if self.zero == "any":
            return np.where(np.any([v == 0 for v in wide], axis=0), 0.0, out)
        return out


class ConcatRule(LayerRule):
    """`keras.layers.Concatenate`: the inputs' channels side by side."""

    def kind(self, layer, rank=None):
        return Kind(CONCAT)

    def constants(self, layer, inputs, width):
        return np.concatenate(inputs)


class FlattenRule(LayerRule):
    """`keras.layers.Flatten`: `(..., C)` -> positions x C rows."""

    def kind(self, layer, rank=None):
        return Kind(FLATTEN)

    def constants(self, layer, inputs, width):
        return inputs[0]


class ReshapeRule(FlattenRule):
    """`keras.layers.Reshape` keeping the channel axis last."""

    def kind(self, layer, rank=None):
        return Kind(RESHAPE)

    def resize_channels(self, layer, in_rows, out_rows):
        target = list(layer.target_shape)
        target[-1] = len(out_rows)
        return {"target_shape": tuple(target)}, {}


class OperationRule(LayerRule):
    """An element-wise operation node with one input: its zeros are
    followed only when f(0) = 0 (`reason` None)."""

    def __init__(self, reason=None):
        self.reason = reason

    def kind(self, layer, rank=None):
        return Kind(PASS, self.reason)

    def constants(self, layer, inputs, width):
        return np.where((inputs[0] == 0) & (self.reason is None), 0.0, np.nan)


_MERGES = {
    "Add": MergeRule("all", lambda vs: np.sum(vs, axis=0)),
    "Subtract": MergeRule("all", lambda vs: vs[0] - vs[1]),
    "Average": MergeRule("all", lambda vs: np.mean(vs, axis=0)),
    "Maximum": MergeRule("all", lambda vs: np.max(vs, axis=0)),
    "Minimum": MergeRule("all", lambda vs: np.min(vs, axis=0)),
    "Multiply": MergeRule("any", lambda vs: np.prod(vs, axis=0)),
}
# Operation nodes by class name: merges (the same rules as their layers),
# element-wise with f(0) = 0, element-wise with f(0) != 0.
_OPERATIONS = {name: rule for name, rule in _MERGES.items() if name != "Average"}
_OPERATIONS.update({name: OperationRule() for name in (
    "Relu", "Relu6", "Silu", "Swish", "Gelu", "Tanh", "HardSilu", "HardSwish",
    "LeakyRelu", "Elu", "Selu", "Celu", "Softsign", "Abs", "Negative", "Square", "Sign",
    "Identity", "Mish")})
_OPERATIONS.update({name: OperationRule(f"operation {name} gives f(0) != 0") for name in (
    "Sigmoid", "HardSigmoid", "Softplus", "Exp", "Cos", "LogSigmoid", "SparsePlus",
    "Squareplus")})


class WeightsRule(LayerRule):
    """A layer known only by its prunable weights (no channel rule):
    `prunable` names them.

    Args:
        prunable: names of the variables to mask.
    """

    def __init__(self, prunable):
        self.prunable = tuple(prunable)

    def __repr__(self):
        return f"WeightsRule({self.prunable!r})"


class ReversibleEmbeddingRule(WeightsRule):
    """`keras.layers.ReversibleEmbedding` (KerasHub's token embedding): the
    token table `[vocab, hidden]` and, when untied, the output head
    `reverse_embeddings` `[hidden, vocab]`. Reversed (the logits), both
    reduce over `hidden`, so N:M groups run along it: axis 1 of the table,
    0 of the head (a lookup reduces over nothing)."""

    def __init__(self):
        super().__init__(("embeddings", "reverse_embeddings"))

    def input_axes(self, layer, weights):
        return [1 if w.name == "embeddings" else 0 for w in weights]

    def __repr__(self):
        return "ReversibleEmbeddingRule()"


def einsum_input_axis(equation):
    """The kernel axis an `EinsumDense` reduces over last (the innermost
    input channel): the last kernel letter that the input holds and the
    output doesn't. `"abc,cde->abde"` (MultiHeadAttention's query: kernel
    `[hidden, heads, head_dim]`) gives 0; `"abcd,cde->abe"` (its output:
    `[heads, head_dim, hidden]`) gives 1. None when it reduces over no
    kernel axis (an element-wise scale).
    """
    inputs, output = equation.replace(" ", "").split("->")
    x, kernel = inputs.split(",")
    reduced = [i for i, letter in enumerate(kernel) if letter in x and letter not in output]
    return reduced[-1] if reduced else None


class EinsumDenseRule(WeightsRule):
    """`keras.layers.EinsumDense`: its kernel, whose input axis is read from
    the equation (`einsum_input_axis`)."""

    def __init__(self):
        super().__init__(("kernel",))

    def input_axes(self, layer, weights):
        axis = einsum_input_axis(layer.equation)
        return [axis if w is layer.kernel and axis is not None
                else max(len(w.shape) - 2, 0) for w in weights]

    def __repr__(self):
        return "EinsumDenseRule()"


class ContainerRule(LayerRule):
    """A layer that only holds others (`TimeDistributed`, `Bidirectional`):
    its prunable weights are theirs.

    Args:
        inner: a function `layer -> [held layers]`.
    """

    def __init__(self, inner):
        self.inner = inner

    def inner_layers(self, layer):
        return self.inner(layer)


def _register_builtins():
    def each(classes, rule):
        for cls in classes:
            base.register_layer_rule(cls, rule)

    each((L.Dense,), DenseRule())
    each((L.Conv1D, L.Conv2D, L.Conv3D), ConvRule())
    each((L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose), TransposedConvRule())
    each((L.SeparableConv1D, L.SeparableConv2D), SeparableConvRule())
    each((L.DepthwiseConv1D, L.DepthwiseConv2D), DepthwiseRule())
    each((L.BatchNormalization,), BatchNormRule())
    each((L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
          L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
          L.Identity, L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
          L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
          L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
          L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
          L.Cropping1D, L.Cropping2D, L.Cropping3D,
          L.UpSampling1D, L.UpSampling2D, L.UpSampling3D), PassRule())
    each((L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D), ZeroPaddingRule())
    each((L.Activation, L.ReLU, L.LeakyReLU, L.ELU), ActivationRule())
    each((L.Rescaling,), RescalingRule())
    each((L.Softmax,), MixingRule("(softmax) mixes the channels"))
    each((L.LayerNormalization, L.GroupNormalization),
         MixingRule("normalizes across channels"))
    for name, rule in _MERGES.items():
        base.register_layer_rule(getattr(L, name), rule)
    each((L.Concatenate,), ConcatRule())
    each((L.Flatten,), FlattenRule())
    each((L.Reshape,), ReshapeRule())
    # Known by their weights only.
    each((L.EinsumDense,), EinsumDenseRule())
    each((L.Embedding,), WeightsRule(("embeddings",)))
    each((L.ReversibleEmbedding,), ReversibleEmbeddingRule())
    # Recurrent layers: input and recurrent kernels, as in tfmot's registry.
    each((L.SimpleRNN, L.GRU, L.LSTM), WeightsRule(("kernel", "recurrent_kernel")))
    each((L.MultiHeadAttention,), AttentionRule())
    each((L.TimeDistributed,), ContainerRule(lambda layer: [layer.layer]))
    each((L.Bidirectional,), ContainerRule(
        lambda layer: [layer.forward_layer, layer.backward_layer]))
    for name, rule in _OPERATIONS.items():
        base.register_operation_rule(name, rule)


_register_builtins()
