"""Walking Keras models: the one place that knows how layers nest.

Every walk over a model in this package goes through these helpers, so the
package reads Keras through public API everywhere else.

Functional graphs hold operation nodes that are not Layers (`x + y` or
`keras.ops.*` on KerasTensors); `model.layers` leaves them out, and the
helpers here never assume a node is a Layer.
"""

import inspect

import keras


def sublayers(layer):
    """Every layer nested inside `layer` (not itself), each once, depth first.

    Looks inside nested models, wrappers and composite layers (a
    `MultiHeadAttention`'s projections, a KerasHub `TransformerEncoder`'s
    Dense sublayers).
    """
    # Keras 3 has no public API that lists a plain Layer's sublayers:
    # `Model.layers` stops at the first level, and Layer has no `layers`.
    # `_flatten_layers` is the layer tracker's own recursive walk, the one
    # Keras uses for `model.weights`; this is the package's only private call.
    seen, out = set(), []
    for sub in layer._flatten_layers(include_self=False, recursive=True):
        if id(sub) not in seen:
            seen.add(id(sub))
            out.append(sub)
    return out


def is_graph_model(model):
    """True for Sequential and Functional models (and Functional subclasses
    such as keras.applications and KerasHub backbones): the models whose
    graph can be read and cloned."""
    return isinstance(model, keras.Sequential) or (
        isinstance(model, keras.Model) and isinstance(model, keras.Function))


def is_layer(node):
    """False for operation nodes of a Functional graph (`x + y`, `keras.ops`)."""
    return isinstance(node, keras.layers.Layer)


def call_accepts(layer, argument):
    """Whether `layer.call` takes `argument` by name (or `**kwargs`)."""
    params = inspect.signature(layer.call).parameters.values()
    return any(p.name == argument or p.kind is inspect.Parameter.VAR_KEYWORD
               for p in params)
