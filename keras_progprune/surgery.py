"""Model surgery: cloning a graph model layer by layer, and copying weights.

The one place that rebuilds models. `prune_low_magnitude` (wrap),
`strip_pruning` (unwrap), `shrink` and `fit_shrinking` (smaller layers) all
clone through `clone` with a function that makes each new layer, then copy
weights with `copy_weights`.
"""

import inspect
import json
import os
import tempfile
import warnings

import keras
import numpy as np

from keras_progprune import walk
from keras_progprune import rules
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
    tolerate(new)
    return new


def tolerate(layer, checked=None):
    """Makes `layer.get_config()` leave out the keys its class writes but
    its constructor refuses (see `from_config`), so that it saves and
    reloads; the class is not touched.

    Args:
        layer: a layer.
        checked: optional dict caching, per class and keys, whether the
            class's config reloads (testing it builds a layer).
    """
    cls = type(layer)
    try:
        own = cls.get_config(layer)  # what the class itself would save
    except NotImplementedError:  # no config of its own: nothing to cut
        return
    dropped = tuple(unaccepted_keys(cls, own))
    if not dropped:
        return
    checked = {} if checked is None else checked
    if (cls, dropped) not in checked:
        try:
            cls.from_config(own)
            checked[cls, dropped] = True
        except (TypeError, ValueError):
            checked[cls, dropped] = False
    if not checked[cls, dropped]:
        layer.get_config = lambda: {k: v for k, v in cls.get_config(layer).items()
                                    if k not in dropped}


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


def _drop_refused_keys(config_path, objects):
    """Rewrites a saved `config.json` without the keys that a class of
    `objects` writes in `get_config()` but its `from_config` refuses, the
    bug `from_config` above tolerates (keras-hub 0.32's `ViTPatchingAndEmbedding`
    writes `num_patches` and `num_positions`): Keras's own load of such a
    model fails."""
    with open(config_path) as f:
        config = json.load(f)
    classes = {(c.__module__, c.__name__): c for c in objects.values()}

    def visit(node):
        if isinstance(node, dict):
            cls = classes.get((node.get("module"), node.get("class_name"))) if isinstance(
                node.get("config"), dict) else None
            dropped = unaccepted_keys(cls, node["config"]) if cls is not None else ()
            if dropped:
                try:
                    cls.from_config(dict(node["config"]))
                except (TypeError, ValueError):  # as `from_config` above
                    for key in dropped:
                        node["config"].pop(key)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(config)
    with open(config_path, "w") as f:
        json.dump(config, f)


def _load(path, objects):
    with warnings.catch_warnings():
        # Loading calls a custom layer's default `build()` before the graph
        # call that builds its sublayers, and Keras warns that it "does not
        # have a `build()` method"; the user's own `load_model` would say
        # the same. The copy is complete (the graph call built it), so the
        # warning says nothing here.
        warnings.filterwarnings("ignore", message=r"`build\(\)` was called on layer")
        return keras.saving.load_model(path, custom_objects=objects, compile=False,
                                       safe_mode=False)


def _state_is_variables(layer):
    """Whether everything `layer` holds is in its variables and config:
    Keras's own layers outside `keras.layers.preprocessing` (adapted
    statistics and vocabularies live outside variables there), graph
    models, and our wrapper around such a layer. A user's class, even a
    subclass of a Keras layer, may hold anything."""
    if isinstance(layer, PruningWrapper):
        return _state_is_variables(layer.layer)
    return walk.state_lives_in_variables(layer)


def _rebuilt_copy(model, made=None):
    """A copy of a graph model whose layers all pass `_state_is_variables`:
    each layer made again from its config and given its weights, once per
    layer (shared layers stay shared). The same copy as Keras's save and
    load for such layers, about 4x cheaper."""
    made = {} if made is None else made

    def copy_layer(layer):
        if not walk.is_layer(layer):
            return layer  # an operation node (`x + y`, keras.ops): stateless
        if id(layer) not in made:
            if isinstance(layer, keras.Model):
                made[id(layer)] = _rebuilt_copy(layer, made)
            else:
                new = fresh(layer)
                new.set_weights(layer.get_weights())
                made[id(layer)] = new
        return made[id(layer)]

    call_function = None if isinstance(model, keras.Sequential) else call_accepting
    return keras.models.clone_model(model, clone_function=copy_layer,
                                    call_function=call_function)


def keras_copy(model):
    """A deep copy of a graph model, made by Keras's own save and load.

    Rebuilding each layer from `get_config()` and then `set_weights()`
    copies variables only: an adapted `Normalization` loses its finalized
    statistics, a `StringLookup` or `TextVectorization` its vocabulary, a
    custom layer without `build()` its sublayers' weights, and a layer
    shared between nested models its sharing. Keras's `.keras` route keeps
    every one of them (each layer's `save_own_variables`,
    `load_own_variables` and assets run, and the graph is called again to
    build what `build()` doesn't), so the copy computes exactly what
    `model` computes. It is written unzipped to a temporary directory and
    read back without compiling; `model` is not changed. A model made only
    of layers whose state is their variables (`_state_is_variables`: the
    model zoo, keras.applications) is rebuilt from config with its weights
    instead, which gives the same copy for less.

    Returns:
        `(copy, original_of)`: the copy and a dict from `id(copied layer)`
        to the layer of `model` it copies (nested layers included).

    Raises:
        ValueError: if Keras can't save or load `model`; the message names
            the cause and the fix.
    """
    if all(_state_is_variables(layer) for layer in [model, *walk.sublayers(model)]):
        return _paired(model, _rebuilt_copy(model))
    with tempfile.TemporaryDirectory(prefix="keras_progprune_copy_") as directory:
        path = os.path.join(directory, "model")
        # Classes from outside Keras by the names a config gives them, so that a
        # class defined in a script or a function loads too. Keras's own are
        # left to Keras: a plain name such as 'Add' also names the `x + y` node.
        objects = walk.outside_classes(model)
        try:
            keras.saving.save_model(model, path, zipped=False)
            try:
                copy = _load(path, objects)
            except (TypeError, ValueError):
                # Only then: testing each class's config builds its layer.
                _drop_refused_keys(os.path.join(path, "config.json"), objects)
                copy = _load(path, objects)
        except Exception as e:  # Keras raises many types here; all get one fix
            raise ValueError(
                f"Can't copy model {model.name!r}: Keras's own save and load of it "
                f"failed ({type(e).__name__}: {e}). The copy keeps what a rebuild "
                "from config would lose (adapted statistics, vocabularies, shared "
                "layers), so it needs the model to save and load: give every custom "
                "layer a `get_config()` that returns its constructor's arguments, "
                "and register custom functions with "
                "`@keras.saving.register_keras_serializable()`.") from e
    return _paired(model, copy)


def _paired(model, copy):
    """`(copy, {id(copied layer): its layer in model})`, by a parallel walk."""
    originals = [model, *walk.sublayers(model)]
    copies = [copy, *walk.sublayers(copy)]
    if len(originals) != len(copies) or any(
            type(a) is not type(b) for a, b in zip(originals, copies)):
        raise ValueError(
            f"Model {model.name!r} reloads with other layers than it holds "
            f"({len(originals)} layers before, {len(copies)} after a Keras save and "
            "load), so it can't be copied layer for layer. Check that each custom "
            "layer's `get_config()` returns the arguments that rebuild the same "
            "sublayers.")
    checked = {}
    for layer in copies:
        if not walk.is_keras_own(layer):
            tolerate(layer, checked)  # so that the copy saves and reloads too
    for a, b in zip(originals, copies):
        # Sublayers a custom layer makes without a name are numbered anew when
        # it is loaded ('dense_40' for 'dense_12'); the copy keeps the user's
        # names, so that errors and reports name the user's layers.
        b.name = a.name
    return copy, {id(b): a for a, b in zip(originals, copies)}


def clone(model, clone_function):
    """Clones a Sequential/Functional model, nested graph models included,
    from a `keras_copy` of it.

    `clone_function(original, copied)` is called once per layer (a layer
    called at several sites is one layer, so it stays one, shared), with
    the user's layer and its copy, and returns the layer to put in its
    place: the copy itself (a copy keeps all its state), a wrapper around
    it, or a new layer. Nested Sequential and Functional models are cloned
    the same way, recursively; a nested subclassed model is handed to
    `clone_function`.

    Returns:
        `(clone, pairs)`: the new model and `{id(original): (original, new)}`
        for every layer whose new layer is not its copy.
    """
    copied, original_of = keras_copy(model)
    walk.forget_calls(copied)  # its layers join the new graph alone
    pairs, made = {}, {}

    def rebuild(graph):
        def record(layer):
            if not walk.is_layer(layer):
                return layer  # an operation node (`x + y`, keras.ops): stateless
            if id(layer) not in made:
                if isinstance(layer, keras.Model) and walk.is_graph_model(layer):
                    made[id(layer)] = rebuild(layer)
                else:
                    original = original_of[id(layer)]
                    new = clone_function(original, layer)
                    if new is not layer:
                        pairs[id(original)] = (original, new)
                    made[id(layer)] = new
            return made[id(layer)]

        # Sequential models list their layers instead of calling them.
        call_function = None if isinstance(graph, keras.Sequential) else call_accepting
        return keras.models.clone_model(graph, clone_function=record,
                                        call_function=call_function)

    return rebuild(copied), pairs


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


def rebuilt(model, overrides, changed):
    """`(clone, pairs)`: `model` cloned with each layer in `changed` (a set
    of `id(layer)`) made again from its config plus `overrides[id(layer)]`
    (smaller units, filters, Reshape targets); a `PruningWrapper` stays a
    wrapper around its smaller layer, with the same settings. Every other
    layer is a Keras copy of its own (state kept, see `keras_copy`), and
    `pairs` holds only the remade ones, whose weights are not copied."""

    def clone_layer(layer, copied):
        inner = layer.layer if isinstance(layer, PruningWrapper) else layer
        if id(inner) not in changed and id(layer) not in changed:
            return copied
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
