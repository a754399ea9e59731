"""Which weights of which layer are prunable: the lookup over layer rules.

Each layer type's rule (`keras_progprune.rules`) names its prunable weights
and each one's input-channel axis; this module reads them. Biases and
normalization parameters never appear. Container layers that wrap other
layers (`Bidirectional`, `TimeDistributed`) are looked through, and a custom
layer opts in by defining `get_prunable_weights()` or by a registered rule.
A layer of unknown class built only of prunable layers (a transformer
block) is prunable as a whole, through its sublayers.
"""

import keras

from keras_progprune import rules
from keras_progprune import walk


def _directly_prunable(layer):
    """Known by its rule, a container of known layers, or opted in."""
    if hasattr(layer, "get_prunable_weights"):
        return True
    rule = rules.rule_for(layer)
    if rule is None:
        return False
    inner = rule.inner_layers(layer)
    if inner is not None:
        return all(is_prunable(sub) for sub in inner)
    return rule.has_prunable()


def _prunable_sublayers(layer):
    """The outermost directly prunable layers nested inside `layer`."""
    found, covered = [], set()
    for sub in walk.sublayers(layer):
        if id(sub) in covered or isinstance(sub, keras.Model):
            continue
        if _directly_prunable(sub):
            found.append(sub)
            covered.update(id(s) for s in walk.sublayers(sub))
    return found


def _matrices(layer):
    return [w for w in layer.trainable_weights if len(w.shape) >= 2]


def is_composite(layer):
    """A built layer of unknown class made of prunable layers.

    Such a layer (a KerasHub `TransformerEncoder`: attention and Dense
    sublayers, LayerNormalization) is prunable as a whole: its prunable
    weights are its sublayers'. Every weight matrix it holds must belong to
    one of those sublayers; otherwise it is not composite (unknown weights
    are refused, never silently left dense).
    """
    if _directly_prunable(layer) or isinstance(layer, keras.Model) or not layer.built:
        return False
    subs = _prunable_sublayers(layer)
    if not subs:
        return False
    inside = {id(w) for sub in subs for w in sub.weights}
    return all(id(w) in inside for w in _matrices(layer))


def is_prunable(layer):
    """Whether `layer` has weights this package knows how to prune.

    True for the classes whose rule names prunable weights (and their
    subclasses), for `TimeDistributed`/`Bidirectional` around such a
    layer, for any layer
    that defines `get_prunable_weights()`, and for a built composite layer
    whose weight matrices all sit in such layers (`is_composite`).
    """
    return _directly_prunable(layer) or is_composite(layer)


def maybe_composite(layer):
    """An unbuilt layer that might turn out composite once built: a class
    from outside Keras (Keras's own layers are known leaves)."""
    return not layer.built and not walk.is_keras_own(layer)


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
    rule = rules.rule_for(layer)
    inner = rule.inner_layers(layer) if rule is not None else None
    if inner is not None:
        return [w for sub in inner for w in get_prunable_weights(sub)]
    if rule is not None and rule.has_prunable():
        return rule.prunable_weights(layer)
    if is_composite(layer):
        found, seen = [], set()
        for sub in _prunable_sublayers(layer):
            for w in get_prunable_weights(sub):
                if id(w) not in seen:
                    seen.add(id(w))
                    found.append(w)
        return found
    raise unprunable_error([layer])


def _owner(layer, weight):
    """The innermost of `layer` and its sublayers that holds `weight`."""
    owner = layer
    for sub in walk.sublayers(layer):
        if any(w is weight for w in sub.weights):
            owner = sub
    return owner


def input_axes(layer, weights):
    """The input-channel (reduction) axis of each of `weights`, prunable
    weights of `layer`, as a non-negative int: where N:M groups run. Each
    weight's owner (the innermost sublayer that holds it) says, through its
    rule's `input_axes`: axis -2 for Dense `[in, out]`, convolutions
    `[..., in, out]` and recurrent kernels; the reduced axis of an
    EinsumDense kernel, read from its equation, which for
    MultiHeadAttention's q/k/v kernels `[hidden, heads, head_dim]` is 0,
    not the heads."""
    axes = []
    for w in weights:
        owner = _owner(layer, w)
        rule = rules.rule_for(owner) or rules.LayerRule()
        axes.append(int(rule.input_axes(owner, [w])[0]) % max(len(w.shape), 1))
    return axes


def unprunable_error(layers, exclude=()):
    """One `ValueError` naming every layer that can't be pruned, with the fix."""
    types = ", ".join(rules.prunable_layer_names())
    names = sorted({layer.name for layer in layers} | set(exclude))
    if len(layers) == 1:
        (layer,) = layers
        head = f"Layer {layer.name!r} of type {type(layer).__name__} can't be pruned."
    else:
        head = (f"{len(layers)} layers can't be pruned: "
                + ", ".join(f"{l.name!r} ({type(l).__name__})" for l in layers) + ".")
    return ValueError(
        f"{head} Prunable types: {types}, and layers built only of those (such as "
        "transformer blocks). To prune a custom layer, define "
        "`get_prunable_weights()` on it, returning the variables to prune. To leave "
        f"{'it' if len(layers) == 1 else 'them'} dense, pass `exclude={names!r}`.")


def has_unregistered_matrices(layer):
    """True for a layer with rank >= 2 trainable weights that is not prunable.

    `prune_low_magnitude` refuses such layers rather than silently leaving
    a large weight matrix dense.
    """
    if isinstance(layer, keras.Model) or is_prunable(layer):
        return False
    return bool(_matrices(layer))
