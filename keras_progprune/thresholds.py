"""Exact top-k selection on plain tensors: scores -> boolean keep-masks.

Pure `keras.ops`, no Keras layers: it runs inside the compiled mask update
of every backend. The one step `keras.ops` can't do fast enough, finding
the k-th largest of millions of values, is the backend's kernel
(`keras_progprune.backend.kth_largest`: a sample-bracketed select, by
NumPy's introselect for arrays on a CPU on every backend, compiled in the
graph by TensorFlow for a GPU or TPU).

1. Scores are mapped to int32 keys whose integer order equals the float
   order (`ordered_keys`). Inactive (already pruned) weights get the
   smallest key, so they are chosen last and never tie with a live weight.
2. The backend finds the k-th largest key, and how many keys are above it
   and equal to it.
3. Ties at the threshold are broken by flat index: among keys equal to the
   threshold the first ones in (tensor order, row-major) order are kept.

Global scope gives each tensor a floor (`floor_counts`): its best keys are
raised above all others before step 2 (`top_k_masks(..., floors=...)`).
"""

import math

from keras import ops

from keras_progprune import backend

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def keep_count(num_weights, sparsity):
    """Number of weights that survive: `max(1, round(n * (1 - s)))`.

    Computed in Python (float64), rounding half to even like NumPy and
    tfmot, so the count is the same on every backend; the compiled update
    receives it as a number.

    Args:
        num_weights: int, the `n` above.
        sparsity: float in [0, 1).

    Returns:
        An int.
    """
    return max(1, int(round(float(num_weights) * (1.0 - float(sparsity)))))


# Global scope: each weight keeps at least this fraction of the share it
# would have at the model's overall density (see `floor_counts`).
GLOBAL_FLOOR = 0.1


def floor_counts(sizes, count, fraction=GLOBAL_FLOOR):
    """How many entries each weight keeps at least when `count` are kept
    across all of them (global scope), so that no kernel is emptied (layer
    collapse).

    Each weight of `n` entries keeps at least `ceil(fraction * n * count /
    total)`, and at least 1: a tenth of its share at the overall density by
    default. At 98% global sparsity a kernel keeps at least 0.2% of its
    weights. When `count` can't cover the floors, each weight keeps 1 (or,
    with fewer kept entries than weights, no floor applies).

    Args:
        sizes: list of ints, the entries of each weight.
        count: int, the entries kept across all of them.
        fraction: float in [0, 1]. Defaults to `GLOBAL_FLOOR`.

    Returns:
        A list of ints, one per weight, summing to at most `count`.

    Examples:
        >>> floor_counts([1000, 10], count=101)
        [10, 1]
    """
    total = sum(sizes)
    # (less a hair, so that float rounding never lifts an exact share by one)
    floors = [min(n, max(1, math.ceil(fraction * n * count / total - 1e-9))) for n in sizes]
    if sum(floors) > count:
        floors = [min(n, 1) for n in sizes] if len(sizes) <= count else [0] * len(sizes)
    return floors


def ordered_keys(scores, active=None, nonnegative=False):
    """Maps float scores to int32 keys with the same order.

    Non-negative floats already order like their bit patterns; negative ones
    have all bits but the sign flipped. `-0.0` is folded onto `+0.0`.

    Args:
        scores: float tensor of any shape.
        active: optional bool or 0/1 tensor of the same shape. Where it is
            false the key is `INT32_MIN`, below every finite score.
        nonnegative: bool. The caller promises `scores >= 0` with no `-0.0`
            (magnitudes, `abs` clears the sign): the bits are the keys, three
            passes over the scores fewer. Defaults to False.

    Returns:
        An int32 tensor of the same shape as `scores`.
    """
    if nonnegative:
        keys = ops.view(ops.cast(scores, "float32"), "int32")
        if active is not None:
            keys = ops.where(ops.cast(active, "bool"), keys, INT32_MIN)
        return keys
    x = ops.cast(scores, "float32")
    # -0.0 -> +0.0 by a select: compilers may drop an `x + 0.0` (XLA and
    # TensorFlow's graph optimizer do), leaving -0.0 ranked below +0.0.
    x = ops.where(ops.equal(x, 0.0), ops.zeros_like(x), x)
    bits = ops.view(x, "int32")
    keys = ops.where(bits < 0, ops.bitwise_xor(bits, INT32_MAX), bits)
    if active is not None:
        keys = ops.where(ops.cast(active, "bool"), keys, INT32_MIN)
    return keys


# The bits of float32 +Inf: a magnitude's bits (as an int32) are below them
# exactly when it is finite (NaNs are above).
INF_BITS = 0x7F800000


def all_finite(tensors):
    """Scalar bool tensor: true when no tensor holds a NaN or an Inf.

    Read from the bits of each magnitude, an integer maximum: one light
    pass (`isfinite` and `all` took ten times as long on PyTorch).
    """
    flags = [ops.max(ops.view(ops.abs(ops.cast(t, "float32")), "int32")) < INF_BITS
             for t in tensors if math.prod(t.shape)]
    return ops.all(ops.stack(flags)) if flags else ops.convert_to_tensor(True)


def top_k_masks(scores, k, active=None, nonnegative=False, floors=None):
    """Keeps exactly the `k` highest scores across a list of tensors.

    Inactive entries (where `active` is false) are chosen only after every
    active one. Ties at the threshold keep the lowest flat indices, counting
    through the tensors in list order.

    With `floors`, tensor `i` keeps at least its `floors[i]` best active
    entries (ranked on their own, ties in flat order): they are kept first,
    and the other entries compete for the rest of `k`. The floors of every
    tensor are found in one backend call, then the pool in a second.

    Args:
        scores: list of float tensors (any shapes, static). Must be finite;
            check with `all_finite` first.
        k: int or scalar int tensor, 1 <= k <= total number of scores.
        active: optional list of bool/0-1 tensors matching `scores`.
        nonnegative: bool, see `ordered_keys`. Defaults to False.
        floors: optional list of ints or int32 vector, one per tensor
            (0: no floor), `sum(floors) <= k`. Defaults to None.

    Returns:
        A list of bool tensors shaped like `scores`, with exactly `k` true
        entries in total.

    Examples:
        >>> import keras
        >>> masks = top_k_masks([keras.ops.convert_to_tensor([0.1, -3.0, 2.0, 2.0])], k=1)
        >>> keras.ops.convert_to_numpy(masks[0]).tolist()
        [False, False, True, False]
        >>> masks = top_k_masks([keras.ops.convert_to_tensor([5.0, 4.0]),
        ...                      keras.ops.convert_to_tensor([1.0, 2.0])], k=2, floors=[0, 1])
        >>> [keras.ops.convert_to_numpy(m).tolist() for m in masks]
        [[True, False], [False, True]]
    """
    if active is None:
        active = [None] * len(scores)
    # Keys keep their tensors' shapes: flattening a tensor sharded over
    # devices would move it. Only the tie-break needs a flat order (and
    # under a distribution it makes the indices in place instead).
    keys = [ordered_keys(s, a, nonnegative) for s, a in zip(scores, active)]
    if floors is not None:
        keys = _raise_floors(keys, ops.cast(ops.convert_to_tensor(floors), "int32"), active)
    k = ops.cast(k, "int32")
    t, num_greater, num_equal = backend.kth_largest(keys, k)
    need = k - num_greater
    return ops.cond(ops.equal(num_equal, need),
                    lambda: [f >= t for f in keys],
                    lambda: _tie_break(keys, t, need))


def _raise_floors(keys, floors, active):
    """`keys` with the `floors[i]` highest active keys of tensor `i` (ties
    in flat order) raised to `INT32_MAX`, above every key of a score."""
    filled = [i for i, f in enumerate(keys) if math.prod(f.shape)]
    if len(filled) < len(keys):  # an empty tensor has no floor to find
        raised = _raise_floors([keys[i] for i in filled], ops.take(floors, filled),
                               [active[i] for i in filled]) if filled else []
        out = list(keys)
        for i, r in zip(filled, raised):
            out[i] = r
        return out
    has_floor = floors > 0
    ks = ops.maximum(floors, 1)
    t, num_greater, num_equal = backend.kth_largest_each(keys, ks)
    # No floor: nothing is at or above INT32_MAX, and no tie is taken.
    t = ops.where(has_floor, t, INT32_MAX)
    need = ops.where(has_floor, ks - num_greater, 0)
    num_equal = ops.where(has_floor, num_equal, 0)

    def plain():  # no ties to break, and every floor within the active keys
        return [ops.where(f >= t[i], INT32_MAX, f) for i, f in enumerate(keys)]

    def exact():
        out = []
        for i, (f, a) in enumerate(zip(keys, active)):
            top = _keep(f, t[i], need[i], num_equal[i])
            if a is not None:  # inactive keys reach a floor the live ones can't fill
                top = ops.logical_and(top, ops.cast(a, "bool"))
            out.append(ops.where(top, INT32_MAX, f))
        return out

    return ops.cond(ops.logical_and(ops.all(ops.equal(num_equal, need)),
                                    ops.all(t > INT32_MIN)), plain, exact)


def _tie_break(keys, t, need):
    """Keeps the keys above `t` and the first `need` keys equal to it,
    counting in flat order through the tensors in list order.

    Each tensor's share of the ties follows from the tie counts of the
    tensors before it: all of its ties, none, or (in one tensor at most)
    the first few, found in that tensor alone (`_first_ties`).
    """
    if backend.is_distributed():
        return _tie_break_in_place(keys, t, need)
    out = []
    before = ops.convert_to_tensor(0, "int32")  # ties in the tensors before
    for f in keys:
        ties = ops.sum(ops.cast(f == t, "int32"))
        out.append(_keep(f, t, ops.clip(need - before, 0, ties), ties))
        before = before + ties
    return out


def _keep(f, t, take, ties):
    """`f > t`, and the first `take` of its `ties` entries equal to `t`."""
    return ops.cond(
        ops.equal(take, ties), lambda: f >= t,
        lambda: ops.cond(ops.equal(take, 0), lambda: f > t,
                         lambda: _first_ties(f, t, take)))


# Entries per row of the two-level tie count in `_first_ties`.
TIE_ROW = 2048


def _first_ties(f, t, take):
    """`f > t`, and the first `take` entries equal to `t` in flat order
    (`1 <= take <=` their number).

    The `take`-th tie is found in two levels instead of a running count
    over the whole tensor (which XLA and TensorFlow compile to ten times
    the time of a pass on a CPU): tie counts per row of `TIE_ROW`
    entries, a running count over the rows to find the row that holds it,
    and one over that row alone. Under a distribution, in place
    (`_tie_break_in_place`): flattening a sharded tensor would move it.
    """
    if backend.is_distributed():
        return _tie_break_in_place([f], t, take)[0]
    flat = ops.reshape(f, [-1])
    n = int(flat.shape[0])
    if not n:  # traced in a branch not taken (`take` is then 0)
        return f > t
    eq = flat == t
    width = min(TIE_ROW, n)
    rows = ops.cast(eq, "int32")
    if n % width:
        rows = ops.pad(rows, [[0, width - n % width]])
    rows = ops.reshape(rows, [-1, width])
    per_row = ops.sum(rows, axis=1)
    before = ops.cumsum(per_row) - per_row           # ties before each row
    r = ops.sum(ops.cast(before < take, "int32")) - 1  # the row holding the take-th
    in_row = ops.sum(ops.cast(ops.cumsum(rows[r]) + before[r] < take, "int32"))
    last = r * width + in_row                         # the take-th tie's flat index
    kept = ops.logical_or(flat > t, ops.logical_and(eq, ops.arange(n, dtype="int32") <= last))
    return ops.reshape(kept, ops.shape(f))


def _flat_indices(shape, offset):
    """The row-major flat index (+ `offset`) of every entry of a tensor of
    `shape`, summed from one small range per axis: a sharded tensor's
    indices are made where its shards lie, with nothing moved."""
    index = ops.convert_to_tensor(offset, "int32")
    stride = 1
    for axis in reversed(range(len(shape))):
        steps = ops.arange(shape[axis], dtype="int32") * stride
        index = index + ops.reshape(steps, [-1 if a == axis else 1 for a in range(len(shape))])
        stride *= shape[axis]
    return ops.broadcast_to(index, shape)


def _tie_break_in_place(keys, t, need):
    """Keeps the keys above `t` and the first `need` keys equal to it (flat
    order), without flattening: for keys sharded over devices, where the
    running count of the single-device tie-break would move every key.

    The `need`-th equal key's flat index `p` is found bit by bit: the
    greatest `p` with fewer than `need` equal keys before it. Each step is
    one count (an all-reduce of one int32 when the keys are sharded).
    """
    equal, indices, offset = [], [], 0
    for f in keys:
        shape = tuple(f.shape)
        equal.append(f == t)
        indices.append(_flat_indices(shape, offset))
        offset += math.prod(shape)

    def before(position):
        return sum(ops.sum(ops.cast(ops.logical_and(e, i < position), "int32"))
                   for e, i in zip(equal, indices))

    p = ops.convert_to_tensor(0, "int32")
    for bit in reversed(range(max(1, (offset - 1).bit_length()))):
        candidate = p + (1 << bit)
        p = ops.where(before(candidate) < need, candidate, p)
    return [ops.logical_or(f > t, ops.logical_and(e, i <= p))
            for f, e, i in zip(keys, equal, indices)]
