"""Channel masks on wrapper variables: group scores -> exact top-k -> assign.

The channel counterpart of `keras_progprune.engine.PruningGroup`, with the
same `update(sparsity)`, `size`, `kept` and `schedule`, so the callback
drives both alike. `size` and `kept` count channel groups (one group = one
channel index of one coupled space, see `graph.py`).

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


class _Entry:
    """One masked weight's share of one space: `weight[..., offset:offset +
    size, ...]` along `axis`."""

    def __init__(self, weight, mask, axis, offset, size):
        self.weight = weight
        self.mask = mask
        self.axis = axis % len(weight.shape)
        self.offset = offset
        self.size = size


def channel_scores(entries, size):
    """Mean square over every weight of each of `size` groups (float32)."""
    total = tf.zeros([size], tf.float32)
    count = 0
    for e in entries:
        w = tf.cast(e.weight, tf.float32)
        others = [a for a in range(len(w.shape)) if a != e.axis]
        per_channel = tf.reduce_sum(tf.square(w), axis=others)
        total += per_channel[e.offset:e.offset + size]
        count += int(np.prod(w.shape)) // int(w.shape[e.axis])
    return total / float(max(count, 1))


def relative_to_space(scores, alive):
    """Scores divided by their space's mean over the channels still alive.

    Raw mean squares differ between layers by their initialization scale
    (about 1/fan-in), so a global ranking on them would empty the widest
    layers first. Relative to its space, a channel is ranked by how it
    compares with its neighbours; the global threshold then still gives
    each space its own sparsity.
    """
    alive_f = tf.cast(alive, scores.dtype)
    mean = tf.reduce_sum(scores * alive_f) / tf.maximum(tf.reduce_sum(alive_f), 1.0)
    return scores / tf.maximum(mean, 1e-30)


def keep_best(scores, alive):
    """Raises the best alive score to +inf, so it is always kept."""
    best = tf.argmax(tf.where(alive, scores, tf.fill(tf.shape(scores), -np.inf)))
    return tf.tensor_scatter_nd_update(scores, [[best]], [np.inf])


class ChannelGroup:
    """Every channel-structured wrapper of one model, masked by group.

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
        self.spaces, self.entries = [], []
        for space in graph.prunable_spaces():
            entries = self._entries(space, by_layer)
            if entries:
                self.spaces.append(space)
                self.entries.append(entries)
        self.size = int(sum(s.size for s in self.spaces))
        self.kept = int(sum(self._alive_count(es, s.size)
                            for s, es in zip(self.spaces, self.entries)))
        self._compiled = tf.function(self._assign)

    @staticmethod
    def _entries(space, by_layer):
        """The space's masked weights, or [] if one member isn't wrapped (the
        user excluded it): its channels then can't be zeroed, so the space
        stays whole."""
        members = [(layer, 0) for layer in space.producers] + list(space.followers)
        entries = []
        for layer, offset in members:
            wrapper = by_layer.get(id(layer))
            if wrapper is None:
                return []
            axes = dict((id(w), axis) for w, axis in kinds.channel_weights(layer))
            for w, m in zip(wrapper.pruned_weights, wrapper.masks):
                entries.append(_Entry(w, m, axes[id(w)], offset, space.size))
        return entries

    @staticmethod
    def _alive(entries, size):
        """Channels whose first mask (a producer's kernel) is not all zero."""
        e = entries[0]
        others = [a for a in range(len(e.mask.shape)) if a != e.axis]
        return tf.reduce_max(tf.cast(e.mask, tf.float32), axis=others)[
            e.offset:e.offset + size] > 0

    def _alive_count(self, entries, size):
        return int(tf.reduce_sum(tf.cast(self._alive(entries, size), tf.int32)))

    def _choose(self, sparsity, intersect):
        scores, alive = [], []
        for space, entries in zip(self.spaces, self.entries):
            a = self._alive(entries, space.size) if intersect else tf.ones(
                [space.size], tf.bool)
            score = channel_scores(entries, space.size)
            if self.scope == "global":
                score = relative_to_space(score, a)
            scores.append(keep_best(score, a))
            alive.append(a)
        if self.scope == "global":
            k = tf.maximum(thresholds.keep_count(self.size, sparsity), len(self.spaces))
            return thresholds.top_k_masks(scores, k, active=alive)
        return [thresholds.top_k_masks([s], thresholds.keep_count(space.size, sparsity),
                                       active=[a])[0]
                for s, a, space in zip(scores, alive, self.spaces)]

    def _assign(self, sparsity, intersect):
        finite = thresholds.all_finite([e.weight for es in self.entries for e in es])

        def select_and_assign():
            keeps = self._choose(sparsity, intersect)
            if intersect:
                keeps = [tf.logical_and(k, self._alive(es, s.size))
                         for k, es, s in zip(keeps, self.entries, self.spaces)]
            vectors = {}  # id(mask) -> (entry, per-channel keep along its axis)
            for keep, entries in zip(keeps, self.entries):
                for e in entries:
                    _, vec = vectors.get(id(e.mask), (e, tf.ones(
                        [e.mask.shape[e.axis]], tf.bool)))
                    idx = tf.range(e.offset, e.offset + e.size)[:, None]
                    vectors[id(e.mask)] = (e, tf.tensor_scatter_nd_update(vec, idx, keep))
            for e, vec in vectors.values():
                shape = [1] * len(e.mask.shape)
                shape[e.axis] = -1
                full = tf.broadcast_to(tf.reshape(vec, shape), e.mask.shape)
                e.mask.assign(tf.cast(full, e.mask.dtype))
                e.weight.assign(tf.where(full, e.weight, tf.zeros_like(e.weight)))
            return tf.add_n([tf.reduce_sum(tf.cast(k, tf.int32)) for k in keeps])

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
