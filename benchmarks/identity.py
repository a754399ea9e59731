"""Wrapping as an identity, measured on the keras-io-style corpus.

For every model of `tests/user_models.py`: the largest output difference
from the user's model of the wrapped model, its strip and the `.keras`
round trips of both (0 is the goal), with `structure="unstructured"` and
`"channel"` (where the model has a removable channel). Then
keras.applications.Xception (random init, 71x71) at 80% sparsity: the
fraction of SeparableConv depthwise weights pruned, and the smallest kept
fraction of any kernel, by scope.

    KERAS_BACKEND=jax python -m benchmarks.identity

Writes its own section of BENCHMARKS.md, `benchmarks/results/
identity_<backend>.md` (which `benchmarks.report` assembles), and prints it.
About a minute; nothing is cached.
"""

import os
import sys
import tempfile

import keras
import numpy as np

import keras_progprune as kp
from keras_progprune import engine
from keras_progprune import wrapper as wrapper_lib

from benchmarks import common

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import user_models  # noqa: E402


def _outputs(model, x):
    y = model(x, training=False)
    return [np.asarray(keras.ops.convert_to_numpy(t))
            for t in (y if isinstance(y, (list, tuple)) else [y])]


def _gap(a, b):
    return max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))


def corpus_rows(backend):
    rows = []
    for name in sorted(user_models.CORPUS):
        if backend != "tensorflow" and name in user_models.STRING_MODELS:
            continue
        for structure in ("unstructured", "channel"):
            model, x = user_models.CORPUS[name]()
            expected = _outputs(model, x)
            try:
                wrapped = kp.prune_low_magnitude(model, structure=structure)
                stripped = kp.strip_pruning(wrapped)
                gaps = [_gap(expected, _outputs(wrapped, x)),
                        _gap(expected, _outputs(stripped, x))]
                with tempfile.TemporaryDirectory() as folder:
                    for label, m in (("w", wrapped), ("s", stripped)):
                        path = os.path.join(folder, f"{label}.keras")
                        kp.save_model(m, path)
                        gaps.append(_gap(expected, _outputs(kp.load_model(path), x)))
            except Exception as e:  # a refusal (ValueError) or a failure: both are results
                text = " ".join(str(e).split())[:70]
                rows.append((name, structure, f"{type(e).__name__}: {text}..."))
                continue
            rows.append((name, structure, " / ".join(f"{g:.3g}" for g in gaps)))
    return rows


def xception_rows():
    model = keras.applications.Xception(weights=None, input_shape=(71, 71, 3), classes=10,
                                        classifier_activation=None)
    rows = []
    for scope in ("layer", "global"):
        wrapped = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.8, 0), scope=scope)
        wrappers = wrapper_lib.collect_wrappers(wrapped)
        for group in engine.build_groups(wrappers, wrapped):
            group.update(0.8)
        stripped = kp.strip_pruning(wrapped)
        depthwise = [np.asarray(keras.ops.convert_to_numpy(layer.depthwise_kernel))
                     for layer in stripped.layers
                     if isinstance(layer, keras.layers.SeparableConv2D)]
        zero = float(np.mean([np.mean(d == 0) for d in depthwise]))
        least = min(float(np.mean(keras.ops.convert_to_numpy(m)))
                    for w in wrappers for m in w.masks)
        rows.append((scope, f"{zero:.3f}", f"{least:.4f}"))
    return rows


def section(backend):
    """The Markdown lines of this backend's measurement."""
    lines = [f"### {backend}", "",
             "| model | structure | max difference: wrapped / stripped / wrapped "
             "reloaded / stripped reloaded |", "| --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in corpus_rows(backend)]
    lines += ["", "| Xception at 80%, scope | depthwise weights pruned | least kept "
              "fraction of any kernel |", "| --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in xception_rows()]
    return lines + [""]


def main():
    backend = keras.backend.backend()
    lines = section(backend)
    path = os.path.join(common.RESULTS_DIR, f"identity_{backend}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print("wrote", path)


if __name__ == "__main__":
    main()
