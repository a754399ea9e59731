import numpy as np
import pytest
import tensorflow as tf

from keras_progprune import thresholds


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
    keys = thresholds.ordered_keys(tf.constant(x)).numpy()
    assert np.all(np.diff(keys[[0, 1, 2, 4, 5, 6, 7]]) > 0)
    assert keys[3] == keys[4]  # -0.0 == +0.0
    inactive = thresholds.ordered_keys(tf.constant(x), active=tf.zeros(8, tf.bool))
    assert np.all(inactive.numpy() == thresholds.INT32_MIN)


@pytest.mark.parametrize("sizes", [[50], [30, 1, 17], [300_000], [200_000, 90_000, 13]])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.98, 0.999])
def test_top_k_is_exact(sizes, sparsity):
    rng = np.random.default_rng(len(sizes))
    scores = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    n = sum(sizes)
    k = max(1, round(n * (1 - sparsity)))
    masks = tf.function(lambda s: thresholds.top_k_masks(s, k))(
        [tf.constant(s) for s in scores])
    expected = reference_masks(scores, k)
    assert sum(int(tf.reduce_sum(tf.cast(m, tf.int32))) for m in masks) == k
    for m, e in zip(masks, expected):
        np.testing.assert_array_equal(m.numpy(), e)


@pytest.mark.parametrize("n", [40, 400_000])
def test_ties_keep_first_flat_indices(n):
    scores = [np.ones((n // 2,), np.float32), np.ones((n // 2,), np.float32)]
    k = n // 2 + 3
    masks = thresholds.top_k_masks([tf.constant(s) for s in scores], k)
    assert masks[0].numpy().all()
    assert masks[1].numpy()[:3].all() and not masks[1].numpy()[3:].any()


def test_inactive_entries_come_last():
    scores = [tf.constant([[5.0, 0.0], [0.0, 1.0]])]
    active = [tf.constant([[False, True], [True, True]])]
    # Two active zeros outrank the inactive 5.0.
    masks = thresholds.top_k_masks(scores, 3, active=active)
    np.testing.assert_array_equal(masks[0].numpy(), [[False, True], [True, True]])
    np.testing.assert_array_equal(
        masks[0].numpy(), reference_masks([scores[0].numpy()], 3, [active[0].numpy()])[0])


def test_bracket_miss_falls_back_to_exact(monkeypatch):
    # A zero-width bracket misses almost always; the answer must stay exact.
    monkeypatch.setattr(thresholds, "_BRACKET_SIGMAS", 0.0)
    monkeypatch.setattr(thresholds, "_SAMPLE_SIZE", 64)
    monkeypatch.setattr(thresholds, "_SORT_ALL_BELOW", 100)
    rng = np.random.default_rng(3)
    scores = [np.round(rng.standard_normal(5000), 1).astype(np.float32)]  # many ties
    for k in (1, 17, 2500, 4999, 5000):
        masks = thresholds.top_k_masks([tf.constant(scores[0])], k)
        np.testing.assert_array_equal(masks[0].numpy(), reference_masks(scores, k)[0])


def test_all_finite_flags_nan_and_inf():
    assert bool(thresholds.all_finite([tf.constant([1.0, 2.0])]))
    assert not bool(thresholds.all_finite([tf.constant([1.0]), tf.constant([np.nan])]))
    assert not bool(thresholds.all_finite([tf.constant([-np.inf])]))
