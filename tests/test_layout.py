"""The package's shape: public Keras API only, and the core apart from the runner."""

import ast
import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import walk
from conftest import assert_close

PACKAGE = os.path.dirname(kp.__file__)


# Keras and KerasHub internals the package reads or patches (walk.py says
# why, for each, and the versions it was checked against).
PRIVATE_KERAS = ("_flatten_layers", "_nodes_by_depth", "_functional", "_call_has_",
                 "_inbound_nodes", "_outbound_nodes", "_is_default", "_modules", "_layers",
                 "state_mapping", "make_train_function")


def _private_uses(tree):
    """Line numbers where `tree` touches a Keras or KerasHub internal."""
    for node in ast.walk(tree):
        imported = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        private = isinstance(node, ast.Attribute) and (
            node.attr in PRIVATE_KERAS or node.attr.startswith("_call_has_") or (
                node.attr == "src" and isinstance(node.value, ast.Name)
                and node.value.id in ("keras", "keras_hub")))
        named = isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
            node.value.startswith(p) for p in ("keras.src", "keras_hub.src"))
        if private or named or any(n.startswith(("keras.src", "keras_hub.src"))
                                   for n in imported):
            yield node.lineno


def test_private_keras_api_is_used_in_one_place_only():
    hits = []
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            hits += [f"{os.path.relpath(path, PACKAGE)}:{line}"
                     for line in _private_uses(ast.parse(open(path).read()))]
    assert {h.split(":")[0] for h in hits} == {"walk.py"}, hits


def test_the_private_api_check_sees_each_kind_of_use():
    code = ("import keras_hub.src.models.x\n"
            "from keras.src import ops\n"
            "block._layers[0] = new\n"
            "scope.state_mapping.update({})\n"
            "model.make_train_function = f\n"
            "PATH = 'keras_hub.src.layers.modeling.transformer_encoder'\n")
    assert sorted(set(_private_uses(ast.parse(code)))) == [1, 2, 3, 4, 5, 6]


# Where `import tensorflow` may appear: the seam's TensorFlow file, the LiteRT
# export and the experiment runner (tf.data pipelines, SavedModel serving).
TENSORFLOW_ALLOWED = ("backend/tensorflow.py", "litert.py", "litert_convert.py", "experiments/")


def _modules():
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                yield os.path.relpath(path, PACKAGE).replace(os.sep, "/"), path


def test_tensorflow_is_imported_only_behind_the_seam():
    offenders = []
    for rel, path in _modules():
        if rel.startswith(TENSORFLOW_ALLOWED):
            continue
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "tensorflow" or n.startswith("tensorflow.") for n in names):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders


def _imports(path, rel):
    """`(module, lineno, at_top)` for every import in the file, inside
    functions included; relative imports resolved."""
    package = "keras_progprune." + rel[:-3].replace("/", ".")
    package = package.removesuffix(".__init__") if rel.endswith("__init__.py") \
        else package.rsplit(".", 1)[0]
    tree = ast.parse(open(path).read())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                candidate = f"{base}.{a.name}"
                known = (candidate.replace(".", "/") + ".py" in _ALL
                         or candidate.replace(".", "/") + "/__init__.py" in _ALL)
                yield candidate if known else base, node.lineno, id(node) in top


def _package_imports(path, rel):
    """keras_progprune modules that `rel` imports, anywhere in the file."""
    package = "keras_progprune." + rel[:-3].replace("/", ".").removesuffix(".__init__")
    found = {m for m, _, _ in _imports(path, rel) if m.startswith("keras_progprune")}
    found.discard(package)
    return found


# What a function may import on first use instead of at the top of its
# module, and why. Anything else is imported at the top, where the cycle
# test and a reader see it.
LAZY_IMPORTS = {
    "keras_hub": "optional (KerasHub models only), and it imports TensorFlow",
    "keras_progprune.hub_layers": "subclasses KerasHub's blocks, so it imports KerasHub",
    "matplotlib": "optional: only `SparsityReport.plot` and the runner's plots draw",
    "keras_progprune.report_plot": "imports matplotlib",
    "tensorflow": "the LiteRT converter, only where it converts: JAX and PyTorch users "
                  "never import TensorFlow",
    "tensorflow_datasets": "only when a tfds dataset is loaded",
    "ai_edge_litert": "optional `[litert]` extra: only where a .tflite file is run",
    "cloudpickle": "only when a user's class travels to the TensorFlow child",
}


def test_functions_import_only_optional_dependencies():
    offenders = []
    for rel, path in _modules():
        for module, line, at_top in _imports(path, rel):
            if not at_top and not any(module == name or module.startswith(name + ".")
                                      for name in LAZY_IMPORTS):
                offenders.append(f"{rel}:{line} {module}")
    assert not offenders, (
        f"{offenders}: import these at the top of the module, or add the module to "
        "LAZY_IMPORTS with the reason it must wait.")


_ALL = {"keras_progprune/" + rel for rel, _ in _modules()}


def test_no_import_cycles_between_modules():
    graph = {}
    for rel, path in _modules():
        name = "keras_progprune." + rel[:-3].replace("/", ".").removesuffix(".__init__")
        graph[name] = {m for m in _package_imports(path, rel) if not name.startswith(m + ".")}
    # Package __init__ files re-export their modules: edges into a package are
    # edges into its __init__, which is allowed to import its children.
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                if not all(m == cycle[0] or cycle[0].startswith(m) for m in cycle[1:-1]):
                    raise AssertionError(" -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state and not node.endswith("keras_progprune"):
            visit(node, [node])


def test_modules_do_not_call_each_others_private_helpers():
    offenders = []
    for rel, path in _modules():
        tree = ast.parse(open(path).read())
        ours = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "keras_progprune"):
                ours.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                ours.update(a.asname or a.name for a in node.names
                            if a.name.startswith("keras_progprune"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
                    and node.value.id in ours):
                offenders.append(f"{rel}:{node.lineno} {node.value.id}.{node.attr}")
    assert not offenders, offenders


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_import_on_jax_and_torch_loads_no_tensorflow(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    code = ("import sys, keras_progprune as kp; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'); "
            "print(bad[:5]); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "KERAS_BACKEND": backend}, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]


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
    assert_close(pruned(x), model(x), rtol=1e-6)
    pruned.compile("adam", "mse")
    pruned.fit(x, np.zeros((8, 4)), verbose=0, callbacks=[kp.ProgressivePruningCallback()])
    plain = kp.strip_pruning(pruned)
    assert_close(plain(x), pruned(x), atol=1e-6)
    assert kp.sparsity_report(plain)["total"]["sparsity"] == pytest.approx(0.5)
    plain.save(tmp_path / "p.keras")
    again = keras.saving.load_model(tmp_path / "p.keras")
    assert_close(again(x), plain(x), atol=1e-6)


def test_strip_of_hand_wrapped_python_operator_model():
    inp = keras.Input((8,))
    h = kp.PruningWrapper(keras.layers.Dense(8))(inp)
    model = keras.Model(inp, keras.layers.Dense(4)(h + inp))
    plain = kp.strip_pruning(model)
    assert [type(l).__name__ for l in plain.layers] == ["InputLayer", "Dense", "Dense"]
