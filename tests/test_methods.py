import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import backend
from keras_progprune import engine
from keras_progprune import experiment
from keras_progprune import methods
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.methods import lottery as lottery_lib
from keras_progprune import scores
from conftest import make_mnist_dir
from conftest import assert_close, assert_equal, to_numpy

L = keras.layers


def _wrapped(layers, input_dim, dtype="float32"):
    inp = keras.Input((input_dim,), dtype=dtype)
    x = inp
    for layer in layers:
        x = kp.PruningWrapper(layer)(x)
    return keras.Model(inp, x)


def test_registry_lists_methods_and_registers_new_ones():
    assert methods.available_methods() == sorted(
        ["dense", "grasp", "lottery", "progressive", "random", "snip", "synflow"])
    with pytest.raises(ValueError, match=r"Unknown pruning method\. Received: method='obd'\. "
                       r"Valid methods: \['dense', 'grasp'.*register_method\(name, cls\)"):
        methods.get_method("obd")

    class GlobalOnly(methods.Random):
        name = "global_only_random"
        scopes = ("global",)

    methods.register_method("global_only_random", GlobalOnly)
    assert methods.get_method("global_only_random") is GlobalOnly
    with pytest.raises(ValueError, match=r"Method 'global_only_random' does not support "
                       r"scope='layer'\. Supported: \('global',\)"):
        GlobalOnly(0.5, scope="layer")
    with pytest.raises(ValueError, match=r"already registered \(GlobalOnly\)"):
        methods.register_method("global_only_random", methods.Snip)
    with pytest.raises(ValueError, match=r"`cls` must be a subclass of .*PruningMethod\. "
                       r"Received: cls=3"):
        methods.register_method("x", 3)


def test_default_scopes():
    assert methods.Snip(0.5).scope == methods.Grasp(0.5).scope == "global"
    assert methods.SynFlow(0.5).scope == "global" and methods.Progressive(0.5).scope == "global"
    assert methods.Random(0.5, scope="layer").scope == "layer"


def test_snip_scores_equal_hand_computed_gradients():
    dense = L.Dense(1, use_bias=False)
    model = _wrapped([dense], 2)
    dense.kernel.assign([[0.5], [-1.0]])
    batch = (np.array([[1.0, 2.0]], np.float32), np.array([[0.0]], np.float32))
    # L = (x.w - y)^2 = (0.5 - 2)^2; dL/dw = 2 * (-1.5) * x = [-3, -6]
    (s,) = scores.snip_scores(model, keras.losses.MeanSquaredError(), [batch], [dense.kernel])
    assert_close(s, [[1.5], [6.0]], rtol=1e-6)


def test_grasp_hessian_gradient_product_matches_finite_differences():
    keras.utils.set_random_seed(3)
    # float64 (JAX computes in float32 unless x64 is enabled: a coarser step).
    dtype = "float32" if backend.name() == "jax" else "float64"
    l1, l2 = L.Dense(4, activation="tanh", dtype=dtype), L.Dense(3, dtype=dtype)
    model = _wrapped([l1, l2], 5, dtype=dtype)
    rng = np.random.default_rng(0)
    batch = (rng.standard_normal((8, 5)), rng.integers(0, 3, 8))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
    weights = [l1.kernel, l1.bias, l2.kernel]
    hg = scores.hessian_gradient_product(model, loss, [batch], weights)
    g = scores.gradients(model, loss, [batch], weights)
    eps, tolerance = (1e-4, dict(rtol=1e-2, atol=5e-5)) if dtype == "float64" else (
        3e-2, dict(rtol=5e-2, atol=5e-4))
    base = [w.numpy() for w in weights]

    def grad_at(sign):
        for w, b, d in zip(weights, base, g):
            w.assign(b + sign * eps * to_numpy(d))
        out = scores.gradients(model, loss, [batch], weights)
        for w, b in zip(weights, base):
            w.assign(b)
        return out

    plus, minus = grad_at(1.0), grad_at(-1.0)
    for h, p, m in zip(hg, plus, minus):
        assert_close(h, (to_numpy(p) - to_numpy(m)) / (2 * eps), **tolerance)
    keep = scores.grasp_scores(model, loss, [batch], weights)
    assert_close(keep[0], base[0] * to_numpy(hg[0]), rtol=1e-5)


def test_synflow_scores_match_the_closed_form():
    layers = [L.Dense(3, use_bias=False), L.Dense(4, use_bias=False), L.Dense(2, use_bias=False)]
    model = _wrapped(layers, 5)
    w1, w2, w3 = [np.asarray(l.kernel.numpy()) for l in layers]
    s = scores.synflow_scores(model, [l.kernel for l in layers], (5,))
    a1 = np.ones(5) @ np.abs(w1)            # flow into layer 2
    b3 = np.abs(w3) @ np.ones(2)            # flow out of layer 2
    assert_close(s[1], np.abs(w2) * np.outer(a1, b3), rtol=1e-5)
    b2 = np.abs(w2) @ b3
    assert_close(s[0], np.abs(w1) * np.outer(np.ones(5), b2), rtol=1e-5)
    # Signs are restored afterwards.
    assert_equal(layers[0].kernel.numpy(), w1)


def test_synflow_round_schedule_is_exponential():
    m = methods.SynFlow(0.99, rounds=4)
    dens = 1 - np.array(m.round_sparsities())
    assert_close(dens, 0.01 ** (np.arange(1, 5) / 4))
    with pytest.raises(ValueError, match=r"`rounds` must be >= 1\. Received: rounds=0"):
        methods.SynFlow(0.5, rounds=0)


def test_random_mask_is_exact_and_seeded():
    def mask(seed, sparsity=0.9):
        model = _wrapped([L.Dense(30), L.Dense(20)], 40)
        method = methods.Random(sparsity, scope="layer", seed=seed)
        groups = engine.build_groups(wrapper_lib.collect_wrappers(model))
        method.set_masks(model, groups, methods.ScoringInputs(seed=0))
        return [m.numpy() for w in wrapper_lib.collect_wrappers(model) for m in w.masks]

    a, b, c = mask(1), mask(1), mask(2)
    assert [int(m.sum()) for m in a] == [round(40 * 30 * 0.1), round(30 * 20 * 0.1)]
    for x, y in zip(a, b):
        assert_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("target,rate", [(0.98, 0.2), (0.9, 0.2), (0.5, 0.3), (0.2, 0.2)])
def test_lottery_rounds_follow_rate_and_land_on_target(target, rate):
    s = lottery_lib.round_sparsities(target, rate)
    assert len(s) == lottery_lib.rounds_needed(target, rate)
    assert s[-1] == target
    for prev, cur in zip([0.0] + s[:-1], s[:-1]):
        assert 1 - (1 - cur) / (1 - prev) == pytest.approx(rate)
    assert lottery_lib.rounds_needed(0.98, 0.2) == 18  # the paper's count


def test_lottery_milestones_are_landed_on_exactly():
    s = lottery_lib.round_sparsities(0.99, 0.2, milestones=[0.9, 0.95, 0.98])
    for m in (0.9, 0.95, 0.98, 0.99):
        assert m in s
    assert all(b > a for a, b in zip(s, s[1:]))
    assert all(1 - (1 - b) / (1 - a) <= 0.2 + 1e-9 for a, b in zip([0.0] + s, s))


def test_lottery_bad_rate_and_rewind():
    for rate in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=rf"`rate` must be in \(0, 1\)\. Received: rate={rate}"):
            methods.Lottery(0.9, rate=rate)
    with pytest.raises(ValueError, match=r"`rewind_step` must be >= 0\. Received: rewind_step=-2"):
        methods.Lottery(0.9, rewind_step=-2)


def test_lottery_rewind_restores_survivors_exactly():
    model = kp.prune_low_magnitude(_wrapped_plain(), kp.ConstantSparsity(0.0, 0, end_step=0))
    method = methods.Lottery(0.5)
    saved = [w.numpy().copy() for w in model.weights]
    for w in model.trainable_weights:
        w.assign(w + 1.0)  # "training"
    for group in engine.build_groups(wrapper_lib.collect_wrappers(model)):
        group.update(0.5)
    method._rewind(model, saved)
    for wrapper in wrapper_lib.collect_wrappers(model):
        for w, m in zip(wrapper.pruned_weights, wrapper.masks):
            index = [id(v) for v in model.weights].index(id(w))
            keep = m.numpy() == 1
            assert_equal(w.numpy()[keep], saved[index][keep])
            assert np.all(w.numpy()[~keep] == 0.0) and (~keep).sum() > 0


def _wrapped_plain():
    inp = keras.Input((6,))
    return keras.Model(inp, L.Dense(2, name="b")(L.Dense(5, name="a")(inp)))


def _tiny_config(tmp_path, method, **kw):
    values = dict(model="lenet_300_100", dataset="mnist", method=method, epochs=1,
                  batch_size=8, data_dir=make_mnist_dir(tmp_path / "mnist", train=40, test=16),
                  validation_size=8, output_dir=str(tmp_path / method), verbose="0",
                  target_sparsity=0.9, prune_end=0, frequency=1)
    values.update(kw)
    return experiment.Config(**values)


_SLOW = pytest.mark.slow  # the other scope of each method runs on every backend


@pytest.mark.parametrize("method,scope", [
    ("progressive", "global"), pytest.param("progressive", "layer", marks=_SLOW),
    ("random", "layer"), pytest.param("random", "global", marks=_SLOW),
    ("snip", "global"), pytest.param("snip", "layer", marks=_SLOW), ("grasp", "global"),
    ("synflow", "global"), pytest.param("synflow", "layer", marks=_SLOW),
    ("lottery", "global"), pytest.param("lottery", "layer", marks=_SLOW),
])
def test_every_method_reaches_the_target_through_the_runner(tmp_path, method, scope):
    options = {"rounds": 5} if method == "synflow" else {}
    if method == "lottery":
        options = {"rate": 0.6, "rewind_step": 1}
    results = experiment.run(_tiny_config(tmp_path, method, scope=scope,
                                          method_options=options))
    total = results["sparsity"]["total"]
    assert abs(total["zeros"] - round(0.9 * total["weights"])) <= (
        3 if scope == "layer" else 1)
    if scope == "layer":
        for r in results["sparsity"]["layers"].values():
            assert abs(r["zeros"] - round(0.9 * r["weights"])) <= 1
    if method == "lottery":
        assert [r["round"] for r in results["rounds"]] == [0, 1, 2, 3]
        assert results["rounds"][-1]["target_sparsity"] == 0.9
        assert results["steps"] == 4 * results["steps_per_epoch"]
        assert (tmp_path / "lottery" / "rounds.csv").exists()
    else:
        assert results["steps"] == results["steps_per_epoch"]


def test_dense_method_keeps_every_weight(tmp_path):
    results = experiment.run(_tiny_config(tmp_path, "dense"))
    assert results["sparsity"]["total"]["zeros"] == 0


def test_lottery_rewind_past_the_end_of_training(tmp_path):
    config = _tiny_config(tmp_path, "lottery", method_options={"rewind_step": 10})
    with pytest.raises(ValueError, match=r"`rewind_step` must be inside the first training run "
                       r"of 4 steps\. Received: rewind_step=10"):
        experiment.run(config)


def test_unknown_method_option(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['bogus'\] for method 'snip'\. "
                       r"Received: method_options=\{'bogus': 1\}\. Accepted: \['batches'\]"):
        experiment.run(_tiny_config(tmp_path, "snip", method_options={"bogus": 1}))
