"""The public verbs: `prune_low_magnitude`, `strip_pruning`, `sparsity_report`."""

import inspect

import keras
import numpy as np

from keras_progprune import registry
from keras_progprune import structures as structures_lib
from keras_progprune import walk
from keras_progprune.wrapper import PruningWrapper
from keras_progprune.wrapper import check_schedule
from keras_progprune.wrapper import check_scope


def _unaccepted_keys(cls, config):
    """Config keys the constructor of `cls` doesn't name (base Layer keys
    count as named when it takes `**kwargs`)."""
    params = inspect.signature(cls.__init__).parameters
    base = set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        base = set(keras.layers.Layer(name="base").get_config())
    return sorted(k for k in config if k not in params and k not in base)


def _from_config(layer, overrides=None):
    """`type(layer).from_config(layer.get_config())`, tolerating one bug.

    Some classes write config keys their constructor refuses (KerasHub's
    `ViTPatchingAndEmbedding` writes the derived `num_patches` and
    `num_positions`), so `from_config` raises, and so does loading a saved
    model holding one. The copy is then built from the keys the constructor
    names, and its own `get_config` leaves the others out, so it also saves
    and reloads. The user's layer and its class are not touched.
    """
    cls = type(layer)
    config = {**layer.get_config(), **(overrides or {})}
    try:
        new = cls.from_config(config)
    except (TypeError, ValueError):  # Keras reports unknown kwargs as either
        dropped = _unaccepted_keys(cls, config)
        if not dropped:
            raise
        new = cls.from_config({k: v for k, v in config.items() if k not in dropped})
    own = cls.get_config(new)  # what the class itself would save
    dropped = _unaccepted_keys(cls, own)
    if dropped:
        try:
            cls.from_config(own)
        except (TypeError, ValueError):
            new.get_config = lambda: {k: v for k, v in cls.get_config(new).items()
                                      if k not in dropped}
    return new


def _fresh(layer):
    """A new layer of the same class and config, built like `layer` if it is.

    Building from the original's build config matters for layers that take
    several inputs (MultiHeadAttention): a wrapper can't infer their shapes.
    """
    new = _from_config(layer)
    build_config = layer.get_build_config() if layer.built else None
    if build_config and not new.built:  # some classes build in from_config
        new.build_from_config(build_config)
    return new


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


def _call_accepting(layer, *args, **kwargs):
    """Calls `layer`, dropping keyword arguments its `call` doesn't take.

    A wrapper's call accepts `training` and `mask`; the plain layer that
    replaces it may not. Operation nodes (`x + y`) are called as they are.
    """
    if walk.is_layer(layer):
        kwargs = {k: v for k, v in kwargs.items() if walk.call_accepts(layer, k)}
    return layer(*args, **kwargs)


def _clone(model, clone_function):
    """Clones a Sequential/Functional model; returns (clone, {id(old): new})."""
    pairs = {}

    def record(layer):
        if not walk.is_layer(layer):
            return layer  # an operation node (`x + y`, keras.ops): stateless
        new = clone_function(layer)
        pairs[id(layer)] = (layer, new)
        return new

    # Sequential models list their layers instead of calling them.
    call_function = None if isinstance(model, keras.Sequential) else _call_accepting
    clone = keras.models.clone_model(
        model, clone_function=record, call_function=call_function
    )
    return clone, pairs


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

    Example:

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
        if refused and not structure.needs_graph:  # else the wrapper says why
            raise registry.unprunable_error(refused, exclude)
        return [layer if layer.name in exclude else wrap(layer) for layer in to_prune]
    if isinstance(to_prune, keras.Model):
        if not walk.is_graph_model(to_prune):
            _refuse_subclassed(to_prune, structure)
        _check_exclude(exclude, _all_layer_names(to_prune))
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


def _channel_members(model, exclude):
    """Which layers a channel-structured prune wraps: the producers and
    followers of every prunable channel group (nothing else changes)."""
    from keras_progprune.channels import graph as channel_graph  # noqa: PLC0415

    for layer in walk.sublayers(model):
        _check_not_wrapped(layer)
    graph = channel_graph.analyze(model)
    members = set(graph.member_layers()) - set(exclude)
    if not members:
        reasons = "; ".join(f"{k!r}: {v}" for k, v in graph.frozen_reasons().items())
        raise ValueError(
            f"structure='channel' found no channel that can be removed in model "
            f"{model.name!r} without changing its outputs. Channels by producing "
            f"layer: {reasons}. Use structure='unstructured' for this model.")
    return lambda layer: layer.name in members


def _prune_model(model, wrap, chosen):
    def clone_layer(layer):
        if isinstance(layer, keras.Model):
            if not walk.is_graph_model(layer):
                _refuse_subclassed(layer)
            return _prune_model(layer, wrap, chosen)
        _check_not_wrapped(layer)
        if chosen(layer):
            return wrap(_fresh(layer))
        return _fresh(layer)

    clone, pairs = _clone(model, clone_layer)
    for old, new in pairs.values():
        if isinstance(old, keras.Model):
            continue  # its weights were copied by the recursive call
        target = new.layer if isinstance(new, PruningWrapper) else new
        target.set_weights(old.get_weights())
    return clone


def _stripped_weights(wrapper):
    """The inner layer's weights with `weight * mask` baked in."""
    pruned = {id(w): m for w, m in zip(wrapper.pruned_weights, wrapper.masks)}
    values = []
    for w in wrapper.layer.weights:
        value = np.asarray(w.numpy())
        if id(w) in pruned:
            # +0.0, never -0.0 (w * 0 keeps w's sign): all-zero bytes compress best.
            value = np.where(np.asarray(pruned[id(w)].numpy()) != 0, value,
                             np.zeros((), value.dtype))
        values.append(value)
    return values


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
        ValueError: for a subclassed model (it can't be cloned; its
            wrappers stay).

    Example:

    >>> import keras, keras_progprune as kp
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> plain = kp.strip_pruning(kp.prune_low_magnitude(model))
    >>> type(plain.layers[0]).__name__
    'Dense'
    """
    if isinstance(model, PruningWrapper):
        model.check_not_quantized()
        layer = _fresh(model.layer)  # built like the wrapped layer
        if model.built:
            layer.set_weights(_stripped_weights(model))
        return layer
    if not isinstance(model, keras.Model) or not walk.is_graph_model(model):
        raise ValueError(
            "`strip_pruning` takes a Sequential or Functional model or a "
            f"PruningWrapper. Received: model={model!r}. For a subclassed "
            "model, build the same architecture without wrappers and copy "
            "the weights."
        )

    def clone_layer(layer):
        if isinstance(layer, keras.Model):
            return strip_pruning(layer)
        if isinstance(layer, PruningWrapper):
            layer.check_not_quantized()
            return _fresh(layer.layer)
        return _fresh(layer)

    clone, pairs = _clone(model, clone_layer)
    for old, new in pairs.values():
        if isinstance(old, keras.Model):
            continue
        if isinstance(old, PruningWrapper):
            new.set_weights(_stripped_weights(old))
        else:
            new.set_weights(old.get_weights())
    return clone


def prunable_layers(model):
    """`(layer name, prunable weights)` for each prunable layer in `model`.

    A `PruningWrapper` gives its wrapped layer's name and pruned weights; a
    plain (or stripped) prunable layer its registry weights. Each layer is
    listed once, and layers inside a listed one (a wrapped Dense, MHA's
    projections) are not listed again.
    """
    candidates = [model] if not isinstance(model, keras.Model) else walk.sublayers(model)
    seen = set()
    for layer in candidates:
        if id(layer) in seen or isinstance(layer, keras.Model):
            continue
        seen.add(id(layer))
        if isinstance(layer, PruningWrapper) and layer.built:
            name, weights = layer.layer.name, layer.pruned_weights
        elif registry.is_prunable(layer) and layer.built:
            name, weights = layer.name, registry.get_prunable_weights(layer)
        else:
            continue
        seen.update(id(sub) for sub in walk.sublayers(layer))
        yield name, weights


class SparsityReport(dict):
    """A dict of per-layer and total counts that prints as a table.

    Keys: `"layers"` (name -> `{"weights", "zeros", "sparsity"}`, plus
    `"channels": {"kept", "total"}` for a Dense/conv layer of a
    Sequential or Functional model: the output channels `shrink` would
    keep, and `"left_whole"`: why channel pruning can't remove any of
    them, when it can't), `"total"` (the first three over all prunable weights) and
    `"macs"` (`{"dense", "shrunk"}`: multiply-accumulates per example as
    built and after `shrink`; None for a subclassed model).
    """

    def __str__(self):
        rows = [(name, r["weights"], r["zeros"], r["sparsity"], r.get("channels"))
                for name, r in self["layers"].items()]
        t = self["total"]
        rows.append(("TOTAL", t["weights"], t["zeros"], t["sparsity"], None))
        width = max([len("layer")] + [len(r[0]) for r in rows])
        lines = [f"{'layer':<{width}}  {'weights':>10}  {'zeros':>10}  {'sparsity':>8}"
                 f"  {'channels':>11}"]
        lines.append("-" * len(lines[0]))
        for i, (name, n, z, s, ch) in enumerate(rows):
            if i == len(rows) - 1:
                lines.append("-" * len(lines[0]))
            kept = f"{ch['kept']}/{ch['total']}" if ch else ""
            lines.append(f"{name:<{width}}  {n:>10,}  {z:>10,}  {s:>8.2%}  {kept:>11}")
        whole = [(name, r["channels"]["left_whole"]) for name, r in self["layers"].items()
                 if "left_whole" in r.get("channels", {})]
        if whole:
            lines.append("Channels that structure='channel' leaves whole: " + "; ".join(
                f"{name} ({reason})" for name, reason in whole))
        macs = self.get("macs")
        if macs:
            lines.append(f"MACs per example: {macs['dense']:,} as built, "
                         f"{macs['shrunk']:,} after shrink "
                         f"({macs['shrunk'] / max(macs['dense'], 1):.1%})")
        return "\n".join(lines)


def _channel_summary(model):
    """`({layer name: {"kept", "total"}}, {"dense", "shrunk"} MACs)` from
    the shrink plan, or `({}, None)` for a model without a readable graph."""
    from keras_progprune.channels import macs as macs_lib  # noqa: PLC0415
    from keras_progprune.channels import shrink as shrink_lib  # noqa: PLC0415

    if not isinstance(model, keras.Model) or not walk.is_graph_model(model):
        return {}, None
    graph, _, keep = shrink_lib.removable_channels(model)
    reasons = graph.frozen_reasons()
    channels = {}
    for space in graph.spaces:
        kept = len(keep[space.index]) if space.index in keep else space.size
        for layer in space.producers:
            channels[layer.name] = {"kept": int(kept), "total": space.size}
            if not space.prunable:  # why channel pruning leaves these whole
                channels[layer.name]["left_whole"] = reasons[space.origin]
    return channels, {"dense": macs_lib.count(graph), "shrunk": macs_lib.count(graph, keep)}


def sparsity_report(model):
    """Counts weights and zeros of every prunable weight in `model`.

    Works on pruned models (the weights of each `PruningWrapper`) and on
    plain or stripped ones (the weights the registry calls prunable), so a
    model can be checked after `strip_pruning` or after reloading a
    SavedModel-exported copy. For Sequential and Functional models it also
    gives each Dense/conv layer's output channels that `shrink` would keep,
    and the MACs per example before and after `shrink`.

    A pruned model's sparsity counts the weights its wrappers mask: with
    `structure="channel"` these include biases and BatchNormalization
    gamma and beta.

    Args:
        model: a `keras.Model` or a layer.

    Returns:
        A `SparsityReport` (a dict; `print` shows a table).

    Example:

    >>> import keras, keras_progprune as kp
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> kp.sparsity_report(model)["total"]["weights"]
    8
    """
    layers = {}
    channels, macs = _channel_summary(model)
    for name, weights in prunable_layers(model):
        n = int(sum(np.prod(w.shape) for w in weights))
        z = int(sum(np.sum(np.asarray(w.numpy()) == 0) for w in weights))
        layers[name] = {"weights": n, "zeros": z, "sparsity": z / n if n else 0.0}
        if name in channels:
            layers[name]["channels"] = channels[name]
    total_n = sum(r["weights"] for r in layers.values())
    total_z = sum(r["zeros"] for r in layers.values())
    return SparsityReport(
        layers=layers,
        macs=macs,
        total={
            "weights": total_n,
            "zeros": total_z,
            "sparsity": total_z / total_n if total_n else 0.0,
        },
    )
