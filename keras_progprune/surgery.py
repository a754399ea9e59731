"""Model surgery: cloning a graph model layer by layer, and copying weights.

The one place that rebuilds models. `prune_low_magnitude` (wrap),
`strip_pruning` (unwrap), `shrink` and `fit_shrinking` (smaller layers) all
clone through `clone` with a function that makes each new layer, then copy
weights with `copy_weights`.
"""

import inspect

import keras
import numpy as np

from keras_progprune import walk
from keras_progprune.channels import rules
from keras_progprune.wrapper import PruningWrapper


def unaccepted_keys(cls, config):
    """Config keys the constructor of `cls` doesn't name (base Layer keys
    count as named when it takes `**kwargs`)."""
    params = inspect.signature(cls.__init__).parameters
    base = set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        base = set(keras.layers.Layer(name="base").get_config())
    return sorted(k for k in config if k not in params and k not in base)


def from_config(layer, overrides=None):
    """`type(layer).from_config(layer.get_config())`, tolerating one bug.

    Some classes write config keys their constructor refuses (KerasHub's
    `ViTPatchingAndEmbedding` writes the derived `num_patches` and
    `num_positions`), so `from_config` raises, and so does loading a saved
    model holding one. The copy is then built from the keys the constructor
    names, and its own `get_config` leaves the others out, so it also saves
    and reloads. The user's layer and its class are not touched.

    Args:
        layer: a Keras layer.
        overrides: optional dict of config values to change (a smaller
            `units`, say); under the key `rules.CLASS`, the class to build
            instead (a subclass whose config can say the new width).
    """
    overrides = dict(overrides or {})
    cls = overrides.pop(rules.CLASS, type(layer))
    config = {**layer.get_config(), **overrides}
    try:
        new = cls.from_config(config)
    except (TypeError, ValueError):  # Keras reports unknown kwargs as either
        dropped = unaccepted_keys(cls, config)
        if not dropped:
            raise
        new = cls.from_config({k: v for k, v in config.items() if k not in dropped})
    own = cls.get_config(new)  # what the class itself would save
    dropped = unaccepted_keys(cls, own)
    if dropped:
        try:
            cls.from_config(own)
        except (TypeError, ValueError):
            new.get_config = lambda: {k: v for k, v in cls.get_config(new).items()
                                      if k not in dropped}
    return new


def fresh(layer):
    """A new layer of the same class and config, built like `layer` if it is.

    Building from the original's build config matters for layers that take
    several inputs (MultiHeadAttention): a wrapper can't infer their shapes.
    """
    new = from_config(layer)
    build_config = layer.get_build_config() if layer.built else None
    if build_config and not new.built:  # some classes build in from_config
        new.build_from_config(build_config)
    return new


def call_accepting(layer, *args, **kwargs):
    """Calls `layer`, dropping keyword arguments its `call` doesn't take.

    A wrapper's call accepts `training` and `mask`; the plain layer that
    replaces it may not. Operation nodes (`x + y`) are called as they are.
    """
    if walk.is_layer(layer):
        kwargs = {k: v for k, v in kwargs.items() if walk.call_accepts(layer, k)}
    return layer(*args, **kwargs)


def clone(model, clone_function):
    """Clones a Sequential/Functional model with `clone_function(layer)`
    making each new layer.

    Returns:
        `(clone, pairs)`: the new model and `{id(old layer): (old, new)}`.
    """
    pairs = {}

    def record(layer):
        if not walk.is_layer(layer):
            return layer  # an operation node (`x + y`, keras.ops): stateless
        new = clone_function(layer)
        pairs[id(layer)] = (layer, new)
        return new

    # Sequential models list their layers instead of calling them.
    call_function = None if isinstance(model, keras.Sequential) else call_accepting
    copy = keras.models.clone_model(model, clone_function=record, call_function=call_function)
    return copy, pairs


def copy_weights(pairs, values_of):
    """Sets each new layer's weights from `values_of(old, new)`.

    Args:
        pairs: `{id: (old, new)}` from `clone`. Nested models are skipped
            (their recursive clone copied their weights).
        values_of: function `(old, new) -> (target layer, list of arrays)`,
            or None to leave `new` as it is. Values are cast to each target
            variable's dtype.
    """
    for old, new in pairs.values():
        if isinstance(old, keras.Model):
            continue
        result = values_of(old, new)
        if result is None:
            continue
        target, values = result
        target.set_weights([np.asarray(v, w.dtype) for v, w in zip(values, target.weights)])


def rebuilt(model, overrides):
    """`(clone, pairs)`: `model` cloned with each layer made again from its
    config plus `overrides[id(layer)]` (smaller units, filters, Reshape
    targets); a `PruningWrapper` stays a wrapper around its smaller layer,
    with the same settings. Weights are not copied."""

    def clone_layer(layer):
        if isinstance(layer, keras.Model):
            copy = keras.models.clone_model(layer)
            copy.set_weights(layer.get_weights())
            return copy
        if isinstance(layer, PruningWrapper):
            inner = from_config(layer.layer, overrides.get(id(layer.layer), {}))
            build_config = layer.layer.get_build_config() if layer.layer.built else None
            if build_config and rules.width_groups(layer.layer) and not inner.built:
                # Width channels are inside: the input shapes stay, and a layer
                # of several inputs (MultiHeadAttention) can't be built by its
                # wrapper from one.
                inner.build_from_config(build_config)
            return PruningWrapper(inner, layer.pruning_schedule, scope=layer.scope,
                                  structure=layer.structure, name=layer.name,
                                  initial_channels=layer.initial_channels)
        return from_config(layer, overrides.get(id(layer), {}))

    return clone(model, clone_layer)
