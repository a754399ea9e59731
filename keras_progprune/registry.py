"""Which weights of which layer are prunable: one table, one lookup.

A layer class maps to the names of the variables that are pruned. Biases
and normalization parameters never appear here. Container layers that wrap
other layers (`Bidirectional`, `TimeDistributed`) are looked through, and a
custom layer opts in by defining `get_prunable_weights()`.
"""

import keras

L = keras.layers

# layer class -> names of its prunable variables (matched against
# `variable.name` over the layer's weights, nested cells included).
PRUNABLE_WEIGHTS = {
    L.Dense: ("kernel",),
    L.EinsumDense: ("kernel",),
    L.Conv1D: ("kernel",),
    L.Conv2D: ("kernel",),
    L.Conv3D: ("kernel",),
    L.Conv1DTranspose: ("kernel",),
    L.Conv2DTranspose: ("kernel",),
    L.Conv3DTranspose: ("kernel",),
    L.DepthwiseConv1D: ("kernel",),
    L.DepthwiseConv2D: ("kernel",),
    L.SeparableConv1D: ("depthwise_kernel", "pointwise_kernel"),
    L.SeparableConv2D: ("depthwise_kernel", "pointwise_kernel"),
    L.Embedding: ("embeddings",),
    # Recurrent layers: input and recurrent kernels, as in tfmot's registry.
    L.SimpleRNN: ("kernel", "recurrent_kernel"),
    L.GRU: ("kernel", "recurrent_kernel"),
    L.LSTM: ("kernel", "recurrent_kernel"),
    # The query, key, value and output projections (EinsumDense kernels).
    L.MultiHeadAttention: ("kernel",),
}

# Layers that only hold other layers: their prunable weights are those of
# the layers inside.
_CONTAINERS = {
    L.TimeDistributed: lambda layer: [layer.layer],
    L.Bidirectional: lambda layer: [layer.forward_layer, layer.backward_layer],
}


def _lookup(table, layer):
    for cls in type(layer).__mro__:
        if cls in table:
            return table[cls]
    return None


def is_prunable(layer):
    """Whether `layer` has weights this package knows how to prune.

    True for the classes in `PRUNABLE_WEIGHTS` (and their subclasses), for
    `TimeDistributed`/`Bidirectional` around such a layer, and for any layer
    that defines `get_prunable_weights()`.
    """
    if hasattr(layer, "get_prunable_weights"):
        return True
    inner = _lookup(_CONTAINERS, layer)
    if inner is not None:
        return all(is_prunable(sub) for sub in inner(layer))
    return _lookup(PRUNABLE_WEIGHTS, layer) is not None


def get_prunable_weights(layer):
    """The list of prunable variables of a built layer, in weight order.

    Args:
        layer: a built `keras.layers.Layer` for which `is_prunable` is true.

    Returns:
        A list of `keras.Variable`.

    Raises:
        ValueError: if the layer is not prunable.
    """
    if hasattr(layer, "get_prunable_weights"):
        return list(layer.get_prunable_weights())
    inner = _lookup(_CONTAINERS, layer)
    if inner is not None:
        return [w for sub in inner(layer) for w in get_prunable_weights(sub)]
    names = _lookup(PRUNABLE_WEIGHTS, layer)
    if names is None:
        raise ValueError(
            f"Layer {layer.name!r} of type {type(layer).__name__} can't be "
            "pruned. Prunable types: "
            + ", ".join(sorted(c.__name__ for c in PRUNABLE_WEIGHTS))
            + ". To prune a custom layer, define `get_prunable_weights()` on "
            "it, returning the variables to prune."
        )
    return [w for w in layer.weights if w.name in names]


def has_unregistered_matrices(layer):
    """True for a layer with rank >= 2 trainable weights that is not prunable.

    `prune_low_magnitude` refuses such layers rather than silently leaving
    a large weight matrix dense.
    """
    if is_prunable(layer) or isinstance(layer, keras.Model):
        return False
    return any(len(w.shape) >= 2 for w in layer.trainable_weights)
