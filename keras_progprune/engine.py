"""Mask updates on wrapper variables: scores -> exact top-k -> assign.

The glue between the pure selection in `thresholds`/`structures` and the
variables of `PruningWrapper`. Every pruning method ends here, so a fix in
this file is a fix for all of them.

The update is a pure function, compiled once per group by the backend
(`backend.compile`): weights, masks and scores in; new masks, the kept
count and a finiteness flag out. The variables are assigned outside it,
which is what JAX needs and costs nothing elsewhere.
"""

import numpy as np
from keras import ops

from keras_progprune import backend
from keras_progprune import thresholds
from keras_progprune import walk
from keras_progprune.wrapper import PruningWrapper


def collect_wrappers(model):
    """All `PruningWrapper`s in `model` (itself included), each once.

    Nested models are searched; a wrapper shared between two call sites
    appears once.
    """
    if isinstance(model, PruningWrapper):
        return [model]
    return [layer for layer in walk.sublayers(model) if isinstance(layer, PruningWrapper)]


def settle(model):
    """Sets the stored value of every pruned weight in `model` to 0.0 (see
    `PruningWrapper.settle`), after bringing JAX's training state into the
    variables. Changes no output."""
    backend.sync_model_state(model)
    for wrapper in collect_wrappers(model):
        if wrapper.built:
            wrapper.settle()


def magnitude_scores(weights):
    """The default score: |w| as float32 (float32 also under mixed precision)."""
    return [ops.abs(ops.cast(w, "float32")) for w in weights]


def _values(variables):
    return [v.value for v in variables]


class PruningGroup:
    """Weights that share one selection: one wrapper, or all global-scope ones.

    The wrappers' `structure` (all the same) decides the mask's shape; the
    engine only asks it for masks.

    Args:
        wrappers: list of built `PruningWrapper`s.
        schedule: the `PruningSchedule` that drives this group.
        name: label for errors and logs.
    """

    def __init__(self, wrappers, schedule, name):
        self.wrappers = list(wrappers)
        self.schedule = schedule
        self.structure = self.wrappers[0].structure
        self.name = name
        self.weights = [w for wr in self.wrappers for w in wr.pruned_weights]
        self.masks = [m for wr in self.wrappers for m in wr.masks]
        self.size = int(sum(np.prod(w.shape) for w in self.weights))
        self.kept = int(sum(np.sum(m.numpy() != 0) for m in self.masks))
        self._compiled = backend.compile(self._select, static=("intersect",))

    def _select(self, weights, masks, scores, count, intersect):
        """The pure update: `(new masks, kept, finite, weights or None)`.

        Without `intersect` a weight pruned before may come back; its stored
        value (which the forward pass ignored while it was pruned) is then
        reset to 0, so it returns as a weight pruned to zero would.
        """
        active = [ops.not_equal(m, 0) for m in masks]
        magnitude = scores is None
        if magnitude:
            # The weights as the layer sees them: a pruned weight scores 0.
            scores = magnitude_scores(weights if intersect else [
                ops.where(a, w, ops.zeros_like(w)) for w, a in zip(weights, active)])
        # Every weight, pruned ones too: a non-finite stored value would
        # reach the output through `weight * mask` (NaN * 0 is NaN).
        finite = thresholds.all_finite(weights if magnitude else scores)
        chosen = self.structure.select_count(scores, count, active if intersect else None,
                                             nonnegative=magnitude)
        if intersect:
            chosen = [ops.logical_and(c, a) for c, a in zip(chosen, active)]
        new_masks = [ops.cast(c, m.dtype) for c, m in zip(chosen, masks)]
        kept = ops.sum(ops.stack([ops.sum(ops.cast(c, "int32")) for c in chosen]))
        revived = None if intersect else [
            ops.where(ops.logical_and(c, ops.logical_not(a)), ops.zeros_like(w), w)
            for c, a, w in zip(chosen, active, weights)]
        return new_masks, kept, finite, revived

    def update(self, sparsity, scores=None, intersect=True):
        """Recomputes the masks at `sparsity`.

        Args:
            sparsity: float in [0, 1).
            scores: list of tensors shaped like `self.weights`; the highest
                are kept. Defaults to |w|.
            intersect: if true, a weight pruned before stays pruned (the
                new mask is intersected with the old). Structures whose
                groups always keep a fixed count (N:M) never intersect.
                Defaults to True.

        Returns:
            The number of weights kept.

        Raises:
            ValueError: if a score or weight is NaN or Inf. Masks and weights
                are then left exactly as they were.
        """
        intersect = bool(intersect) and self.structure.intersects
        if scores is not None:
            scores = [ops.cast(ops.convert_to_tensor(s), "float32") for s in scores]
        count = self.structure.count(self.size, float(sparsity))
        new_masks, kept, finite, revived = self._compiled(
            _values(self.weights), _values(self.masks), scores,
            ops.convert_to_tensor(0 if count is None else count, "int32"),
            intersect=intersect)
        if not bool(ops.convert_to_numpy(finite)):
            bad = sorted(
                {
                    wr.layer.name
                    for wr in self.wrappers
                    for w in wr.pruned_weights
                    if not np.all(np.isfinite(np.asarray(w.numpy(), np.float32)))
                }
            )
            raise ValueError(
                f"Can't compute pruning masks for {self.name}: the scores "
                "contain NaN or Inf"
                + (f" (non-finite weights in layers {bad})" if bad else "")
                + ". Masks were left unchanged. Lower the learning rate or "
                "add gradient clipping so the weights stay finite."
            )
        for m, value in zip(self.masks, new_masks):
            m.assign(value)
        for w, value in zip(self.weights, revived or ()):
            w.assign(value)
        self.kept = int(ops.convert_to_numpy(kept))
        return self.kept


def _require_one(wrappers, attribute, label, fix):
    """Raises unless every wrapper has the same `attribute` (by repr)."""
    values = {repr(getattr(w, attribute)): w.layer.name for w in wrappers}
    if len(values) > 1:
        raise ValueError(
            f"Global-scope wrappers must share one {label}, found {len(values)}: "
            + "; ".join(f"{v} (layer {n!r})" for v, n in values.items()) + f". {fix}")


def _channel_groups(wrappers, model):
    """One `ChannelGroup` over every channel-structured wrapper of `model`."""
    from keras_progprune.channels import engine as channel_engine  # noqa: PLC0415
    from keras_progprune.channels import graph as channel_graph  # noqa: PLC0415

    if model is None:
        raise ValueError(
            "Channel-structured wrappers are grouped from the model's graph: pass the "
            "model, `build_groups(wrappers, model)`.")
    if not walk.is_graph_model(model):
        name = getattr(model, "name", None)
        raise ValueError(
            "structure='channel' reads the coupled channels from the model's graph, "
            f"so it needs a Sequential or Functional model; model {name!r} of type "
            f"{type(model).__name__} is subclassed. Build the model with the Functional "
            "API (keras.Input(...) -> layers -> keras.Model), or use "
            "structure='unstructured' or '2:4', which work in any model.")
    _require_one(wrappers, "pruning_schedule", "pruning schedule",
                 "Pass one `pruning_schedule` to `prune_low_magnitude(..., "
                 "structure='channel')`.")
    _require_one(wrappers, "scope", "scope", "Pass one `scope` to "
                 "`prune_low_magnitude(..., structure='channel')`.")
    return [channel_engine.ChannelGroup(channel_graph.analyze(model), wrappers,
                                        wrappers[0].pruning_schedule, wrappers[0].scope)]


def build_groups(wrappers, model=None):
    """Groups wrappers by scope: one group per layer-scope wrapper, one for
    all global-scope wrappers, and one for all channel-structured wrappers
    (their groups come from `model`'s graph).

    Raises:
        ValueError: if global-scope wrappers don't share one schedule and
            one structure, or channel-structured wrappers are not in a
            Sequential or Functional `model`.
    """
    channel = [w for w in wrappers if w.structure.needs_graph]
    wrappers = [w for w in wrappers if not w.structure.needs_graph]
    groups = _channel_groups(channel, model) if channel else []
    groups += [
        PruningGroup([w], w.pruning_schedule, f"layer {w.layer.name!r}")
        for w in wrappers
        if w.scope == "layer"
    ]
    global_wrappers = [w for w in wrappers if w.scope == "global"]
    if global_wrappers:
        _require_one(global_wrappers, "pruning_schedule", "pruning schedule",
                     "Pass one `pruning_schedule` to `prune_low_magnitude(..., "
                     "scope='global')`.")
        _require_one(global_wrappers, "structure", "structure",
                     "Pass one `structure` to `prune_low_magnitude(..., "
                     "scope='global')`, or use scope='layer'.")
        groups.append(
            PruningGroup(
                global_wrappers, global_wrappers[0].pruning_schedule, "global scope"
            )
        )
    return groups
