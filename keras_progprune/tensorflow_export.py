"""Exports that need TensorFlow, from a model trained on any backend.

TensorFlow's LiteRT converter works only on the TensorFlow backend, and
PyTorch has no SavedModel exporter. A `.keras` file loads on every backend
(a Keras 3 promise), so on JAX and PyTorch the model is saved to a
temporary `.keras` file and a child Python process with
`KERAS_BACKEND=tensorflow` loads and exports it. On TensorFlow the export
runs in this process.

    python -m keras_progprune.tensorflow_export PLAN.json

PLAN.json lists `{"action", "model", "out", "options"}` jobs; an action is
`litert` (`export_litert`'s options) or `saved_model`. The user's own layer
classes travel to the child by value (cloudpickle, in `classes.pkl` beside
the plan), so a class defined in a script or a notebook loads there too;
the child also gets this process's `sys.path`.
"""

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

import keras

from keras_progprune import backend
from keras_progprune import litert_convert
from keras_progprune import prune
from keras_progprune import walk
from keras_progprune import wrapper as wrapper_lib

_CLASSES = "classes.pkl"


def child_objects(model, custom_objects=None):
    """The objects a TensorFlow child process needs to load `model`: every
    layer class from outside Keras, by its registered name, plus
    `custom_objects`.

    Raises:
        ValueError: for a class defined in `__main__` or inside a function
            that is neither registered nor in `custom_objects`: the child
            can't find it by name, and a saved file names it only.
    """
    objects = dict(custom_objects or {})
    given = {id(v) for v in objects.values()}
    unfound = []
    for name, cls in walk.outside_classes(model).items():
        if id(cls) in given:
            continue
        registered = keras.saving.get_registered_object(name) is cls
        hidden = cls.__module__ == "__main__" or "<locals>" in cls.__qualname__
        if hidden and not registered:
            unfound.append(cls)
            continue
        objects.setdefault(name, cls)
    if unfound:
        names = sorted({f"{c.__name__} (defined in {c.__module__})" for c in unfound})
        example = unfound[0].__name__
        raise ValueError(
            f"The export runs in a TensorFlow process that can't find the layer classes "
            f"{names}: a saved model names its classes, and these are neither registered "
            "nor importable there. Register each one with "
            "`@keras.saving.register_keras_serializable()` above its `class` line, or pass "
            f"them: `custom_objects={{{example!r}: {example}}}`.")
    return objects


def _child_error(output):
    """The child's last exception line, for the first line of the error."""
    lines = [line for line in output.strip().splitlines()
             if line[:1].isalpha() and ("Error" in line.split(":")[0]
                                        or "Exception" in line.split(":")[0])]
    return lines[-1] if lines else "(no exception line)"


def run(model, action, out, custom_objects=None, **options):
    """Runs `action` on `model` (a plain or pruned Keras model) in TensorFlow.

    Args:
        model: a `keras.Model`.
        action: `"litert"` or `"saved_model"`.
        out: the output path.
        custom_objects: optional dict of the user's classes and functions
            by name, for the TensorFlow child process (see `child_objects`).
        **options: JSON-serializable options of the action.

    Returns:
        `out`.

    Raises:
        RuntimeError: if the TensorFlow child process fails, with its output.
    """
    return run_many([(model, action, out, options)], custom_objects)[0]


def run_many(jobs, custom_objects=None):
    """Runs several `(model, action, out, options)` exports, in one TensorFlow
    child process on JAX and PyTorch (starting one costs seconds).

    Returns:
        The list of `out` paths.

    Raises:
        ValueError: for a user's class the child can't find (see
            `child_objects`), before the child starts.
        RuntimeError: if the child fails: its last exception first, then
            the end of its output.
    """
    if backend.name() == "tensorflow":
        return [_ACTIONS[action](model, out, **options) for model, action, out, options in jobs]
    objects = {}
    for model, _, _, _ in jobs:
        objects.update(child_objects(model, custom_objects))
    folder = tempfile.mkdtemp(prefix=".tf-export-",
                              dir=os.path.dirname(os.path.abspath(jobs[0][2])) or ".")
    try:
        plan = []
        for i, (model, action, out, options) in enumerate(jobs):
            path = os.path.join(folder, f"model{i}.keras")
            model.save(path, overwrite=True)
            plan.append({"action": action, "model": path, "out": os.path.abspath(out),
                         "options": options})
        with open(os.path.join(folder, "plan.json"), "w") as f:
            json.dump(plan, f)
        if objects:
            import cloudpickle  # noqa: PLC0415 - only when there are classes to send

            with open(os.path.join(folder, _CLASSES), "wb") as f:
                cloudpickle.dump(objects, f)
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # The modules this process imported its classes from (a script's
        # folder, a test folder) import in the child too.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        done = subprocess.run(
            [sys.executable, "-m", "keras_progprune.tensorflow_export",
             os.path.join(folder, "plan.json")],
            env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            actions = ", ".join(repr(job[1]) for job in jobs)
            output = done.stdout + done.stderr
            raise RuntimeError(
                f"The TensorFlow process that runs the {actions} export failed (exit "
                f"code {done.returncode}): {_child_error(output)}\nIts output ends "
                "with:\n" + output[-3000:])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [job[2] for job in jobs]


def export_saved_model(model, path, custom_objects=None):
    """Strips the pruning wrappers and writes a TensorFlow SavedModel.

    The same as `kp.strip_pruning(model).export(path)` on TensorFlow, and it
    works from every backend: on JAX and PyTorch (whose Keras has no
    SavedModel exporter for PyTorch, and exports JAX through jax2tf) the
    stripped model is exported from a TensorFlow child process, through a
    `.keras` file. Serve it with `tf.saved_model.load(path).serve(x)`.

    Args:
        model: a pruned (wrapped) or plain Sequential/Functional model.
        path: str or path, the SavedModel folder to write.
        custom_objects: optional dict `{name: class or function}` of the
            model's own classes that are not registered with
            `keras.saving.register_keras_serializable` (on JAX and PyTorch,
            where the child process must load them). Registered classes,
            those of importable modules and Keras's own need nothing.

    Returns:
        `path`, as a string.

    Raises:
        ValueError: on JAX and PyTorch, for a class defined in a script or
            a function that is neither registered nor in `custom_objects`.
        RuntimeError: if the TensorFlow child process fails, with its last
            exception and the end of its output.

    Examples:
        >>> import os, tempfile, keras, keras_progprune as kp
        >>> model = kp.prune_low_magnitude(
        ...     keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
        >>> path = kp.export_saved_model(model, os.path.join(tempfile.mkdtemp(), "served"))
        >>> os.path.exists(os.path.join(path, "saved_model.pb"))
        True
    """
    path = os.fspath(path)
    plain = prune.strip_pruning(model) if wrapper_lib.collect_wrappers(model) else model
    return run(plain, "saved_model", path, custom_objects)


def _litert(model, out, **options):
    return litert_convert.convert(model, out, **options)


def _saved_model(model, out):
    model.export(out, verbose=False)
    return out


_ACTIONS = {"litert": _litert, "saved_model": _saved_model}


def _main(argv):
    (plan_path,) = argv
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("keras_progprune.tensorflow_export runs with KERAS_BACKEND=tensorflow.")
    with open(plan_path) as f:
        plan = json.load(f)
    objects = None
    classes = os.path.join(os.path.dirname(plan_path), _CLASSES)
    if os.path.exists(classes):
        with open(classes, "rb") as f:
            objects = pickle.load(f)  # written by the parent just before
    for job in plan:
        model = keras.saving.load_model(job["model"], custom_objects=objects)
        _ACTIONS[job["action"]](model, job["out"], **job["options"])


if __name__ == "__main__":
    _main(sys.argv[1:])
