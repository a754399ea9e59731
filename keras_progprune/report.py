"""`sparsity_report`: weights, zeros, channels and MACs of a model, as a table."""

import keras
import numpy as np

from keras_progprune import registry
from keras_progprune import walk
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.channels import graph as graph_lib
from keras_progprune.channels import macs as macs_lib
from keras_progprune.channels import shrink as shrink_lib
from keras_progprune.wrapper import PruningWrapper
from keras_progprune import rules


def prunable_layers(model):
    """`(layer name, prunable weights, wrapper or None)` for each prunable
    layer in `model`.

    A `PruningWrapper` gives its wrapped layer's name and pruned weights; a
    plain (or stripped, or excluded) prunable layer its registry weights.
    Each layer is listed once, and layers inside a listed one (a wrapped
    Dense, MHA's projections) are not listed again.
    """
    candidates = [model] if not isinstance(model, keras.Model) else walk.sublayers(model)
    seen = set()
    for layer in candidates:
        if id(layer) in seen or isinstance(layer, keras.Model):
            continue
        seen.add(id(layer))
        if isinstance(layer, PruningWrapper) and layer.built:
            name, weights, wrapper = layer.layer.name, layer.pruned_weights, layer
        elif registry.is_prunable(layer) and layer.built:
            name, weights, wrapper = layer.name, registry.get_prunable_weights(layer), None
        else:
            continue
        seen.update(id(sub) for sub in walk.sublayers(layer))
        yield name, weights, wrapper


class SparsityReport(dict):
    """A dict of per-layer and total counts that prints as a table.

    Keys:

    - `"layers"`: name -> `{"weights", "zeros", "sparsity", "pruned"}`
      (`"pruned"`: False for a prunable layer left unwrapped, for example
      excluded), plus `"structure"` for a wrapped layer and `"channels":
      {"kept", "total"}` for a Dense/conv layer of a Sequential or
      Functional model (the output channels `shrink` would keep, and
      `"left_whole"`: why channel pruning can't remove any of them, when it
      can't). A layer with feed-forward neurons or attention heads inside
      (a transformer block, an attention layer) has `"channels": {"kept",
      "total", "width"}`, where `"width"` maps each group (`"block/ffn"`,
      `"block/heads"`) to its own `{"kept", "total"}`. A layer with weights
      that the grouping doesn't know (a custom layer without a width
      rule) has `"channels": {"left_whole": why}`.
    - `"pruned"`: `{"weights", "zeros", "sparsity"}` over the pruned
      layers' weights: the wrapped ones, or for a model without wrappers
      (stripped, plain) every prunable layer's. `"total"` is the same dict,
      under its older name.
    - `"model"`: the same counts over every weight of the model: biases,
      normalization, embeddings and excluded layers included (the masks and
      step counters of the wrappers are not weights).
    - `"macs"`: `{"dense", "shrunk"}`, multiply-accumulates per example as
      built and after `shrink`; None for a subclassed model.
    """

    def __str__(self):
        rows = [(name + ("" if r["pruned"] else " (not pruned)"), r["weights"], r["zeros"],
                 r["sparsity"], r.get("channels")) for name, r in self["layers"].items()]
        totals = [("TOTAL over pruned layers", self["pruned"]),
                  ("TOTAL over the whole model", self["model"])]
        width = max([len("layer")] + [len(r[0]) for r in rows] + [len(t[0]) for t in totals])
        lines = [f"{'layer':<{width}}  {'weights':>10}  {'zeros':>10}  {'sparsity':>8}"
                 f"  {'channels':>11}"]
        lines.append("-" * len(lines[0]))
        for name, n, z, s, ch in rows:
            kept = _width_text(ch["width"]) if ch and "width" in ch else (
                f"{ch['kept']}/{ch['total']}" if ch and "kept" in ch else "")
            lines.append(f"{name:<{width}}  {n:>10,}  {z:>10,}  {s:>8.2%}  {kept:>11}")
        lines.append("-" * len(lines[0]))
        for name, t in totals:
            lines.append(f"{name:<{width}}  {t['weights']:>10,}  {t['zeros']:>10,}  "
                         f"{t['sparsity']:>8.2%}")
        whole = [(name, r["channels"]["left_whole"]) for name, r in self["layers"].items()
                 if "left_whole" in r.get("channels", {})]
        whole += [(label, g["left_whole"]) for r in self["layers"].values()
                  for label, g in r.get("channels", {}).get("width", {}).items()
                  if "left_whole" in g]
        if whole:
            lines.append("Channels that structure='channel' leaves whole: " + "; ".join(
                f"{name} ({reason})" for name, reason in whole))
        macs = self.get("macs")
        if macs:
            lines.append(f"MACs per example: {macs['dense']:,} as built, "
                         f"{macs['shrunk']:,} after shrink "
                         f"({macs['shrunk'] / max(macs['dense'], 1):.1%})")
        return "\n".join(lines)

    def plot(self, path=None, kind="auto", title=None):
        """Draws the report as a bar chart (needs matplotlib).

        Args:
            path: where to write the picture (`.png`, `.pdf`, `.svg`); None
                writes nothing.
            kind: `"sparsity"` (the fraction of zeros per layer),
                `"channels"` (output channels kept per layer, out of the
                layer's total), or `"auto"`: `"channels"` when a layer is
                pruned with `structure="channel"`, else `"sparsity"`.
            title: the chart's title; None gives one from the totals.

        Returns:
            The `matplotlib.figure.Figure`.

        Raises:
            ImportError: without matplotlib (`pip install matplotlib`).
            ValueError: for an unknown `kind`, or `"channels"` when no
                layer has channel counts.
        """
        from keras_progprune import report_plot  # noqa: PLC0415 (matplotlib is optional)

        return report_plot.plot(self, path=path, kind=kind, title=title)


def _width_text(width):
    """`"ffn 16/32, heads 2/4"`: a layer's width groups, summed by kind."""
    sums = {}
    for label, g in width.items():
        kind = label.rsplit("/", 1)[-1]
        kept, total = sums.get(kind, (0, 0))
        sums[kind] = (kept + g["kept"], total + g["total"])
    return ", ".join(f"{k} {kept}/{total}" for k, (kept, total) in sums.items())


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
        if space.width is not None:  # "ffn" / "heads" inside a layer
            layer, group = space.width
            entry = channels.setdefault(layer.name, {"kept": 0, "total": 0, "width": {}})
            entry["width"][group.label] = {"kept": int(kept), "total": space.size}
            if not space.prunable:
                entry["width"][group.label]["left_whole"] = reasons[space.origin]
            entry["kept"] += int(kept)
            entry["total"] += space.size
            continue
        for layer in space.producers:
            channels[layer.name] = {"kept": int(kept), "total": space.size}
            if not space.prunable:  # why channel pruning leaves these whole
                channels[layer.name]["left_whole"] = reasons[space.origin]
    # Layers with weights that the grouping doesn't know: left whole, and why.
    for node in graph.nodes:
        layer = graph_lib.layer_of(node.operation)
        kind = graph.kinds.get(id(node))
        if (kind is not None and kind.name == rules.UNKNOWN and walk.is_layer(layer)
                and layer.weights and layer.name not in channels):
            channels[layer.name] = {"left_whole": kind.zero_reason}
    return channels, {"dense": macs_lib.count(graph), "shrunk": macs_lib.count(graph, keep)}


def sparsity_report(model):
    """Counts weights and zeros of every prunable weight in `model`.

    Works on pruned models (the weights of each `PruningWrapper`) and on
    plain or stripped ones (the weights the registry calls prunable), so a
    model can be checked after `strip_pruning` or after reloading a
    SavedModel-exported copy. For Sequential and Functional models it also
    gives each Dense/conv layer's output channels that `shrink` would keep,
    and the MACs per example before and after `shrink`.

    Two totals, each labelled: over the pruned layers (`"pruned"`, the
    sparsity the schedule aims at) and over the whole model (`"model"`,
    every weight, what a saved file holds). A pruned model's layer sparsity
    counts the weights its wrappers mask: with `structure="channel"` these
    include biases and BatchNormalization gamma and beta.

    Args:
        model: a `keras.Model` or a layer.

    Returns:
        A `SparsityReport` (a dict; `print` shows a table).

    Examples:
        >>> import keras, keras_progprune as kp
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> report = kp.sparsity_report(model)
        >>> report["pruned"]["weights"], report["model"]["weights"]  # kernel; kernel + bias
        (8, 10)
    """
    wrapper_lib.settle(model)  # stored values of pruned weights: 0.0
    layers = {}
    channels, macs = _channel_summary(model)
    listed = list(prunable_layers(model))
    any_wrapped = any(wrapper is not None for _, _, wrapper in listed)
    for name, weights, wrapper in listed:
        layers[name] = dict(_counts(weights), pruned=wrapper is not None or not any_wrapped)
        if wrapper is not None:
            layers[name]["structure"] = wrapper.structure.spec
        if name in channels:
            layers[name]["channels"] = channels[name]
    pruned = _total([r for r in layers.values() if r["pruned"]])
    return SparsityReport(layers=layers, macs=macs, pruned=pruned, total=pruned,
                          model=_counts(_model_weights(model)))




def _summary(n, z):
    return {"weights": n, "zeros": z, "sparsity": z / n if n else 0.0}


def _counts(weights):
    n = int(sum(np.prod(w.shape) for w in weights))
    z = int(sum(np.sum(np.asarray(keras.ops.convert_to_numpy(w)) == 0) for w in weights))
    return _summary(n, z)


def _total(rows):
    return _summary(sum(r["weights"] for r in rows), sum(r["zeros"] for r in rows))


def _model_weights(model):
    """Every float weight of `model` once, without the wrappers' masks and
    step counters (bookkeeping, not weights)."""
    bookkeeping = set()
    for wrapper in wrapper_lib.collect_wrappers(model):
        if wrapper.built:
            bookkeeping.update(id(v) for v in wrapper.masks)
            bookkeeping.add(id(wrapper.pruning_step))
    found, seen = [], set()
    for w in model.weights:
        if id(w) in seen or id(w) in bookkeeping or "float" not in str(w.dtype):
            continue
        seen.add(id(w))
        found.append(w)
    return found
