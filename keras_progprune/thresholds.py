"""Exact top-k selection on plain tensors: scores -> boolean keep-masks.

Pure TensorFlow, no Keras layers. Everything here traces inside
`tf.function` and runs unchanged on CPU and GPU (no `tf.math.bincount`, so
no XLA-only or CPU-only kernels).

How the k-th largest score is found, exactly and fast:

1. Scores are mapped to int32 keys whose integer order equals the float
   order (`ordered_keys`). Inactive (already pruned) weights get the smallest
   key, so they are chosen last and never tie with a live weight.
2. A seeded random sample of the keys is sorted. Around the expected rank of
   the k-th largest it gives a bracket `[lo, hi]` that holds the k-th key with
   overwhelming probability (+-4 standard deviations).
3. One pass counts keys above `hi` and gathers the keys inside the bracket
   (about 1-2% of them). Sorting that small set gives the exact k-th key.
   If the bracket missed (it is checked, not assumed), the whole key set is
   sorted instead, so the answer is exact either way.
4. Ties at the threshold are broken by flat index: among keys equal to the
   threshold the first ones in (tensor order, row-major) order are kept.
"""

import math

import tensorflow as tf

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# Below this many scores in total, sort everything: it is as fast and simpler.
_SORT_ALL_BELOW = 1 << 14
# The sample is n / 16 scores, at most this many.
_SAMPLE_SIZE = 1 << 16
_BRACKET_SIGMAS = 4.0


def keep_count(num_weights, sparsity):
    """Number of weights that survive: `max(1, round(n * (1 - s)))`.

    Rounds half to even, like `tf.round` (and tfmot).

    Args:
        num_weights: int or int tensor, the `n` above.
        sparsity: float or float tensor in [0, 1).

    Returns:
        A scalar int32 tensor.
    """
    n = tf.cast(num_weights, tf.float64)
    s = tf.cast(sparsity, tf.float64)
    k = tf.cast(tf.round(n * (1.0 - s)), tf.int32)
    return tf.maximum(k, 1)


def ordered_keys(scores, active=None):
    """Maps float scores to int32 keys with the same order.

    Non-negative floats already order like their bit patterns; negative ones
    have all bits but the sign flipped. `-0.0` is folded onto `+0.0`.

    Args:
        scores: float tensor of any shape.
        active: optional bool or 0/1 tensor of the same shape. Where it is
            false the key is `INT32_MIN`, below every finite score.

    Returns:
        An int32 tensor of the same shape as `scores`.
    """
    x = tf.cast(scores, tf.float32) + 0.0
    bits = tf.bitcast(x, tf.int32)
    keys = tf.where(bits < 0, tf.bitwise.bitwise_xor(bits, INT32_MAX), bits)
    if active is not None:
        keys = tf.where(tf.cast(active, tf.bool), keys, INT32_MIN)
    return keys


def all_finite(tensors):
    """Scalar bool tensor: true when no tensor holds a NaN or an Inf."""
    flags = [tf.reduce_all(tf.math.is_finite(tf.cast(t, tf.float32))) for t in tensors]
    return tf.reduce_all(tf.stack(flags))


def _count(condition):
    return tf.reduce_sum(tf.cast(condition, tf.int32))


def _threshold_from_sorted(sorted_desc, rank):
    """(key at 1-based `rank`, #keys above it, #keys equal to it)."""
    t = sorted_desc[rank - 1]
    return t, _count(sorted_desc > t), _count(sorted_desc == t)


def _sort_desc(x):
    return tf.sort(x, direction="DESCENDING")


def kth_largest(flat_keys, k, seed=0):
    """Finds the k-th largest key over a list of 1-D int32 tensors, exactly.

    Args:
        flat_keys: list of 1-D int32 tensors with static sizes.
        k: scalar int32 tensor, 1 <= k <= total size.
        seed: int, seeds the sample that brackets the answer. The result does
            not depend on it, only the speed can.

    Returns:
        `(threshold, num_greater, num_equal)`: the k-th largest key, how many
        keys are strictly greater, and how many equal it.
    """
    sizes = [int(f.shape[0]) for f in flat_keys]
    n = sum(sizes)
    if n <= _SORT_ALL_BELOW:
        return _threshold_from_sorted(_sort_desc(tf.concat(flat_keys, 0)), k)

    # 1. A seeded sample, spread over the tensors by size.
    sample_size = min(_SAMPLE_SIZE, max(1024, n // 16))
    samples = []
    for i, (f, size) in enumerate(zip(flat_keys, sizes)):
        m_i = max(1, math.ceil(sample_size * size / n))
        idx = tf.random.stateless_uniform(
            [m_i], seed=[seed, i], minval=0, maxval=size, dtype=tf.int32
        )
        samples.append(tf.gather(f, idx))
    sample = _sort_desc(tf.concat(samples, 0))
    m = tf.shape(sample)[0]

    # 2. The bracket around the expected sample rank of the k-th key.
    mf = tf.cast(m, tf.float64)
    p = tf.cast(k, tf.float64) / float(n)
    pos = p * mf
    margin = _BRACKET_SIGMAS * tf.sqrt(mf * p * (1.0 - p)) + 8.0
    hi_i = tf.cast(tf.floor(pos - margin), tf.int32) - 1
    lo_i = tf.cast(tf.math.ceil(pos + margin), tf.int32)
    hi = tf.where(hi_i >= 0, sample[tf.maximum(hi_i, 0)], INT32_MAX)
    lo = tf.where(lo_i < m, sample[tf.minimum(lo_i, m - 1)], INT32_MIN)
    # Inactive (already pruned) keys are INT32_MIN: keep them out of the
    # bracket, which would otherwise hold every pruned weight at high
    # sparsity. If the k-th key is INT32_MIN itself (k > live weights), the
    # bracket misses and the exact fallback below answers.
    lo = tf.maximum(lo, INT32_MIN + 1)

    # 3. One pass: count above the bracket, gather inside it.
    above = tf.add_n([_count(f > hi) for f in flat_keys])
    inside = tf.concat(
        [tf.boolean_mask(f, tf.logical_and(f >= lo, f <= hi)) for f in flat_keys],
        0,
    )
    rank = k - above
    hit = tf.logical_and(rank >= 1, rank <= tf.shape(inside)[0])

    def from_bracket():
        t, gt, eq = _threshold_from_sorted(_sort_desc(inside), tf.maximum(rank, 1))
        return t, gt + above, eq

    def from_everything():
        return _threshold_from_sorted(_sort_desc(tf.concat(flat_keys, 0)), k)

    return tf.cond(hit, from_bracket, from_everything)


def top_k_masks(scores, k, active=None, seed=0):
    """Keeps exactly the `k` highest scores across a list of tensors.

    Inactive entries (where `active` is false) are chosen only after every
    active one. Ties at the threshold keep the lowest flat indices, counting
    through the tensors in list order.

    Args:
        scores: list of float tensors (any shapes, static). Must be finite;
            check with `all_finite` first.
        k: int or scalar int tensor, 1 <= k <= total number of scores.
        active: optional list of bool/0-1 tensors matching `scores`.
        seed: int, only affects speed (see `kth_largest`).

    Returns:
        A list of bool tensors shaped like `scores`, with exactly `k` true
        entries in total.

    Example:

    >>> import tensorflow as tf
    >>> masks = top_k_masks([tf.constant([0.1, -3.0, 2.0, 2.0])], k=1)
    >>> masks[0].numpy().tolist()
    [False, False, True, False]
    """
    if active is None:
        active = [None] * len(scores)
    keys = [tf.reshape(ordered_keys(s, a), [-1]) for s, a in zip(scores, active)]
    k = tf.cast(k, tf.int32)
    t, num_greater, num_equal = kth_largest(keys, k, seed=seed)
    need = k - num_greater

    def simple():
        return [f >= t for f in keys]

    def tie_break():
        out = []
        offset = tf.constant(0, tf.int32)
        for f in keys:
            eq = f == t
            running = tf.cumsum(tf.cast(eq, tf.int32)) + offset
            out.append(tf.logical_or(f > t, tf.logical_and(eq, running <= need)))
            offset = running[-1] if f.shape[0] else offset
        return out

    flat = tf.cond(tf.equal(num_equal, need), simple, tie_break)
    return [tf.reshape(m, tf.shape(s)) for m, s in zip(flat, scores)]
