"""Hidden (embedding) channels of a KerasHub decoder: `prune_width(hidden=)`.

The hidden width is the residual stream: the token embedding's columns,
every block's input and output projections, every normalization scale and
the output head (the same table when tied). A channel is removed from all
of them at once: the backbone is made again from its config with a
smaller `hidden_dim`, and each weight keeps its kept channels along every
axis whose size changed. Any other size that changed (a head size derived
from `hidden_dim` that no subclass can fix) is refused.

It is not exact: each RMSNorm or LayerNorm averages over the channels
that remain, and Gemma scales its embeddings by `sqrt(hidden_dim)`.
Minitron ranks the channels by the activations of the normalization
layers over calibration data; so does this module, summed over every
normalization layer of the backbone whose scale spans the hidden width.
"""

import numpy as np

import keras

from keras_progprune import hub_models
from keras_progprune import importance as importance_lib
from keras_progprune import walk


def check_model(model, fraction, importance):
    """Raises a ValueError unless `prune_width(hidden=fraction)` can run on
    `model` with `importance`."""
    backbone = hub_models.backbone_of(model) if hub_models.is_hub_model(model) else None
    if backbone is None or not hasattr(backbone, "token_embedding") or (
            "hidden_dim" not in backbone.get_config()):
        raise ValueError(
            f"`hidden={fraction}` removes channels of a residual stream, which "
            "prune_width rebuilds only in a KerasHub decoder (a backbone or task with a "
            "`token_embedding` and a `hidden_dim` in its config). Received: model "
            f"{model.name!r} of type {type(model).__name__}. Pass hidden=0, or pass "
            "the KerasHub model itself (`model.backbone` or the task).")
    if not (importance in ("activation", "magnitude") or callable(importance)):
        raise ValueError(
            "Hidden channels are ranked by importance='activation' (normalization "
            "outputs), 'magnitude' (token embedding columns) or a function. Received: "
            f"importance={importance!r} with hidden={fraction}. Pass one of those, or "
            "prune the hidden width in a call of its own.")
    size = int(backbone.get_config()["hidden_dim"])
    if int(round(size * (1 - fraction))) < 1:
        raise ValueError(
            f"`hidden={fraction}` would remove every one of the {size} hidden channels of "
            f"{backbone.name!r}. Use a fraction below {1 - 0.5 / size:.3g}.")


def norm_layers(backbone, size):
    """The normalization layers of `backbone` (by class name: LayerNorm,
    RMSNorm, ...) whose weights span `size` channels, each once."""
    found = []
    for layer in walk.sublayers(backbone):
        name = type(layer).__name__.lower()
        if "norm" in name and layer.weights and all(
                tuple(w.shape) == (size,) for w in layer.weights):
            found.append(layer)
    return found


def hidden_scores(model, importance, data, batches):
    """One score per hidden channel of the KerasHub `model` (higher is
    kept)."""
    backbone = hub_models.backbone_of(model)
    size = int(backbone.get_config()["hidden_dim"])
    table = np.asarray(keras.ops.convert_to_numpy(backbone.token_embedding.embeddings))
    magnitude = np.square(table.astype(np.float64)).mean(axis=0)
    if importance == "magnitude":
        return magnitude
    if callable(importance):
        return np.asarray(importance("hidden", "hidden", magnitude), np.float64)
    norms = norm_layers(backbone, size)
    if not norms:
        raise ValueError(
            f"importance='activation' ranks hidden channels by normalization outputs, but "
            f"{type(backbone).__name__} has no normalization layer of {size} channels. "
            "Use importance='magnitude'.")
    probes = [importance_lib.Probe(f"{i}:{layer.name}", layer, "output", -1, size)
              for i, layer in enumerate(norms)]
    means = importance_lib.mean_activations(model, probes, data, batches)
    return np.sum([means[p.label] for p in probes], axis=0)


def prune_hidden(model, fraction, importance, data, batches):
    """`model` (a KerasHub task or backbone without wrappers) made again
    with `fraction` of its hidden channels removed, the lowest scored
    (`hidden_scores`)."""
    backbone = hub_models.backbone_of(model)
    config = backbone.get_config()
    size = int(config["hidden_dim"])
    kept = int(round(size * (1 - fraction)))
    scores = hidden_scores(model, importance, data, batches)
    keep = np.sort(np.argsort(-scores, kind="stable")[:kept])
    changed = {"hidden_dim": kept}
    classes = None
    if config.get("head_dim") is None and "num_query_heads" in config:
        # The head size stays; a family that derives it needs to be told.
        changed["head_dim"] = size // int(config["num_query_heads"])
        if "head_dim" not in config:
            classes = hub_models.head_sized_classes(model)

    def values_of(old, new):
        values = hub_models.plain_weights(old, None)
        out = []
        for value, variable in zip(values, new.weights):
            value = np.asarray(value)
            shape = value.shape
            for axis, (was, now) in enumerate(zip(shape, variable.shape)):
                if was == now:
                    continue
                if (was, now) != (size, kept):
                    raise ValueError(
                        f"{type(backbone).__name__} can't keep its other sizes with a "
                        f"smaller `hidden_dim`: {variable.path} would go from {shape} "
                        f"to {tuple(variable.shape)}. `hidden` works on the KerasHub "
                        "decoders whose config says their head size (see the README's "
                        "LLMs section); pass hidden=0 for this one.")
                value = np.take(value, keep, axis=axis)
            out.append(value)
        return out

    if classes is None and "head_dim" in changed and "head_dim" not in config:
        changed.pop("head_dim")  # no subclass: the shapes decide (and refuse)
    new, _ = hub_models.copied(model, backbone_config=changed, values_of=values_of,
                               classes=classes)
    return new
