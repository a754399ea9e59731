"""Channel masks on wrapper variables: group scores -> exact top-k -> assign.

The channel counterpart of `keras_progprune.engine.PruningGroup`, with the
same `update(sparsity)`, `size`, `kept` and `schedule`, so the callback
drives both alike. `size` and `kept` count channel groups (one group = one
channel index of one coupled space, see `graph.py`); `size` counts them as
they were before any shrink (`PruningWrapper.initial_channels`), so after
`fit_shrinking` removed some, the schedule's fraction means the same.

Scores: a group's score is the mean square of every weight its masks cover
(producers' kernel slices and bias entries, BatchNormalization gamma and
beta, depthwise slices): the sum of squares divided by the number of those
weights, so groups of different sizes compare (a channel tied across four
residual convolutions against one of a single convolution).

Scope: `"layer"` keeps `keep_count(space size, sparsity)` groups in every
space; `"global"` ranks every group of every space together, each score
divided by its space's mean score over live channels (raw magnitudes
differ between layers by their initialization scale). Either way a
space keeps at least one channel (its best), so no path is cut, and a
group pruned once stays pruned.
"""

import numpy as np
import tensorflow as tf

from keras_progprune import thresholds
from keras_progprune.channels import kinds


def relative_to_space(scores, alive, space_of, num_spaces):
    """Scores divided by their space's mean over the channels still alive.

    Raw mean squares differ between layers by their initialization scale
    (about 1/fan-in), so a global ranking on them would empty the widest
    layers first. Relative to its space, a channel is ranked by how it
    compares with its neighbours; the global threshold then still gives
    each space its own sparsity.
    """
    alive_f = tf.cast(alive, scores.dtype)
    total = tf.math.unsorted_segment_sum(scores * alive_f, space_of, num_spaces)
    count = tf.math.unsorted_segment_sum(alive_f, space_of, num_spaces)
    mean = total / tf.maximum(count, 1.0)
    return scores / tf.maximum(tf.gather(mean, space_of), 1e-30)


def keep_top(scores, alive, k):
    """Bool mask of the `k` highest scores, alive ones first; ties keep the
    lower index. Exact: one stable sort of a (short) channel vector."""
    keys = tf.where(alive, scores, tf.fill(tf.shape(scores), -np.inf))
    order = tf.argsort(keys, direction="DESCENDING", stable=True)
    k = tf.cast(k, tf.int32)
    return tf.scatter_nd(order[:k][:, None], tf.ones([k], tf.bool), tf.shape(scores))


def keep_best(scores, alive, space_of, num_spaces):
    """Raises each space's best alive score to +inf, so it is always kept."""
    keys = tf.where(alive, scores, tf.fill(tf.shape(scores), -np.inf))
    best = tf.gather(tf.math.unsorted_segment_max(keys, space_of, num_spaces), space_of)
    return tf.where(tf.logical_and(alive, keys >= best), np.inf, scores)


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

    def per_channel(self, tensor, reduce):
        others = [a for a in range(len(tensor.shape)) if a != self.axis]
        return reduce(tensor, axis=others)


class ChannelGroup:
    """Every channel-structured wrapper of one model, masked by group.

    All groups are handled as one vector (group `g` = channel `c` of space
    `s`), so the compiled update has a few operations per variable, not per
    group.

    Args:
        graph: `channels.graph.ChannelGraph` of the (wrapped) model.
        wrappers: the model's channel-structured `PruningWrapper`s.
        schedule: the `PruningSchedule` that drives them.
        scope: `"layer"` or `"global"` (see the module docstring).
    """

    def __init__(self, graph, wrappers, schedule, scope):
        self.schedule = schedule
        self.scope = scope
        self.name = f"channel groups ({scope} scope)"
        self.wrappers = list(wrappers)
        by_layer = {id(w.layer): w for w in self.wrappers}
        self.spaces, self._masked, producer_of, self._initial = [], {}, [], []
        start = 0
        for space in graph.prunable_spaces():
            members = self._members(space, by_layer)
            if members is None:
                continue
            for (layer, offset, wrapper) in members:
                axes = {id(w): axis for w, axis in kinds.channel_weights(layer)}
                for w, m in zip(wrapper.pruned_weights, wrapper.masks):
                    entry = self._masked.setdefault(id(w), _Masked(w, m, axes[id(w)]))
                    entry.group[offset:offset + space.size] = np.arange(
                        start, start + space.size)
            producer_of.append(id(members[0][2].pruned_weights[0]))
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
        sizes = [s.size for s in self.spaces]
        self._space_of = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
        # Weights per group, for the mean square.
        self._count = np.zeros(self.width)
        for e in self._masked:
            per_index = int(np.prod(e.weight.shape)) // len(e.group)
            np.add.at(self._count, e.group[e.group >= 0], per_index)
        # Where each group's liveness is read: its space's first producer kernel.
        index = {id(e.weight): i for i, e in enumerate(self._masked)}
        self._alive_from = [(index[w], s) for w, s in zip(producer_of, self.spaces)]
        self.kept = int(np.sum(self._alive().numpy())) if self.width else 0
        self._compiled = tf.function(self._assign)

    def _mask_reader(self, consumer, space, first, by_layer):
        """A wrapped layer reading the space gets its input rows masked too,
        so weights that read pruned channels are zero, as in the shrunk
        model (and don't count in its output channels' scores)."""
        wrapper = by_layer.get(id(consumer.layer))
        if wrapper is None:
            return
        layer = consumer.layer
        kernel, out_axis = kinds.channel_weights(layer)[0]
        mask = wrapper.masks[[id(w) for w in wrapper.pruned_weights].index(id(kernel))]
        entry = self._masked.setdefault(id(kernel), _Masked(kernel, mask, out_axis))
        channels = np.arange(space.size)
        rows = consumer.rows(channels)
        groups = np.tile(first + channels, consumer.repeat)
        multiplier = getattr(layer, "depth_multiplier", None)
        if multiplier:  # a separable layer's pointwise rows: m per channel
            rows = (rows[:, None] * multiplier + np.arange(multiplier)).ravel()
            groups = np.repeat(groups, multiplier)
        entry.read_rows(kinds.input_axis(layer), rows, groups)

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

    def _alive(self):
        parts = []
        for i, space in self._alive_from:
            e = self._masked[i]
            live = e.per_channel(tf.cast(e.mask, tf.float32), tf.reduce_max) > 0
            parts.append(live)  # a producer's kernel: offset 0, the whole space
        return tf.concat(parts, 0)

    def _scores(self):
        """Mean square over each group's weights (float32)."""
        flat_sq, flat_group = [], []
        for e in self._masked:
            flat_sq.append(e.per_channel(tf.square(tf.cast(e.weight, tf.float32)),
                                         tf.reduce_sum))
            flat_group.append(np.where(e.group >= 0, e.group, self.width))
        sums = tf.math.unsorted_segment_sum(
            tf.concat(flat_sq, 0), np.concatenate(flat_group), self.width + 1)[:self.width]
        return sums / np.maximum(self._count, 1).astype(np.float32)

    def _choose(self, sparsity, alive):
        n = len(self.spaces)
        scores = self._scores()
        if self.scope == "global":
            scores = relative_to_space(scores, alive, self._space_of, n)
        scores = keep_best(scores, alive, self._space_of, n)
        if self.scope == "global":
            k = tf.clip_by_value(thresholds.keep_count(self.size, sparsity), n, self.width)
            return keep_top(scores, alive, k)
        parts, start = [], 0
        for space, initial in zip(self.spaces, self._initial):
            end = start + space.size
            k = tf.minimum(thresholds.keep_count(initial, sparsity), space.size)
            parts.append(keep_top(scores[start:end], alive[start:end], k))
            start = end
        return tf.concat(parts, 0)

    def _along(self, keep_all, groups, axis, shape):
        """The keep mask of `groups` (a group per index of `axis`),
        broadcast to `shape`."""
        vec = tf.gather(keep_all, np.where(groups >= 0, groups, self.width))
        view = [1] * len(shape)
        view[axis] = -1
        return tf.broadcast_to(tf.reshape(vec, view), shape)

    def _assign(self, sparsity, intersect):
        finite = thresholds.all_finite([e.weight for e in self._masked])

        def select_and_assign():
            alive = self._alive() if intersect else tf.ones([self.width], tf.bool)
            keep = tf.logical_and(self._choose(sparsity, alive), alive)
            keep_all = tf.concat([keep, [True]], 0)  # index `width`: no group
            for e in self._masked:
                full = self._along(keep_all, e.group, e.axis, e.mask.shape)
                if e.in_group is not None:
                    full = tf.logical_and(
                        full, self._along(keep_all, e.in_group, e.in_axis, e.mask.shape))
                e.mask.assign(tf.cast(full, e.mask.dtype))
                e.weight.assign(tf.where(full, e.weight, tf.zeros_like(e.weight)))
            return tf.reduce_sum(tf.cast(keep, tf.int32))

        return tf.cond(finite, select_and_assign, lambda: tf.constant(-1, tf.int32))

    def update(self, sparsity, scores=None, intersect=True):
        """Recomputes the channel masks at `sparsity` (fraction of groups
        removed) and zeroes the pruned channels' weights.

        Returns:
            The number of channel groups kept.

        Raises:
            ValueError: if `scores` is given (channel scores are fixed), or
                if a weight is NaN or Inf (masks are then left unchanged).
        """
        if scores is not None:
            raise ValueError(
                "Channel groups are scored by their weights' mean square; custom "
                "`scores` are not supported with structure='channel'. Received "
                f"scores for {len(scores)} weights.")
        if not self.spaces:
            return 0
        kept = int(self._compiled(tf.constant(sparsity, tf.float64), bool(intersect)))
        if kept < 0:
            raise ValueError(
                f"Can't compute channel masks for {self.name}: some weights are NaN "
                "or Inf. Masks were left unchanged. Lower the learning rate or add "
                "gradient clipping so the weights stay finite.")
        self.kept = kept
        return kept
