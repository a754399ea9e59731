"""KerasHub tasks and backbones kept as their own classes.

A KerasHub task (`Llama3CausalLM`, `BertTextClassifier`) is a Functional
model whose class adds what a user came for: `generate()`, the
preprocessor, presets. A backbone's class holds its config (`hidden_dim`,
`num_layers`) and the attributes its task reads (`token_embedding`,
`transformer_layers`). Cloning layer by layer (`surgery.clone`) gives a
plain `Functional` without any of that, and it copies each block through
the block's own `get_config`, where KerasHub has bugs (keras-hub 0.32.0:
`LlamaTransformerDecoder.get_config` reads an attribute that it never
sets; Qwen 3's decoder leaves `head_dim` out).

So a KerasHub model is copied the way KerasHub itself loads one: the
backbone made again from the backbone's config (which makes its blocks
from the backbone's own arguments), the task made around it with the same
preprocessor, and the weights copied layer by layer, paired by name. A
layer to prune is then swapped for its wrapper in place
(`walk.replace_everywhere`), so a layer called twice (the tied token
embedding, forwards for the inputs and reversed for the logits) stays one
layer with one mask. Checked against keras-hub 0.32.0.
"""

import keras
import numpy as np

from keras_progprune import registry
from keras_progprune import walk
from keras_progprune.wrapper import PruningWrapper
from keras_progprune.wrapper import collect_wrappers


def is_hub_model(model):
    """Whether `model` is a KerasHub task or backbone (a class from the
    `keras_hub` package with a graph)."""
    return (isinstance(model, keras.Model) and walk.is_graph_model(model)
            and any(c.__module__.split(".")[0] == "keras_hub" for c in type(model).__mro__)
            and (is_task(model) or hasattr(model, "token_embedding")
                 or _is_backbone(model)))


def is_task(model):
    """Whether `model` is a KerasHub task (it holds a `backbone`)."""
    return isinstance(getattr(model, "backbone", None), keras.Model)


def _is_backbone(model):
    return any(c.__name__ == "Backbone" and c.__module__.startswith("keras_hub.")
               for c in type(model).__mro__)


def backbone_of(model):
    """The backbone of a KerasHub task, or `model` itself."""
    return model.backbone if is_task(model) else model


def graphs(model):
    """The graph models of a KerasHub model, outermost first: the task
    (when `model` is one) and its backbone."""
    return [model, model.backbone] if is_task(model) else [model]


def remade(model, backbone_config=None, classes=None):
    """A new model of `model`'s class made from its config, with fresh
    weights: its backbone from the backbone's config updated with
    `backbone_config`, and a task around it with `model`'s preprocessor.

    Args:
        model: a KerasHub task or backbone (wrapped layers in it are read
            as their inner layers: the config is KerasHub's).
        backbone_config: optional dict of backbone config values to change.
        classes: optional `(backbone class, task class)` to make instead
            of the model's own (subclasses that take more config keys).
    """
    backbone = backbone_of(model)
    backbone_class, task_class = classes or (type(backbone), type(model))
    config = {**type(backbone).get_config(backbone), **(backbone_config or {})}
    new_backbone = backbone_class.from_config(config)
    if not is_task(model):
        return new_backbone
    task_config = {k: v for k, v in type(model).get_config(model).items()
                   if k not in ("backbone", "preprocessor")}
    return task_class.from_config({**task_config, "backbone": new_backbone,
                                   "preprocessor": model.preprocessor})


def pairs(model, new, renames=None):
    """`[(layer of model, layer of new)]`: the layers of each graph of
    `model` (a wrapper counted as its inner layer's name) paired by name
    with those of the same graph of `new`, each once (the token embedding
    is called in both graphs of a task), nested backbones skipped (their
    own layers are paired).

    Args:
        renames: optional `{name in model: name in new, or None to leave
            the layer out}` (the blocks `prune_depth` keeps or removes).
    """
    renames = renames or {}
    found, seen = [], set()
    for graph, new_graph in zip(graphs(model), graphs(new)):
        by_name = {layer.name: layer for layer in new_graph.layers}
        for layer in graph.layers:
            if (is_hub_model(layer) or isinstance(layer, keras.layers.InputLayer)
                    or id(layer) in seen):
                continue
            seen.add(id(layer))
            name = layer.layer.name if isinstance(layer, PruningWrapper) else layer.name
            name = renames.get(name, name)
            if name is None:
                continue
            if name not in by_name:
                raise ValueError(
                    f"Layer {name!r} of {type(model).__name__} {model.name!r} has no "
                    f"layer of that name in a {type(new).__name__} made from its "
                    "config, so its weights can't be copied. The model was changed "
                    "after it was built; prune a model made by its constructor or "
                    "`from_preset`.")
            found.append((layer, by_name[name]))
    return found


def plain_weights(layer, weights_of):
    """The weights of `layer` in the order that the same layer without
    wrappers holds them (`Layer.weights`: its own variables, then each
    sublayer's): each wrapper inside it (or `layer` itself, if one) gives
    its layer's weights as `weights_of(wrapper)` (masks baked in), without
    its masks and step."""
    return [value for _, value in _plain(layer, weights_of)]


def _plain(layer, weights_of):
    """`[(variable, value)]` of `plain_weights`, each variable once."""
    if isinstance(layer, PruningWrapper):
        return list(zip(layer.layer.weights, weights_of(layer)))
    if not collect_wrappers(layer):
        return [(v, v.numpy()) for v in layer.weights]
    kids = walk.children(layer)
    inner = {id(v) for kid in kids for v in kid.weights}
    found = [(v, v.numpy()) for v in layer.weights if id(v) not in inner]
    seen = {id(v) for v, _ in found}
    for kid in kids:
        for v, value in _plain(kid, weights_of):
            if id(v) not in seen:
                seen.add(id(v))
                found.append((v, value))
    return found


def copied(model, weights_of=None, backbone_config=None, renames=None, values_of=None,
           classes=None):
    """`(new, pairs)`: `remade(model, backbone_config)` with each layer's
    weights copied from its pair in `model` (`plain_weights`: a wrapped
    layer's through `weights_of(wrapper)`), cast to each variable's dtype.
    `renames(new)` gives `pairs`'s renames; `values_of(old, new layer)`,
    when given and not None, gives a layer's new weights instead
    (`shrink`'s slices);
    `classes` as for `remade`.

    Raises:
        ValueError: if a variable of the new model was not set (a layer
            that the pairing by name could not reach), rather than leave
            it at its random initial value.
    """
    new = remade(model, backbone_config, classes)
    found = pairs(model, new, renames(new) if renames else None)
    set_ids = set()
    for old, layer in found:
        values = values_of(old, layer) if values_of is not None else None
        if values is None:
            values = plain_weights(old, weights_of)
        if len(values) != len(layer.weights):
            raise ValueError(
                f"Layer {layer.name!r} holds {len(layer.weights)} weights, but its "
                f"original holds {len(values)}.")
        for variable, value in zip(layer.weights, values):
            variable.assign(np.asarray(value, variable.dtype))
            set_ids.add(id(variable))
    unset = [v.path for v in new.weights if id(v) not in set_ids]
    if unset:
        raise ValueError(
            f"Copying {type(model).__name__} {model.name!r} left weights that no "
            f"layer of its graphs holds: {unset[:5]}. Only layers that its task or "
            "backbone graph calls are copied; a layer the model holds outside its "
            "graph would be lost.")
    return new, found


def _inner(layer):
    return layer.layer if isinstance(layer, PruningWrapper) else layer


def shrunk(model, changes, weights_of=None):
    """`model` (a KerasHub task or backbone without wrappers) made again
    smaller, or None when its class can't say the new shape. A family
    whose config derives the head size (Llama, Qwen 2.5, Phi-3) becomes
    its `hub_layers` subclass with `head_dim` when its heads change.

    Args:
        changes: `{id(layer): (config overrides, new weights, a function
            that makes them, or None)}` from `shrink` or `prune_width`: the
            overrides of each block (its
            `intermediate_dim`, ...) become the backbone's, which holds one
            value for every block.

        weights_of: for a model with wrappers, what `copied` reads of each
            wrapper whose layer has no new weights in `changes`.

    Raises:
        ValueError: if the blocks were given different widths (the
            backbone's config can't say that).
    """
    backbone = backbone_of(model)
    config = backbone.get_config()
    merged = {}
    for layer in graphs(model)[-1].layers:
        for key, value in changes.get(id(_inner(layer)), ({}, None))[0].items():
            merged.setdefault(key, {})[layer.name] = (value, getattr(_inner(layer), key, None))
    # A size that no block changes says nothing (BERT's pooler keeps its
    # units); one that some block changes must be said for all of them.
    merged = {key: {name: value for name, (value, _) in values.items()}
              for key, values in merged.items()
              if any(value != now for value, now in values.values())}
    classes = None
    if any(key not in config for key in merged):
        classes = head_sized_classes(model) if set(merged) - set(config) == {"head_dim"} else None
        if classes is None:
            return None  # a key of the block alone (a head size): not this class
    for key, values in merged.items():
        if len(set(values.values())) > 1:
            raise ValueError(
                f"{type(backbone).__name__} holds one `{key}` for all its blocks, but "
                f"the pruned blocks keep different ones ({values}). Prune with "
                "scope='layer' (each block keeps the same fraction) or with "
                "`kp.prune_width`, which removes the same fraction in every block.")
    new, _ = copied(model, backbone_config={k: next(iter(v.values()))
                                            for k, v in merged.items()},
                    values_of=lambda old, _: _values(changes.get(id(_inner(old)))),
                    classes=classes, weights_of=weights_of)
    return new


def _values(change):
    """A change's new weights: None, a list, or a function that makes them
    (called once, when its layer is filled, so they are never all held)."""
    values = change[1] if change else None
    return values() if callable(values) else values


def shrunk_wrapped(model, changes):
    """A wrapped KerasHub `model` (channel pruning) made again smaller, its
    wrappers made again around the new layers with the same settings, for
    `fit_shrinking`; the weights are the unmasked ones (new or copied), the
    masks and steps are the caller's to carry.

    Returns:
        `(new model, {id(old wrapper): (old wrapper, new wrapper)})`, or
        None when the class can't say the new shape.

    Raises:
        ValueError: for a wrapper inside another layer (not one that the
            task's or backbone's graph calls), which can't be paired.
    """
    new = shrunk(model, changes, weights_of=lambda w: [v.numpy() for v in w.layer.weights])
    if new is None:
        return None
    found = {id(old): (old, layer) for old, layer in pairs(model, new)
             if isinstance(old, PruningWrapper)}
    missing = [w.name for w in collect_wrappers(model) if id(w) not in found]
    if missing:
        raise ValueError(
            f"Wrappers {missing} of {type(model).__name__} {model.name!r} are inside other "
            "layers, so the smaller model can't be wrapped the same way. Prune the "
            "KerasHub blocks themselves (structure='channel' does).")
    out = {}
    for key, (old, layer) in found.items():
        wrapper = PruningWrapper(layer, old.pruning_schedule, scope=old.scope,
                                 structure=old.structure, name=old.name,
                                 initial_channels=old.initial_channels)
        wrapper.build(None)
        walk.replace_everywhere(new, layer, wrapper)
        out[key] = (old, wrapper)
    return new, out


def head_sized_classes(model):
    """`(backbone class, task class)` of `model`'s family that say
    `head_dim` (`hub_layers`), or None where there are none."""
    from keras_progprune import hub_layers  # noqa: PLC0415 (imports KerasHub)

    backbone = backbone_of(model)
    found = hub_layers.head_sized(type(backbone), type(model) if is_task(model) else None)
    if found is None:
        return None
    return found if is_task(model) else (found[0], found[0])


def wrapped(model, wrap, chosen):
    """A copy of the KerasHub `model`, of its class, with each layer for
    which `chosen(layer)` holds (asked of `model`'s layers) replaced by
    `wrap(copied layer)` in place: in its graphs and the backbone's
    attributes. `model` holds no wrapper (`prune_low_magnitude` checks)."""
    new, found = copied(model)
    for layer in _apart([layer for old, layer in found if chosen(old)]):
        wrapper = wrap(layer)
        wrapper.build(None)
        walk.replace_everywhere(new, layer, wrapper)
    return new


def stripped(model, weights_of):
    """A copy of the KerasHub `model`, of its class, without wrappers:
    a wrapped layer's weights are `weights_of(wrapper)` (masks baked in)."""
    return copied(model, weights_of)[0]


def _apart(layers):
    """`layers` to wrap, none inside another: a layer that holds another of
    them is replaced by its prunable sublayers, recursively. OPT's
    `TokenAndPositionEmbedding` holds the token embedding that its task
    also calls, reversed, for the logits: wrapping both would put two
    masks on one table, and wrapping the holder alone would leave the
    logits reading the table unmasked."""
    ids = {id(layer) for layer in layers}
    out = []

    def add(layer):
        if not any(id(sub) in ids for sub in walk.sublayers(layer)):
            out.append(layer)
            return
        for child in walk.children(layer):
            if id(child) not in ids and registry.is_prunable(child):
                add(child)

    for layer in layers:
        add(layer)
    return out
