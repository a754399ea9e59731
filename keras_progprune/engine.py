"""Mask updates on wrapper variables: scores -> exact top-k -> assign.

The glue between the pure selection in `thresholds`/`structures` and the
variables of `PruningWrapper`. Every pruning method ends here, so a fix in
this file is a fix for all of them.

Every updater follows one protocol, `MaskUpdater`; each structure class
has a maker of its updaters (`register_updaters`): `PruningGroup`s for
unstructured and N:M masks, `channels.engine.ChannelGroup` for channels
(registered by `channels/engine.py`). The callback, the
baselines and `fit_shrinking` only talk to the protocol.

The update is a pure function, compiled once per group by the backend
(`backend.compile`): weights, masks and scores in; new masks, the kept
count and a finiteness flag out. The variables are assigned outside it,
which is what JAX needs and costs nothing elsewhere.
"""

import numpy as np
from keras import ops

from keras_progprune import backend
from keras_progprune import importance as importance_lib
from keras_progprune import thresholds


def magnitude_scores(weights):
    """The default score: |w| as float32 (float32 also under mixed precision)."""
    return [ops.abs(ops.cast(w, "float32")) for w in weights]


def _values(variables):
    return [v.value for v in variables]


class MaskUpdater:
    """The protocol of a mask updater: the masks of some wrappers, updated
    together under one schedule.

    Attributes:
        name: a label for errors and logs.
        schedule: the `PruningSchedule` that says when and how much.
        weights: the variables custom `scores` are given for, in order.
        size: how many units the schedule's sparsity is a fraction of
            (weights, or channel groups).
        kept: how many of them the masks keep now.
        importance: the `keras_progprune.importance.Importance` that scores
            them when `update` is given no `scores`.

    `update(sparsity, scores=None, intersect=True)` recomputes the masks so
    that `sparsity` of `size` is removed and returns the new `kept`; with
    `intersect`, a unit removed before stays removed. Updaters also built
    by a structure of one's own need only this.
    """

    name = "masks"
    importance = None

    def update(self, sparsity, scores=None, intersect=True):
        raise NotImplementedError

    def wants_weight_scores(self):
        """Whether its importance gives scores per weight (not magnitude,
        which the compiled update computes itself)."""
        return not importance_lib.is_magnitude(self.importance)

    def importance_scores(self, model):
        """`self.importance.weight_scores(model, self.weights)`, or None for
        the magnitude computed inside the compiled update."""
        if importance_lib.is_magnitude(self.importance):
            return None
        return self.importance.weight_scores(model, self.weights)


class PruningGroup(MaskUpdater):
    """Weights that share one selection: one wrapper, or all global-scope ones.

    The wrappers' `structure` (all the same) decides the mask's shape; the
    engine only asks it for masks.

    Args:
        wrappers: list of built `PruningWrapper`s.
        schedule: the `PruningSchedule` that drives this group.
        name: label for errors and logs.
        importance: an `Importance` (default: magnitude), asked for scores
            by `update` when none are given; `model` is what it runs.
        model: the model the wrappers are in (for `importance`).
    """

    def __init__(self, wrappers, schedule, name, importance=None, model=None,
                 one_pool=False):
        self.wrappers = list(wrappers)
        self.schedule = schedule
        self.structure = self.wrappers[0].structure
        self.name = name
        self.importance = importance_lib.get(importance)
        self.model = model
        self.weights = [w for wr in self.wrappers for w in wr.pruned_weights]
        self.axes = [a for wr in self.wrappers for a in wr.input_axes]  # input channels
        self.masks = [m for wr in self.wrappers for m in wr.masks]
        self.size = int(sum(np.prod(w.shape) for w in self.weights))
        self.kept = int(sum(np.sum(m.numpy() != 0) for m in self.masks))
        # Which weights share one ranking. A layer's kernels are ranked each
        # on its own (tfmot's choice): in one pool, a small kernel whose
        # weights start smaller (SeparableConv's depthwise, a custom layer's
        # second Dense) is emptied first. Global scope ranks all together,
        # with a floor per kernel (`thresholds.floor_counts`).
        self.one_pool = bool(one_pool)
        indices = list(range(len(self.weights)))
        self.pools = [indices] if self.one_pool else [[i] for i in indices]
        self.sizes = [int(np.prod(w.shape)) for w in self.weights]
        self._compiled = backend.compile(self._select, static=("intersect",))
        # The lowest sparsity at which some kernel fell below its floor: at
        # that sparsity and above, the update protects the floors at once
        # instead of trying the plain ranking first (a whole selection, about
        # half of the update's time at 90% on ResNet-18). Protecting floors
        # the plain ranking would have kept anyway changes nothing.
        self._floors_bind_from = None

    def _select(self, weights, masks, scores, counts, floors, intersect):
        """The pure update: `(new masks, kept per weight, finite, weights or
        None)`.

        `counts` holds one kept count per pool (None when the structure
        fixes it, as N:M does); `floors`, for a global pool of several
        weights, how many entries each keeps at least. Without `intersect`
        a weight pruned before may come back; its stored value (which the
        forward pass ignored while it was pruned) is then reset to 0, so it
        returns as a weight pruned to zero would.
        """
        active = [ops.cast(m, "bool") for m in masks]
        magnitude = scores is None
        if magnitude:
            # The weights as the layer sees them: a pruned weight scores 0.
            scores = magnitude_scores(weights if intersect else [
                ops.where(a, w, ops.zeros_like(w)) for w, a in zip(weights, active)])
        # Every weight, pruned ones too: a non-finite stored value would
        # reach the output through `weight * mask` (NaN * 0 is NaN).
        finite = thresholds.all_finite(weights if magnitude else scores)
        bound = active if intersect else None
        if counts is None:
            chosen = self.structure.select_count(scores, None, bound, nonnegative=magnitude,
                                                 axes=self.axes)
        elif floors is not None:  # one global pool
            chosen = self.structure.select_with_floors(
                scores, counts[0], floors, bound, nonnegative=magnitude, axes=self.axes)
        else:
            chosen = [None] * len(scores)
            for j, pool in enumerate(self.pools):
                picked = self.structure.select_count(
                    [scores[i] for i in pool], counts[j],
                    None if bound is None else [bound[i] for i in pool],
                    nonnegative=magnitude, axes=[self.axes[i] for i in pool])
                for i, c in zip(pool, picked):
                    chosen[i] = c
        if intersect:
            chosen = [ops.logical_and(c, a) for c, a in zip(chosen, active)]
        new_masks = [ops.cast(c, m.dtype) for c, m in zip(chosen, masks)]
        kept_each = backend.count_true(chosen)
        revived = None if intersect else [
            ops.where(ops.logical_and(c, ops.logical_not(a)), ops.zeros_like(w), w)
            for c, a, w in zip(chosen, active, weights)]
        return new_masks, kept_each, finite, revived

    def update(self, sparsity, scores=None, intersect=True):
        """Recomputes the masks at `sparsity`.

        Args:
            sparsity: float in [0, 1).
            scores: list of tensors shaped like `self.weights`; the highest
                are kept. Defaults to the importance's scores (|w| for
                magnitude).
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
        if scores is None:
            scores = self.importance_scores(self.model)
        if scores is not None:
            scores = [ops.cast(ops.convert_to_tensor(s), "float32") for s in scores]
        counts = [self.structure.count(sum(self.sizes[i] for i in pool), float(sparsity))
                  for pool in self.pools]
        floors = None
        if counts[0] is None:
            counts = None
        elif self.one_pool and len(self.weights) > 1:
            floors = thresholds.floor_counts(self.sizes, counts[0])
        arguments = (_values(self.weights), _values(self.masks), scores,
                     None if counts is None else ops.convert_to_tensor(counts, "int32"))
        bind_from = self._floors_bind_from
        protect = floors is not None and bind_from is not None and sparsity >= bind_from
        if not protect:
            new_masks, kept, finite, revived = self._compiled(*arguments, None,
                                                              intersect=intersect)
            if floors is not None and np.any(ops.convert_to_numpy(kept) < np.asarray(floors)):
                # Some kernel fell below its floor (finding the floors costs
                # one more selection, so the plain ranking goes first until
                # this happens).
                self._floors_bind_from = float(sparsity)
                protect = True
        if protect:
            new_masks, kept, finite, revived = self._compiled(
                *arguments, ops.convert_to_tensor(floors, "int32"), intersect=intersect)
        kept = np.sum(ops.convert_to_numpy(kept))
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
        self.kept = int(kept)
        return self.kept


def _scores_by_updater(importance, model, updaters):
    """`{id(updater): scores}`: the weights of all `updaters` scored by
    `importance` in one call, checked to give one tensor per weight."""
    weights = [w for u in updaters for w in u.weights]
    flat = list(importance.weight_scores(model, weights))
    if len(flat) != len(weights):
        raise ValueError(
            f"{importance!r}.weight_scores must return one tensor per weight it is "
            f"given: {len(weights)} expected. Received {len(flat)}.")
    scores, start = {}, 0
    for u in updaters:
        scores[id(u)] = flat[start:start + len(u.weights)]
        start += len(u.weights)
    return scores


def update_together(due, model):
    """Updates every `(updater, sparsity)` of `due`, each to its sparsity.

    Per-weight importance scores (Taylor, a custom `weight_scores`) are read
    first, for all of them in one call per importance, from the model as it
    is before any mask changes: with one call per updater, each later
    updater would be scored on a model the earlier ones had already pruned,
    and the gradient pass would run once per layer.

    Returns:
        The kept count of each updater.
    """
    scores = {}
    asking = {}
    for updater, _ in due:
        if updater.wants_weight_scores():
            asking.setdefault(id(updater.importance), []).append(updater)
    for updaters in asking.values():
        scores.update(_scores_by_updater(updaters[0].importance, model, updaters))
    return [updater.update(sparsity, scores=scores.get(id(updater)))
            for updater, sparsity in due]


def update_at_init(groups, model, importance, target):
    """Pruning at initialization: the masks of `groups` ranked by
    `importance` at `target`, in one update, or through the importance's
    `round_sparsities` (SynFlow). All groups are scored in one call before
    any changes; with `importance.in_turn`, each group is scored after the
    ones before it were updated.

    Returns:
        The kept count of each group after the last round.
    """
    kept = []
    for sparsity in importance.round_sparsities(target):
        parts = [[g] for g in groups] if importance.in_turn else [list(groups)]
        kept = []
        for part in parts:
            scores = _scores_by_updater(importance, model, part)
            kept += [g.update(sparsity, scores=scores[id(g)]) for g in part]
    return kept


def require_one(wrappers, attribute, label, fix):
    """Raises unless every wrapper has the same `attribute` (by repr)."""
    values = {repr(getattr(w, attribute)): w.layer.name for w in wrappers}
    if len(values) > 1:
        raise ValueError(
            f"Global-scope wrappers must share one {label}, found {len(values)}: "
            + "; ".join(f"{v} (layer {n!r})" for v, n in values.items()) + f". {fix}")


def scope_groups(wrappers, model=None, importance=None):
    """`PruningGroup`s for wrappers whose structure selects per weight list:
    one per layer-scope wrapper, one for all global-scope ones.

    Raises:
        ValueError: if global-scope wrappers don't share one schedule and
            one structure.
    """
    groups = [PruningGroup([w], w.pruning_schedule, f"layer {w.layer.name!r}",
                           importance, model)
              for w in wrappers if w.scope == "layer"]
    global_wrappers = [w for w in wrappers if w.scope == "global"]
    if global_wrappers:
        require_one(global_wrappers, "pruning_schedule", "pruning schedule",
                    "Pass one `pruning_schedule` to `prune_low_magnitude(..., "
                    "scope='global')`.")
        require_one(global_wrappers, "structure", "structure",
                    "Pass one `structure` to `prune_low_magnitude(..., "
                    "scope='global')`, or use scope='layer'.")
        groups.append(PruningGroup(global_wrappers, global_wrappers[0].pruning_schedule,
                                   "global scope", importance, model, one_pool=True))
    return groups


# Structure class -> (build, check): how wrappers with that structure get
# their updaters. A structure whose updaters live above this module (the
# channel engine) registers them from there, so nothing here imports up.
_UPDATERS = {}


def register_updaters(structure_class, build, check=None):
    """Makes `build(wrappers, model, importance)` the maker of the
    `MaskUpdater`s of every wrapper whose structure is a `structure_class`
    (subclasses included), and `check(model, wrappers)` its test before
    training (it raises when the updates can't run in `model`).

    Structures that select per weight list (`count` and `select_count`)
    need no registration: they get `scope_groups`.

    Raises:
        ValueError: if `build` or `check` is not callable.
    """
    for label, value in (("build", build), ("check", check)):
        if value is not None and not callable(value):
            raise ValueError(f"`{label}` must be a function. Received: {label}={value!r}.")
    _UPDATERS[structure_class] = (build, check)


def _updaters_of(structure):
    """`(build, check)` for `structure`, from its class or nearest base."""
    for cls in type(structure).__mro__:
        if cls in _UPDATERS:
            return _UPDATERS[cls]
    return scope_groups, None


def build_groups(wrappers, model=None, importance=None):
    """The `MaskUpdater`s of `wrappers`: each structure's registered maker
    (`register_updaters`). Unstructured and N:M masks get one group per
    layer-scope wrapper and one for all global-scope wrappers; channel
    masks get one group over all of them, read from `model`'s graph.

    Args:
        wrappers: built `PruningWrapper`s.
        model: the model they are in (needed for channel masks, and for an
            importance that runs the model).
        importance: an `Importance`; defaults to magnitude.

    Raises:
        ValueError: if global-scope wrappers don't share one schedule and
            one structure, or channel-structured wrappers are not in a
            Sequential or Functional `model`.
    """
    importance = importance_lib.get(importance)
    groups = []
    for (build, _), members in _families(wrappers):
        groups += build(members, model, importance)
    return groups


def _families(wrappers):
    """`wrappers` by the `(build, check)` that makes their updaters."""
    families = {}
    for w in wrappers:
        families.setdefault(_updaters_of(w.structure), []).append(w)
    return list(families.items())


def check_model(wrappers, model):
    """Each structure's check over its wrappers in `model`: raises before
    training what `build_groups` would raise at the first update."""
    for (_, check), members in _families(wrappers):
        if check is not None:
            check(model, members)
