"""The public verbs: `prune_low_magnitude` and `strip_pruning`."""

import keras
import numpy as np

from keras_progprune import hub_models
from keras_progprune import registry
from keras_progprune import structures as structures_lib
from keras_progprune import surgery
from keras_progprune import walk
from keras_progprune.channels import graph as channel_graph
from keras_progprune.wrapper import PruningWrapper
from keras_progprune.wrapper import check_schedule
from keras_progprune.wrapper import check_scope


def _all_layer_names(model):
    return {l.name for l in walk.sublayers(model)}


def _refuse_subclassed(model, structure=None):
    if structure is not None and structure.needs_graph:
        raise ValueError(
            f"structure='channel' can't prune the subclassed model {model.name!r} "
            f"(class {type(model).__name__}): the coupled channels are read from the "
            "model's graph, and a subclassed model has none that can be read. Pass a "
            "Sequential or Functional model (keras.applications and KerasHub "
            "backbones are Functional), or use structure='unstructured' or '2:4', "
            "which work with `PruningWrapper` inside subclassed models.")
    raise ValueError(
        f"`prune_low_magnitude` can't wrap the subclassed model {model.name!r} "
        f"(class {type(model).__name__}): its layers are created in Python code "
        "that can't be rewritten from outside. Wrap its layers yourself in "
        "`__init__`, e.g. `self.fc = keras_progprune.PruningWrapper("
        "keras.layers.Dense(10), pruning_schedule)`, or pass a Sequential or "
        "Functional model."
    )


def _check_not_wrapped(layer):
    if isinstance(layer, PruningWrapper):
        raise ValueError(
            f"Layer {layer.layer.name!r} is already wrapped in a PruningWrapper "
            f"({layer.name!r}). A layer can be wrapped only once: call "
            "`strip_pruning` first to re-prune with another schedule."
        )


@walk.keeps_frozen("prune_low_magnitude")
def prune_low_magnitude(
    to_prune, pruning_schedule=None, *, scope="layer", exclude=(),
    structure="unstructured",
):
    """Wraps every prunable layer in `PruningWrapper`.

    The input is never modified: a Sequential or Functional model is cloned
    (weights copied), and a failure leaves it untouched. Nested Sequential
    and Functional models are pruned recursively; a layer used at several
    call sites gets one wrapper (one mask).

    Args:
        to_prune: a Sequential model, a Functional model, one layer or a list
            of layers.
        pruning_schedule: `PruningSchedule` shared by the wrappers. Defaults
            to a new `ConstantSparsity(0.5, begin_step=0)` per call.
        scope: `"layer"`: every wrapped layer reaches the scheduled sparsity.
            `"global"`: one magnitude threshold across all wrapped weights,
            so layers end at different sparsities (the paper's method).
            Defaults to `"layer"`.
        exclude: iterable of layer names to leave dense.
        structure: the shape of the masks: `"unstructured"` (any weight),
            `"n:m"` such as `"2:4"` (n of every m input channels kept, see
            `structures.MByN`), or a `structures.Structure`. Defaults to
            `"unstructured"`.

    Returns:
        The same kind of object as `to_prune`, with prunable layers wrapped.

    Raises:
        ValueError: for a subclassed model (wrap its layers with
            `PruningWrapper` instead), a layer that can't be pruned, a layer
            already wrapped, an `exclude` name not in the model, or a bad
            `scope`, `pruning_schedule` or `structure`.

    Examples:
        >>> import keras, keras_progprune as kp
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0))
        >>> type(pruned.layers[0]).__name__
        'PruningWrapper'
    """
    check_scope(scope)
    schedule = check_schedule(pruning_schedule)
    structure = structures_lib.get(structure)
    if isinstance(exclude, str):
        exclude = (exclude,)
    exclude = set(exclude)

    def wrap(layer):
        _check_not_wrapped(layer)
        return PruningWrapper(layer, schedule, scope=scope, structure=structure)

    if isinstance(to_prune, (list, tuple)):
        _check_exclude(exclude, {l.name for l in to_prune})
        for layer in to_prune:  # validate all before wrapping any
            _check_not_wrapped(layer)
        refused = [l for l in to_prune if l.name not in exclude and not structure.accepts(l)]
        if refused:
            structure.refuse(refused, exclude)
        return [layer if layer.name in exclude else wrap(layer) for layer in to_prune]
    if isinstance(to_prune, keras.Model):
        if not walk.is_graph_model(to_prune):
            _refuse_subclassed(to_prune, structure)
        _check_exclude(exclude, _all_layer_names(to_prune))
        for layer in walk.sublayers(to_prune):
            _check_not_wrapped(layer)
        if structure.needs_graph:
            return _prune_model(to_prune, wrap, _channel_members(to_prune, exclude))
        refused = _refused_layers(to_prune, exclude)
        if refused:
            raise registry.unprunable_error(refused, exclude)
        return _prune_model(to_prune, wrap, lambda layer: layer.name not in exclude
                            and registry.is_prunable(layer))
    if isinstance(to_prune, keras.layers.Layer):
        _check_exclude(exclude, {to_prune.name})
        if to_prune.name in exclude:
            return to_prune
        return wrap(to_prune)
    raise ValueError(
        "`to_prune` must be a Sequential or Functional model, a layer or a "
        f"list of layers. Received: to_prune={to_prune!r} of type "
        f"{type(to_prune).__name__}."
    )


def _check_exclude(exclude, names):
    missing = sorted(exclude - names)
    if missing:
        raise ValueError(
            f"`exclude` names layers that are not in the model: {missing}. "
            f"Received: exclude={sorted(exclude)}. Layer names available: "
            f"{sorted(names)}."
        )


def _refused_layers(model, exclude):
    """Every layer of the graph (nested graphs included) that holds weight
    matrices but can't be pruned and isn't excluded: all of them at once."""
    refused = []
    for layer in model.layers:
        if layer.name in exclude:
            continue
        if isinstance(layer, keras.Model):
            if not walk.is_graph_model(layer):
                _refuse_subclassed(layer)
            refused += _refused_layers(layer, exclude)
        elif registry.has_unregistered_matrices(layer):
            refused.append(layer)
    return refused


def _prune_model(model, wrap, chosen):
    """`model` copied the Keras way (`surgery.keras_copy`: adapted state,
    vocabularies and sharing kept), with each chosen layer's copy wrapped."""

    def clone_layer(layer, copied):
        if isinstance(layer, keras.Model):  # a nested subclassed model
            _refuse_subclassed(layer)
        return wrap(copied) if chosen(layer) else copied

    if hub_models.is_hub_model(model):
        return hub_models.wrapped(model, wrap, chosen)
    clone, _ = surgery.clone(model, clone_layer)
    return clone


def stripped_weights(wrapper):
    """The inner layer's weights with the masks baked in: each pruned weight
    is +0.0 (never -0.0: all-zero bytes compress best), whatever value the
    variable stores (the forward pass never reads it)."""
    pruned = {id(w): m for w, m in zip(wrapper.pruned_weights, wrapper.masks)}
    values = []
    for w in wrapper.layer.weights:
        value = np.asarray(w.numpy())
        if id(w) in pruned:
            value = np.where(np.asarray(pruned[id(w)].numpy()) != 0, value,
                             np.zeros((), value.dtype))
        values.append(value)
    return values


def _holds_wrappers(layer):
    return any(isinstance(sub, PruningWrapper) for sub in walk.sublayers(layer))


def _subclassed_strip_error(model):
    """The refusal for a subclassed model (a VAE, a GAN, a distiller: a
    custom `train_step` around graph models), with the lines that strip
    what it holds."""
    kind, name = type(model).__name__, model.name
    parts = [attr for attr, value in walk.attributes(model).items()
             if isinstance(value, keras.Model) and walk.is_graph_model(value)
             and _holds_wrappers(value)]
    loose = [w.layer.name for w in walk.sublayers(model) if isinstance(w, PruningWrapper)
             and not any(w is sub for attr in parts
                         for sub in walk.sublayers(getattr(model, attr)))]
    head = (f"`strip_pruning` can't rebuild the subclassed model {name!r} (class {kind}): "
            "its own Python code makes it, and its constructor's arguments are "
            "unknown here.")
    if parts and not loose:
        lines = "; ".join(f"`{attr} = kp.strip_pruning(model.{attr})`" for attr in parts)
        return ValueError(
            f"{head} Its pruned parts are Sequential or Functional models, which strip "
            f"on their own: {lines}. Then build a {kind} from the stripped parts, or save "
            "and serve them directly.")
    return ValueError(
        f"{head} Wrappers sit directly in it (layers {loose}): build the same model "
        "with plain layers, and copy each wrapped layer's weights from "
        "`kp.strip_pruning(wrapper).get_weights()`.")


def strip_pruning(model):
    """Removes every `PruningWrapper`, returning plain Keras layers.

    The result uses the original layer classes and names, with pruned
    weights baked in as exact zeros, and gives identical outputs. It can be
    saved, exported and served without this package.

    Args:
        model: a Sequential or Functional model, or one `PruningWrapper`.

    Returns:
        A new model (or layer) without wrappers. The input is not modified.

    Raises:
        ValueError: for a subclassed model (a model with its own
            `train_step` around graph models: its code can't be rebuilt
            from outside). The message lists the parts to strip one by one.

    Examples:
        >>> import keras, keras_progprune as kp
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> plain = kp.strip_pruning(kp.prune_low_magnitude(model))
        >>> type(plain.layers[0]).__name__
        'Dense'
    """
    if isinstance(model, PruningWrapper):
        model.check_not_quantized()
        layer = surgery.fresh(model.layer)  # built like the wrapped layer
        if model.built:
            layer.set_weights(stripped_weights(model))
        return layer
    if isinstance(model, keras.Model) and not walk.is_graph_model(model):
        raise _subclassed_strip_error(model)
    if not isinstance(model, keras.Model):
        raise ValueError(
            "`strip_pruning` takes a Sequential or Functional model or a "
            f"PruningWrapper. Received: model={model!r} of type "
            f"{type(model).__name__}."
        )

    for wrapper in walk.sublayers(model):
        if isinstance(wrapper, PruningWrapper):
            wrapper.check_not_quantized()  # before a copy: its masks no longer apply

    if hub_models.is_hub_model(model):
        return hub_models.stripped(model, stripped_weights)

    def clone_layer(layer, copied):
        if isinstance(copied, PruningWrapper):
            return copied.unwrap()
        return copied

    clone, _ = surgery.clone(model, clone_layer)
    return clone


def _channel_members(model, exclude):
    """Which layers a graph structure wraps: the producers and followers of
    every prunable channel group (nothing else changes).

    Raises:
        ValueError: if the model has no channel that can be removed.
    """
    graph = channel_graph.analyze(model)
    members = set(graph.member_layers()) - set(exclude)
    if not members:
        reasons = "; ".join(f"{k!r}: {v}" for k, v in graph.frozen_reasons().items())
        raise ValueError(
            f"structure='channel' found no channel that can be removed in model "
            f"{model.name!r} without changing its outputs. Channels by producing "
            f"layer: {reasons}. Use structure='unstructured' for this model.")
    return lambda layer: layer.name in members
