import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_progprune import backend
from keras_progprune import thresholds
from keras_progprune.backend import numpy_kernels
from conftest import assert_equal

T = keras.ops.convert_to_tensor


def reference_masks(scores, k, active=None):
    """Numpy reference: stable sort on (-key, flat index)."""
    flat = np.concatenate([np.asarray(s, np.float64).ravel() for s in scores])
    if active is not None:
        act = np.concatenate([np.asarray(a, bool).ravel() for a in active])
        # inactive ranks below every active score, then by score, then index
        order = np.lexsort((np.arange(flat.size), -np.where(act, flat, 0), ~act))
    else:
        order = np.lexsort((np.arange(flat.size), -flat))
    keep = np.zeros(flat.size, bool)
    keep[order[:k]] = True
    out, start = [], 0
    for s in scores:
        n = int(np.size(s))
        out.append(keep[start:start + n].reshape(np.shape(s)))
        start += n
    return out


@pytest.mark.parametrize("n,s", [(0, 0.0), (10, 0.0), (10, 0.5), (10, 0.95), (7, 0.5),
                                 (1000, 0.999), (3, 0.999999)])
def test_keep_count(n, s):
    if n == 0:
        assert int(thresholds.keep_count(n, s)) == 1
        return
    assert int(thresholds.keep_count(n, s)) == max(1, round(n * (1 - s)))


def test_ordered_keys_preserve_float_order():
    x = np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, np.inf], np.float32)
    keys = to_numpy(thresholds.ordered_keys(T(x)))
    assert np.all(np.diff(keys[[0, 1, 2, 4, 5, 6, 7]]) > 0)
    assert keys[3] == keys[4]  # -0.0 == +0.0
    inactive = thresholds.ordered_keys(T(x), active=keras.ops.zeros(8, "bool"))
    assert np.all(to_numpy(inactive) == thresholds.INT32_MIN)


@pytest.mark.parametrize("sizes", [[50], [30, 1, 17], [300_000], [200_000, 90_000, 13]])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.98, 0.999])
def test_top_k_is_exact(sizes, sparsity):
    rng = np.random.default_rng(len(sizes))
    scores = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    n = sum(sizes)
    k = max(1, round(n * (1 - sparsity)))
    masks = backend.compile(lambda s: thresholds.top_k_masks(s, k))([T(s) for s in scores])
    expected = reference_masks(scores, k)
    assert sum(int(to_numpy(m).sum()) for m in masks) == k
    for m, e in zip(masks, expected):
        assert_equal(to_numpy(m), e)


@pytest.mark.parametrize("n", [40, 400_000])
def test_ties_keep_first_flat_indices(n):
    scores = [np.ones((n // 2,), np.float32), np.ones((n // 2,), np.float32)]
    k = n // 2 + 3
    masks = [to_numpy(m) for m in thresholds.top_k_masks([T(s) for s in scores], k)]
    assert masks[0].all()
    assert masks[1][:3].all() and not masks[1][3:].any()


@pytest.fixture(params=[(False, 2048), (False, 7), (True, 2048)],
                ids=["two-level", "two-level-short-rows", "in-place"])
def tie_break(request, monkeypatch):
    """Each tie-break: the two-level count, with rows of 7 (ties of one
    tensor in many rows, the last one padded), and the in-place one used
    under a keras.distribution (pure keras.ops, so every backend runs it)."""
    distributed, tie_row = request.param
    monkeypatch.setattr(backend, "is_distributed", lambda: distributed)
    monkeypatch.setattr(thresholds, "TIE_ROW", tie_row)


@pytest.mark.usefixtures("tie_break")
def test_both_tie_breaks_match_the_reference_on_any_shapes():
    rng = np.random.default_rng(5)
    scores = [np.round(rng.standard_normal((7, 9, 3)), 0).astype(np.float32),
              np.round(rng.standard_normal((40,)), 0).astype(np.float32),
              np.ones((3, 5), np.float32)]
    run = backend.compile(lambda s, k: thresholds.top_k_masks(s, k))
    for k in (1, 30, 100, 150, 204, 189 + 40 + 15):
        masks = run([T(s) for s in scores], T(k, "int32"))
        for m, e in zip(masks, reference_masks(scores, k)):
            assert_equal(to_numpy(m), e)


def reference_floored(scores, k, floors, active=None):
    """Numpy reference for `floors`: each tensor's best floor raised to +inf."""
    active = active or [np.ones(np.shape(s), bool) for s in scores]
    raised = []
    for s, f, a in zip(scores, floors, active):
        top = reference_masks([s], max(f, 1), [a])[0] & a & (f > 0)
        raised.append(np.where(top, np.inf, np.asarray(s, np.float64)))
    return reference_masks(raised, k, active)


@pytest.mark.usefixtures("tie_break")
def test_floors_keep_each_tensors_best_first():
    rng = np.random.default_rng(8)
    scores = [np.round(rng.standard_normal((7, 9, 3)), 0).astype(np.float32),  # ties
              rng.standard_normal((40,)).astype(np.float32) - 5.0,  # below the rest
              np.ones((3, 5), np.float32)]
    active = [rng.random(np.shape(s)) < 0.8 for s in scores]
    run = backend.compile(
        lambda s, a, k, f: thresholds.top_k_masks(s, k, a, floors=f))
    for k, floors in ((3, [1, 1, 1]), (20, [0, 7, 3]), (60, [40, 12, 0]), (150, [5, 30, 15]),
                      (210, [0, 0, 0])):
        masks = run([T(s) for s in scores], [T(a) for a in active], T(k, "int32"),
                    T(floors, "int32"))
        for m, e in zip(masks, reference_floored(scores, k, floors, active)):
            assert_equal(to_numpy(m), e)
        kept = [int(to_numpy(m).sum()) for m in masks]
        assert sum(kept) == k
        assert all(n >= min(f, int(a.sum())) for n, f, a in zip(kept, floors, active))


def test_inactive_entries_come_last():
    scores = [np.array([[5.0, 0.0], [0.0, 1.0]], np.float32)]
    active = [np.array([[False, True], [True, True]])]
    # Two active zeros outrank the inactive 5.0.
    masks = thresholds.top_k_masks([T(scores[0])], 3, active=[T(active[0])])
    assert_equal(to_numpy(masks[0]), [[False, True], [True, True]])
    assert_equal(to_numpy(masks[0]), reference_masks(scores, 3, active)[0])


def test_bracket_miss_falls_back_to_exact(monkeypatch):
    # A zero-width bracket misses almost always; the answer must stay exact.
    # (The TensorFlow kernel reads the same constants when it traces.)
    monkeypatch.setattr(numpy_kernels, "BRACKET_SIGMAS", 0.0)
    monkeypatch.setattr(numpy_kernels, "SAMPLE_SIZE", 64)
    monkeypatch.setattr(numpy_kernels, "SORT_ALL_BELOW", 100)
    rng = np.random.default_rng(3)
    scores = [np.round(rng.standard_normal(5000), 1).astype(np.float32)]  # many ties
    for k in (1, 17, 2500, 4999, 5000):
        masks = thresholds.top_k_masks([T(scores[0])], k)
        assert_equal(to_numpy(masks[0]), reference_masks(scores, k)[0])


def test_all_finite_flags_nan_and_inf():
    assert bool(to_numpy(thresholds.all_finite([T([1.0, 2.0])])))
    assert not bool(to_numpy(thresholds.all_finite([T([1.0]), T([np.nan])])))
    assert not bool(to_numpy(thresholds.all_finite([T([-np.inf])])))


def test_an_empty_tensor_in_the_pool_keeps_nothing_and_breaks_no_tie():
    scores = [np.zeros((0, 3), np.float32), np.ones((5,), np.float32)]
    run = backend.compile(lambda s, k, f: thresholds.top_k_masks(s, k, floors=f))
    masks = run([T(s) for s in scores], T(2, "int32"), T([0, 1], "int32"))
    assert to_numpy(masks[0]).shape == (0, 3)
    assert_equal(to_numpy(masks[1]), [True, True, False, False, False])
