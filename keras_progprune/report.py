"""`sparsity_report`: weights, zeros, channels and MACs of a model, as a table."""

import keras
import numpy as np

from keras_progprune import engine
from keras_progprune import registry
from keras_progprune import walk
from keras_progprune.channels import macs as macs_lib
from keras_progprune.channels import shrink as shrink_lib
from keras_progprune.wrapper import PruningWrapper


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
    engine.settle(model)  # stored values of pruned weights: 0.0
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
