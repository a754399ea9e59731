"""Exports that need TensorFlow, from a model trained on any backend.

TensorFlow's LiteRT converter works only on the TensorFlow backend, and
PyTorch has no SavedModel exporter. A `.keras` file loads on every backend
(a Keras 3 promise), so on JAX and PyTorch the model is saved to a
temporary `.keras` file and a child Python process with
`KERAS_BACKEND=tensorflow` loads and exports it. On TensorFlow the export
runs in this process.

    python -m keras_progprune.tensorflow_export PLAN.json

PLAN.json lists `{"action", "model", "out", "options"}` jobs; an action is
`litert` (`export_litert`'s options) or `saved_model`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import keras

from keras_progprune import backend
from keras_progprune import engine
from keras_progprune import prune


def run(model, action, out, **options):
    """Runs `action` on `model` (a plain or pruned Keras model) in TensorFlow.

    Args:
        model: a `keras.Model`.
        action: `"litert"` or `"saved_model"`.
        out: the output path.
        **options: JSON-serializable options of the action.

    Returns:
        `out`.

    Raises:
        RuntimeError: if the TensorFlow child process fails, with its output.
    """
    return run_many([(model, action, out, options)])[0]


def run_many(jobs):
    """Runs several `(model, action, out, options)` exports, in one TensorFlow
    child process on JAX and PyTorch (starting one costs seconds).

    Returns:
        The list of `out` paths.
    """
    if backend.name() == "tensorflow":
        return [_ACTIONS[action](model, out, **options) for model, action, out, options in jobs]
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
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        done = subprocess.run(
            [sys.executable, "-m", "keras_progprune.tensorflow_export",
             os.path.join(folder, "plan.json")],
            env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            actions = ", ".join(repr(job[1]) for job in jobs)
            raise RuntimeError(
                f"The TensorFlow process that runs the {actions} export failed (exit "
                f"code {done.returncode}). Its output ends with:\n"
                + (done.stdout + done.stderr)[-3000:])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [job[2] for job in jobs]


def export_saved_model(model, path):
    """Strips the pruning wrappers and writes a TensorFlow SavedModel.

    The same as `kp.strip_pruning(model).export(path)` on TensorFlow, and it
    works from every backend: on JAX and PyTorch (whose Keras has no
    SavedModel exporter for PyTorch, and exports JAX through jax2tf) the
    stripped model is exported from a TensorFlow child process, through a
    `.keras` file. Serve it with `tf.saved_model.load(path).serve(x)`.

    Args:
        model: a pruned (wrapped) or plain Sequential/Functional model.
        path: str or path, the SavedModel folder to write.

    Returns:
        `path`, as a string.

    Raises:
        RuntimeError: if the TensorFlow child process fails, with its output.

    Examples:
        >>> import os, tempfile, keras, keras_progprune as kp
        >>> model = kp.prune_low_magnitude(
        ...     keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
        >>> path = kp.export_saved_model(model, os.path.join(tempfile.mkdtemp(), "served"))
        >>> os.path.exists(os.path.join(path, "saved_model.pb"))
        True
    """
    path = os.fspath(path)
    plain = prune.strip_pruning(model) if engine.collect_wrappers(model) else model
    return run(plain, "saved_model", path)


def _litert(model, out, **options):
    from keras_progprune import litert  # noqa: PLC0415 - TensorFlow only

    return litert.export_litert(model, out, **options)


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
    for job in plan:
        model = keras.saving.load_model(job["model"])
        _ACTIONS[job["action"]](model, job["out"], **job["options"])


if __name__ == "__main__":
    _main(sys.argv[1:])
