"""Channel masks on wrapper variables: group scores -> exact top-k -> assign.

The channel counterpart of `keras_progprune.engine.PruningGroup`, with the
same `update(sparsity)`, `size`, `kept` and `schedule`, so the callback
drives both alike. `size` and `kept` count channel groups (one group = one
channel index of one coupled space, see `graph.py`); `size` counts them as
they were before any shrink (`PruningWrapper.initial_channels`), so after
`fit_shrinking` removed some, the schedule's fraction means the same.

Scores: by default a group's score is the mean square of every weight its
masks cover (producers' kernel slices and bias entries, BatchNormalization
gamma and beta, depthwise slices): the sum of squares divided by the number
of those weights, so groups of different sizes compare (a channel tied
across four residual convolutions against one of a single convolution).
An `importance` (`keras_progprune.importance`) replaces it: its
`channel_scores` per channel (read at each space's `probe`), or else the
mean of its `weight_scores` over the same weights.

Scope: `"layer"` keeps `keep_count(space size, sparsity)` groups in every
space; `"global"` ranks every group of every space together, each score
divided by its space's mean score over live channels (raw magnitudes
differ between layers by their initialization scale). Either way a
space keeps at least one channel (its best), so no path is cut, and a
group pruned once stays pruned.
"""

import keras
import numpy as np
from keras import ops

from keras_progprune import backend
from keras_progprune import engine
from keras_progprune import importance as importance_lib
from keras_progprune import structures
from keras_progprune import thresholds
from keras_progprune import walk
from keras_progprune.channels import graph as graph_lib
from keras_progprune import rules


def relative_to_space(scores, alive, space_of, num_spaces):
    """Scores divided by their space's mean over the channels still alive.

    Raw mean squares differ between layers by their initialization scale
    (about 1/fan-in), so a global ranking on them would empty the widest
    layers first. Relative to its space, a channel is ranked by how it
    compares with its neighbours; the global threshold then still gives
    each space its own sparsity.
    """
    alive_f = ops.cast(alive, scores.dtype)
    total = ops.segment_sum(scores * alive_f, space_of, num_segments=num_spaces)
    count = ops.segment_sum(alive_f, space_of, num_segments=num_spaces)
    mean = total / ops.maximum(count, 1.0)
    return scores / ops.maximum(ops.take(mean, space_of), 1e-30)


def keep_top(scores, alive, space_of, counts, starts):
    """Bool mask keeping, in each space `s`, its `counts[s]` highest scores,
    alive ones first; ties keep the lower index. Exact, and one pass for
    every space: a stable sort by score, then a stable sort of that order by
    space, gives each channel its rank within its space.

    Args:
        scores: float vector, one entry per channel.
        alive: bool vector of the same length.
        space_of: int32 vector (NumPy), the space of each channel, ascending.
        counts: int32 tensor, channels to keep per space.
        starts: int32 vector (NumPy), each space's first channel.
    """
    keys = ops.where(alive, scores, -np.inf)
    by_score = backend.argsort_stable(ops.negative(keys))
    spaces = ops.take(space_of, by_score)
    order = ops.take(by_score, backend.argsort_stable(spaces))
    sorted_space = ops.take(space_of, order)
    rank = ops.arange(len(space_of), dtype="int32") - ops.take(starts, sorted_space)
    keep_sorted = rank < ops.take(counts, sorted_space)
    return ops.take(keep_sorted, backend.argsort_stable(order))


def keep_best(scores, alive, space_of, num_spaces):
    """Raises each space's best alive score to +inf, so it is always kept."""
    keys = ops.where(alive, scores, -np.inf)
    best = ops.take(ops.segment_max(keys, space_of, num_segments=num_spaces), space_of)
    return ops.where(ops.logical_and(alive, keys >= best), np.inf, scores)


class _Masked:
    """One masked variable: which group each index of its channel axis is
    (-1: none, always kept), and for a kernel that reads pruned channels,
    which group each of its input rows is."""

    def __init__(self, weight, mask, axis):
        self.weight = weight
        self.mask = mask
        self.axis = axis % len(weight.shape)
        self.group = np.full(int(weight.shape[self.axis]), -1, np.int64)
        self.in_axis = None
        self.in_group = None

    def read_rows(self, axis, rows, groups):
        """Marks input rows `rows` (along `axis`) as belonging to `groups`."""
        if self.in_group is None:
            self.in_axis = axis % len(self.weight.shape)
            self.in_group = np.full(int(self.weight.shape[self.in_axis]), -1, np.int64)
        self.in_group[rows] = groups

    @property
    def one_per_channel(self):
        """Whether index `i` of its axis is group `group[0] + i` (not so for
        a width member whose channels own several indices)."""
        return bool(np.array_equal(self.group, self.group[0] + np.arange(len(self.group))))

    def per_channel(self, tensor, reduce):
        others = tuple(a for a in range(len(tensor.shape)) if a != self.axis)
        return reduce(tensor, axis=others) if others else tensor


class ChannelGroup(engine.MaskUpdater):
    """Every channel-structured wrapper of one model, masked by group.

    All groups are handled as one vector (group `g` = channel `c` of space
    `s`), so the compiled update has a few operations per variable, not per
    group.

    Args:
        graph: `channels.graph.ChannelGraph` of the (wrapped) model.
        wrappers: the model's channel-structured `PruningWrapper`s.
        schedule: the `PruningSchedule` that drives them.
        scope: `"layer"` or `"global"` (see the module docstring).
        importance: an `Importance` (default: magnitude, the mean square).
        model: the model the wrappers are in (for `importance`).
    """

    def __init__(self, graph, wrappers, schedule, scope, importance=None, model=None):
        self.schedule = schedule
        self.scope = scope
        self.importance = importance_lib.get(importance)
        self.model = model
        self.probes = []
        self.name = f"channel groups ({scope} scope)"
        self.wrappers = list(wrappers)
        by_layer = {id(w.layer): w for w in self.wrappers}
        self.spaces, self._masked, producer_of, self._initial = [], {}, [], []
        start = 0
        for space in graph.prunable_spaces():
            if space.width is not None:  # channels inside one layer
                first = self._width_members(space, by_layer, start)
                if first is None:
                    continue
                producer_of.append(first)
                probe = space.width[1].probe
                self.probes.append(probe and importance_lib.Probe.of(
                    space.width[1].label, probe, space.size))
                self.spaces.append(space)
                self._initial.append(self._initial_width(space, by_layer))
                start += space.size
                continue
            members = self._members(space, by_layer)
            if members is None:
                continue
            for (layer, offset, wrapper) in members:
                axes = {id(w): axis for w, axis in rules.channel_weights(layer)}
                for w, m in zip(wrapper.pruned_weights, wrapper.masks):
                    entry = self._masked.setdefault(id(w), _Masked(w, m, axes[id(w)]))
                    entry.group[offset:offset + space.size] = np.arange(
                        start, start + space.size)
            producer_of.append(id(members[0][2].pruned_weights[0]))
            self.probes.append(importance_lib.Probe(
                f"space {space.index}", members[0][0], "output", -1, space.size))
            self.spaces.append(space)
            # The schedule's fraction is of the channels before any shrink.
            self._initial.append(max(space.size, members[0][2].initial_channels or 0))
            start += space.size
        for space, first in zip(self.spaces, np.cumsum([0] + [s.size for s in self.spaces])):
            for consumer in space.consumers:
                self._mask_reader(consumer, space, int(first), by_layer)
        self.width = start  # channels present now
        self.size = int(sum(self._initial))  # channels at the start: the 100%
        self._masked = list(self._masked.values())
        self.weights = [e.weight for e in self._masked]
        sizes = [s.size for s in self.spaces]
        self._space_of = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
        self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
        # Weights per group, for the mean square.
        self._count = np.zeros(self.width)
        for e in self._masked:
            per_index = int(np.prod(e.weight.shape)) // len(e.group)
            np.add.at(self._count, e.group[e.group >= 0], per_index)
        # Where each group's liveness is read: its space's first producer kernel.
        index = {id(e.weight): i for i, e in enumerate(self._masked)}
        self._alive_from = [(index[w], s) for w, s in zip(producer_of, self.spaces)]
        self.kept = int(np.sum(ops.convert_to_numpy(self._alive(
            [e.mask.value for e in self._masked])))) if self.width else 0
        self._compiled = backend.compile(self._select, static=("intersect",))

    def _mask_reader(self, consumer, space, first, by_layer):
        """A wrapped layer reading the space gets its input rows masked too,
        so weights that read pruned channels are zero, as in the shrunk
        model (and don't count in its output channels' scores)."""
        wrapper = by_layer.get(id(consumer.layer))
        if wrapper is None:
            return
        layer = consumer.layer
        rule = rules.rule_of(layer)
        kernel, in_axis, multiplier = rule.reader(layer)
        out_axis = dict((id(w), a) for w, a in rule.channel_weights(layer))[id(kernel)]
        mask = wrapper.masks[[id(w) for w in wrapper.pruned_weights].index(id(kernel))]
        entry = self._masked.setdefault(id(kernel), _Masked(kernel, mask, out_axis))
        channels = np.arange(space.size)
        rows = consumer.rows(channels)
        groups = np.tile(first + channels, consumer.repeat)
        if multiplier > 1:  # `multiplier` rows per channel (separable pointwise)
            rows = (rows[:, None] * multiplier + np.arange(multiplier)).ravel()
            groups = np.repeat(groups, multiplier)
        entry.read_rows(in_axis, rows, groups)

    def _width_members(self, space, by_layer, start):
        """Masks a width group's members (see `keras_progprune.rules`); returns the id
        of the variable its liveness is read from, or None when its layer
        isn't wrapped."""
        layer, group = space.width
        wrapper = by_layer.get(id(layer))
        if wrapper is None:
            return None
        masks = {id(w): m for w, m in zip(wrapper.pruned_weights, wrapper.masks)}
        for m in group.members:
            entry = self._masked.setdefault(
                id(m.variable), _Masked(m.variable, masks[id(m.variable)], m.axis))
            entry.group[:] = start + m.channels
        return id(group.outputs[0].variable)

    @staticmethod
    def _initial_width(space, by_layer):
        """A width group's channels before any shrink: the wrapper's
        `initial_channels` holds one count per group of its layer, in the
        rule's order."""
        layer, group = space.width
        initial = by_layer[id(layer)].initial_channels
        labels = [g.label for g in rules.width_groups(layer)]
        if not isinstance(initial, list) or len(initial) != len(labels):
            return space.size
        return max(space.size, initial[labels.index(group.label)])

    @staticmethod
    def _members(space, by_layer):
        """`[(layer, offset, wrapper)]`, or None if one member isn't wrapped
        (the user excluded it): its channels then can't be zeroed, so the
        space stays whole."""
        members = [(layer, 0) for layer in space.producers] + list(space.followers)
        out = []
        for layer, offset in members:
            wrapper = by_layer.get(id(layer))
            if wrapper is None:
                return None
            out.append((layer, offset, wrapper))
        return out

    def _alive(self, masks):
        parts = []
        for i, space in self._alive_from:
            e = self._masked[i]
            live = e.per_channel(ops.cast(masks[i], "float32"), ops.max)
            if not e.one_per_channel:  # a width member whose channels own several indices
                live = ops.segment_max(live, (e.group - e.group.min()).astype("int32"),
                                       num_segments=space.size)
            parts.append(live > 0)  # a producer's kernel: offset 0, the whole space
        return ops.concatenate(parts, 0)

    def _group_mean(self, values):
        """Each group's mean of `values` (one tensor per masked variable,
        shaped like it) over its weights, float32."""
        flat, flat_group = [], []
        for e, v in zip(self._masked, values):
            flat.append(e.per_channel(ops.cast(v, "float32"), ops.sum))
            flat_group.append(np.where(e.group >= 0, e.group, self.width))
        sums = ops.segment_sum(
            ops.concatenate(flat, 0), np.concatenate(flat_group).astype("int32"),
            num_segments=self.width + 1)[:self.width]
        # A tensor divisor: NumPy's would read a PyTorch tensor that needs
        # gradients through `__array__`, which PyTorch refuses.
        return ops.divide(sums, ops.convert_to_tensor(
            np.maximum(self._count, 1).astype(np.float32)))

    def _choose(self, weights, counts, alive, scores):
        n = len(self.spaces)
        if scores is None:  # magnitude: the mean square
            scores = self._group_mean([ops.square(ops.cast(w, "float32")) for w in weights])
        if self.scope == "global":
            scores = relative_to_space(scores, alive, self._space_of, n)
        scores = keep_best(scores, alive, self._space_of, n)
        if self.scope == "global":  # one ranking over every space
            one = np.zeros(self.width, np.int32)
            return keep_top(scores, alive, one, counts, np.zeros(1, np.int32))
        return keep_top(scores, alive, self._space_of, counts, self._starts)

    def _along(self, keep_all, groups, axis, shape):
        """The keep mask of `groups` (a group per index of `axis`),
        broadcast to `shape`."""
        vec = ops.take(keep_all, np.where(groups >= 0, groups, self.width).astype("int32"))
        view = [1] * len(shape)
        view[axis] = -1
        return ops.broadcast_to(ops.reshape(vec, view), tuple(shape))

    def _select(self, weights, masks, counts, scores, intersect):
        """The pure update: `(new masks, kept groups, finite, weights or None)`;
        `scores` is None (magnitude) or one float32 score per group."""
        finite = thresholds.all_finite(weights + ([] if scores is None else [scores]))
        alive = self._alive(masks) if intersect else ops.ones([self.width], "bool")
        # Scored as the layers see them: a masked entry (a pruned channel's
        # weights, a reader's rows of pruned input channels) counts as 0,
        # whatever its stored value.
        seen = [ops.where(ops.cast(m, "bool"), w, ops.zeros_like(w))
                for w, m in zip(weights, masks)]
        keep = ops.logical_and(self._choose(seen, counts, alive, scores), alive)
        keep_all = ops.concatenate([keep, ops.ones([1], "bool")], 0)  # `width`: no group
        new_masks = []
        for e, m in zip(self._masked, masks):
            full = self._along(keep_all, e.group, e.axis, e.mask.shape)
            if e.in_group is not None:
                full = ops.logical_and(
                    full, self._along(keep_all, e.in_group, e.in_axis, e.mask.shape))
            new_masks.append(ops.cast(full, m.dtype))
        revived = None if intersect else [
            ops.where(ops.logical_and(ops.cast(n, "bool"), ops.logical_not(ops.cast(m, "bool"))),
                      ops.zeros_like(w), w)
            for n, m, w in zip(new_masks, masks, weights)]
        return new_masks, ops.sum(ops.cast(keep, "int32")), finite, revived

    def _counts(self, sparsity):
        """Channels to keep, in Python: one per space, or the global count."""
        n = len(self.spaces)
        if self.scope == "global":
            return [min(max(thresholds.keep_count(self.size, sparsity), n), self.width)]
        return [min(thresholds.keep_count(initial, sparsity), space.size)
                for space, initial in zip(self.spaces, self._initial)]

    def wants_weight_scores(self):
        return super().wants_weight_scores() and not self.importance.scores_channels()

    def channel_scores(self, scores=None):
        """One float32 score per group, from per-weight `scores` (aligned
        with `self.weights`) or the importance; None for magnitude."""
        if scores is None and self.importance.scores_channels():
            per_space = self.importance.channel_scores(self.model, self.probes)
            if per_space is not None:
                return self._per_space_scores(per_space)
        if scores is None:
            scores = self.importance_scores(self.model)
        if scores is None:
            return None
        if len(scores) != len(self.weights):
            raise ValueError(
                f"`scores` must hold one tensor per weight of {self.name} (see its "
                f"`weights`): {len(self.weights)} expected. Received {len(scores)}.")
        return self._group_mean([ops.convert_to_tensor(s) for s in scores])

    def _per_space_scores(self, per_space):
        per_space = [np.asarray(v, np.float32).ravel() for v in per_space]
        sizes = [p.size for p in self.probes]
        if [v.size for v in per_space] != sizes:
            raise ValueError(
                f"{self.importance!r}.channel_scores must return one score per channel "
                f"of each probe it is given: sizes {sizes} expected. Received sizes "
                f"{[v.size for v in per_space]}.")
        return ops.convert_to_tensor(np.concatenate(per_space), "float32")

    def update(self, sparsity, scores=None, intersect=True):
        """Recomputes the channel masks at `sparsity` (fraction of groups
        removed).

        Args:
            sparsity: float in [0, 1).
            scores: optional list of tensors shaped like `self.weights`; a
                group's score is their mean over its weights. Defaults to
                the importance's scores (the mean square for magnitude).
            intersect: if true, a group pruned before stays pruned.

        Returns:
            The number of channel groups kept.

        Raises:
            ValueError: if `scores` doesn't match `weights`, or if a weight
                or score is NaN or Inf (masks are then left unchanged).
        """
        if not self.spaces:
            return 0
        return self._apply(self._counts(float(sparsity)), self.channel_scores(scores),
                           intersect)

    def magnitude_scores(self):
        """The default score of every channel (its space's channels in
        order, the spaces in `self.spaces` order): the mean square of the
        weights its mask covers, as the masks see them. A NumPy vector."""
        masked = [ops.where(ops.cast(e.mask.value, "bool"), e.weight.value,
                            ops.zeros_like(e.weight.value)) for e in self._masked]
        return np.asarray(ops.convert_to_numpy(self._group_mean(
            [ops.square(ops.cast(w, "float32")) for w in masked])))

    def keep_counts(self, counts, scores):
        """Sets the masks to keep, in each space `i`, the `counts[i]`
        channels with the highest `scores` (one per channel, as
        `magnitude_scores` orders them; ties keep the lower index). One-shot
        pruning (`kp.prune_width`) says how many per space itself.

        Returns:
            The number of channels kept.
        """
        if len(counts) != len(self.spaces):
            raise ValueError(f"`counts` must give one count per space ({len(self.spaces)}). "
                             f"Received {len(counts)}.")
        if self.scope != "layer":
            raise ValueError("`keep_counts` counts per space: it needs scope='layer'. "
                             f"Received a group with scope={self.scope!r}.")
        return self._apply([int(c) for c in counts],
                           ops.convert_to_tensor(np.asarray(scores, np.float32)), False)

    def _apply(self, counts, group_scores, intersect):
        new_masks, kept, finite, revived = self._compiled(
            [e.weight.value for e in self._masked], [e.mask.value for e in self._masked],
            ops.convert_to_tensor(counts, "int32"), group_scores,
            intersect=bool(intersect))
        if not bool(ops.convert_to_numpy(finite)):
            raise ValueError(
                f"Can't compute channel masks for {self.name}: some weights or scores are "
                "NaN or Inf. Masks were left unchanged. Lower the learning rate or add "
                "gradient clipping so the weights stay finite.")
        for e, value in zip(self._masked, new_masks):
            e.mask.assign(value)
        for e, value in zip(self._masked, revived or ()):
            e.weight.assign(value)
        self.kept = int(ops.convert_to_numpy(kept))
        return self.kept


def _graph_parts(model, wrappers):
    """`[(part, its wrappers)]`: the outermost Sequential or Functional
    models inside a subclassed `model` (a VAE's encoder and decoder) that
    hold some of `wrappers`, each with those wrappers."""
    parts, inside = [], set()
    for layer in walk.sublayers(model):
        if id(layer) in inside or not (isinstance(layer, keras.Model)
                                       and walk.is_graph_model(layer)):
            continue
        held = {id(sub) for sub in walk.sublayers(layer)}
        inside |= held
        members = [w for w in wrappers if id(w) in held]
        if members:
            parts.append((layer, members))
    return parts


def check_placement(model, wrappers):
    """The graph parts of a subclassed `model` that hold `wrappers` (see
    `_graph_parts`), or a `ValueError` naming the wrappers in none."""
    parts = _graph_parts(model, wrappers)
    placed = {id(w) for _, members in parts for w in members}
    outside = [w.layer.name for w in wrappers if id(w) not in placed]
    if outside and not walk.is_graph_model(model):
        raise ValueError(
            "structure='channel' reads the coupled channels from a model's graph, so "
            "its wrappers must sit in a Sequential or Functional model; in model "
            f"{getattr(model, 'name', None)!r} of type {type(model).__name__} (subclassed) "
            f"the wrappers of layers {outside} are in no such graph. Build that part with "
            "the Functional API (keras.Input(...) -> layers -> keras.Model) and prune it "
            "with `prune_low_magnitude(part, structure='channel')`, or use "
            "structure='unstructured' or '2:4', which work in any model.")
    return parts


def channel_groups(wrappers, model, importance=None):
    """The `ChannelGroup`s of every channel-structured wrapper of `model`
    (registered for `structures.Channel`): one over a Sequential or
    Functional model, or one per graph model inside a subclassed one (the
    encoder and decoder of a model with its own `train_step`).

    Raises:
        ValueError: without a model, if a wrapper sits outside any graph,
            or if the wrappers of one graph don't share one schedule and one
            scope.
    """
    if model is None:
        raise ValueError(
            "Channel-structured wrappers are grouped from the model's graph: pass the "
            "model, `build_groups(wrappers, model)`.")
    if walk.is_graph_model(model):
        return [_channel_group(model, wrappers, importance)]
    parts = check_placement(model, wrappers)
    return [_channel_group(part, members, importance) for part, members in parts]


def _channel_group(model, wrappers, importance):
    engine.require_one(wrappers, "pruning_schedule", "pruning schedule",
                       "Pass one `pruning_schedule` to `prune_low_magnitude(..., "
                       "structure='channel')`.")
    engine.require_one(wrappers, "scope", "scope", "Pass one `scope` to "
                       "`prune_low_magnitude(..., structure='channel')`.")
    return ChannelGroup(graph_lib.analyze(model), wrappers, wrappers[0].pruning_schedule,
                        wrappers[0].scope, importance, model)


engine.register_updaters(structures.Channel, channel_groups, check_placement)
