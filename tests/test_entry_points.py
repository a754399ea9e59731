"""Every method works with a plain `model.fit`, without the experiment runner."""

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import wrapper as wrapper_lib
from conftest import data, mlp
from conftest import assert_close, assert_equal

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize("method,kwargs", [
    ("snip", {}), ("grasp", {"temperature": 10.0}), ("synflow", {"rounds": 3}),
    ("random", {}),
])
def test_prune_at_init_then_plain_fit(method, kwargs):
    x, y = data(64)
    ds = __import__("tensorflow").data.Dataset.from_tensor_slices((x, y)).batch(16)
    pruned = kp.prune_at_init(mlp(), method, 0.75, data=ds.take(1), loss=LOSS, **kwargs)
    masks = [m.numpy().copy() for w in wrapper_lib.collect_wrappers(pruned) for m in w.masks]
    pruned.compile("adam", LOSS)
    pruned.fit(ds, epochs=2, verbose=0, callbacks=[kp.ProgressivePruningCallback()])
    after = [m.numpy() for w in wrapper_lib.collect_wrappers(pruned) for m in w.masks]
    for a, b in zip(masks, after):
        assert_equal(a, b)  # fixed at initialization
    report = kp.sparsity_report(kp.strip_pruning(pruned))
    assert report["total"]["sparsity"] == pytest.approx(0.75, abs=0.01)


def test_prune_at_init_accepts_a_loss_name_and_uses_batches_option():
    x, y = data(32)
    pruned = kp.prune_at_init(mlp(), "snip", 0.5, data=[(x[:16], y[:16]), (x[16:], y[16:])],
                              loss="sparse_categorical_crossentropy", batches=2)
    assert kp.sparsity_report(pruned)["total"]["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_prune_at_init_errors():
    with pytest.raises(ValueError, match=r"Method 'snip' scores weights on training data: "
                                         r"pass `data`.*Received: data=None, loss=None"):
        kp.prune_at_init(mlp(), "snip", 0.5)
    with pytest.raises(ValueError, match=r"`data` was empty"):
        kp.prune_at_init(mlp(), "grasp", 0.5, data=[], loss=LOSS)
    with pytest.raises(ValueError, match=r"Method 'progressive' does not prune at "
                                         r"initialization\. Received: method='progressive'"):
        kp.prune_at_init(mlp(), "progressive", 0.5)
    with pytest.raises(ValueError, match=r"Unknown pruning method\. Received: method='x'"):
        kp.prune_at_init(mlp(), "x", 0.5)
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['bogus'\] for method "
                                         r"'synflow'\. Received: options=\{'bogus': 1\}\. "
                                         r"Accepted: \['rounds'\]"):
        kp.prune_at_init(mlp(), "synflow", 0.5, bogus=1)
    with pytest.raises(ValueError, match=r"`target_sparsity` must be in \[0, 1\)\. "
                                         r"Received: target_sparsity=1\.5"):
        kp.prune_at_init(mlp(), "random", 1.5)


def test_lottery_ticket_with_a_users_own_fit():
    x, y = data(64)
    seen = []

    def train_round(model, callbacks):
        model.compile(keras.optimizers.Adam(1e-2), LOSS)
        seen.append(len(callbacks))
        return model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=callbacks)

    initial = mlp()
    init_values = [w.numpy().copy() for w in initial.weights]
    pruned, rounds = kp.lottery_ticket(initial, train_round, 0.6, rate=0.5, rewind_step=0,
                                       evaluate=lambda m: 0.5)
    assert [round(r["sparsity"], 2) for r in rounds] == [0.0, 0.5, 0.6]
    assert [r["steps"] for r in rounds] == [4, 4, 4]
    assert all(r["score"] == 0.5 for r in rounds)
    assert isinstance(rounds[-1]["result"], keras.callbacks.History)
    assert seen == [2, 2, 2]
    # The user's model is untouched.
    for v, value in zip(initial.weights, init_values):
        assert_equal(v.numpy(), value)


def test_lottery_ticket_rewinds_survivors_to_the_rewind_step():
    x, y = data(32)
    snapshots = []

    def train_round(model, callbacks):
        model.compile(keras.optimizers.SGD(0.1), LOSS)
        wrappers = wrapper_lib.collect_wrappers(model)
        snapshots.append([w.pruned_weights[0].numpy().copy() for w in wrappers])
        return model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=callbacks)

    pruned, rounds = kp.lottery_ticket(mlp(), train_round, 0.5, rate=0.5, rewind_step=0)
    wrappers = wrapper_lib.collect_wrappers(pruned)
    # Round 1 started from round 0's initial weights, masked.
    for w0, w1, wr in zip(snapshots[0], snapshots[1], wrappers):
        assert_close(w1, w0 * wr.masks[0].numpy())


def test_lottery_ticket_rewind_step_beyond_round_0_is_refused():
    x, y = data(32)

    def train_round(model, callbacks):
        model.compile("sgd", LOSS)
        return model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=callbacks)

    with pytest.raises(ValueError, match=r"`rewind_step` must be inside the first training "
                                         r"round, which ran 2 steps\. Received: "
                                         r"rewind_step=5"):
        kp.lottery_ticket(mlp(), train_round, 0.5, rewind_step=5)
