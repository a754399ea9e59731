"""The package's shape: public Keras API only, and the core apart from the runner."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import walk

PACKAGE = os.path.dirname(kp.__file__)


def test_private_keras_api_is_used_in_one_place_only():
    hits = []
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path) as f:
                    for i, line in enumerate(f, 1):
                        code = line.split("#")[0]
                        if re.search(r"keras\.src|_flatten_layers|_call_has_", code):
                            hits.append(f"{os.path.relpath(path, PACKAGE)}:{i}")
    assert [h.split(":")[0] for h in hits] == ["walk.py"], hits


def test_core_package_imports_neither_the_runner_nor_its_extras():
    # (matplotlib is left out: Keras itself imports it when it is installed.)
    code = ("import sys, keras_progprune as kp; "
            "bad = [m for m in ('keras_progprune.experiments', 'keras_progprune.experiment', "
            "'tensorflow_datasets') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stdout + out.stderr


def test_old_experiment_module_still_exports_the_runner():
    from keras_progprune import experiment, experiments

    assert experiment.Config is experiments.Config and experiment.run is experiments.run


def test_walk_helpers():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="in_d")],
                             name="inner")
    inp = keras.Input((3,))
    out = keras.layers.Dense(2, name="outer_d")(inner(inp) + inp[:, :2])
    model = keras.Model(inp, out)
    names = [l.name for l in walk.sublayers(model)]
    assert "in_d" in names and "outer_d" in names and "inner" in names
    assert walk.is_graph_model(model) and walk.is_graph_model(inner)

    class Sub(keras.Model):
        def call(self, x):
            return x

    assert not walk.is_graph_model(Sub())
    assert not walk.is_layer(model.operations[-2])  # the `+` node
    assert walk.call_accepts(keras.layers.Dropout(0.1), "training")
    assert not walk.call_accepts(keras.layers.Dense(2), "mask")


def _python_operator_model():
    inp = keras.Input((8,))
    h = keras.layers.Dense(8, name="d1")(inp)
    x = keras.ops.relu(h + inp)[:, :6] * 2.0
    return keras.Model(inp, keras.layers.Dense(4, name="d2")(x))


def test_python_operators_prune_train_strip_and_reload(tmp_path):
    model = _python_operator_model()
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.5, 0))
    x = np.random.default_rng(0).standard_normal((8, 8)).astype("float32")
    np.testing.assert_allclose(pruned(x), model(x), rtol=1e-6)
    pruned.compile("adam", "mse")
    pruned.fit(x, np.zeros((8, 4)), verbose=0, callbacks=[kp.ProgressivePruningCallback()])
    plain = kp.strip_pruning(pruned)
    np.testing.assert_allclose(plain(x), pruned(x), atol=1e-6)
    assert kp.sparsity_report(plain)["total"]["sparsity"] == pytest.approx(0.5)
    plain.save(tmp_path / "p.keras")
    again = keras.saving.load_model(tmp_path / "p.keras")
    np.testing.assert_allclose(again(x), plain(x), atol=1e-6)


def test_strip_of_hand_wrapped_python_operator_model():
    inp = keras.Input((8,))
    h = kp.PruningWrapper(keras.layers.Dense(8))(inp)
    model = keras.Model(inp, keras.layers.Dense(4)(h + inp))
    plain = kp.strip_pruning(model)
    assert [type(l).__name__ for l in plain.layers] == ["InputLayer", "Dense", "Dense"]
