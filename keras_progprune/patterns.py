"""Checks that weights carry an N:M pattern, in a Keras model or a `.tflite` file.

Like tfmot's `check_sparsity_m_by_n` tool: per weight, every run of `m`
consecutive entries along the input-channel axis holds at most `n` non-zeros.
"""

import os

import keras
import numpy as np

from keras_progprune import litert
from keras_progprune import registry
from keras_progprune import report as report_lib
from keras_progprune import structures
from keras_progprune import wrapper as wrapper_lib


class PatternReport(dict):
    """`{weight name: {"holds", "groups", "violations", "reason"}}`, printable.

    `holds` is True when every group has at most n non-zeros. `all_hold`
    is True when every checked weight holds.
    """

    @property
    def all_hold(self):
        return bool(self) and all(r["holds"] for r in self.values())

    def __str__(self):
        width = max([len("weight")] + [len(k) for k in self])
        lines = [f"{'weight':<{width}}  {'holds':>5}  {'groups':>8}  {'bad':>8}  note"]
        for name, r in self.items():
            lines.append(f"{name:<{width}}  {str(r['holds']):>5}  {r['groups']:>8,}  "
                         f"{r['violations']:>8,}  {r['reason']}")
        return "\n".join(lines)


def _check(values, n, m, axis):
    values = np.asarray(values)
    if values.ndim < 2:
        return {"holds": False, "groups": 0, "violations": 0, "reason": "rank < 2"}
    if values.shape[axis] % m:
        return {"holds": False, "groups": 0, "violations": 0,
                "reason": f"input-channel axis has {values.shape[axis]} entries, "
                          f"not a multiple of {m}"}
    groups = np.moveaxis(values != 0, axis, -1).reshape(-1, m)
    bad = int((groups.sum(axis=1) > n).sum())
    return {"holds": bad == 0, "groups": int(groups.shape[0]), "violations": bad,
            "reason": ""}


def _keras_weights(model):
    """`(path, values, input axis)` of each prunable weight."""
    wrapper_lib.settle(model)
    for _, weights, wrapper in report_lib.prunable_layers(model):
        axes = (wrapper.input_axes if wrapper is not None
                else registry.input_axes(model, weights))
        for w, axis in zip(weights, axes):
            yield w.path, keras.ops.convert_to_numpy(w), axis


def check_m_by_n(model_or_tflite_path, n=2, m=4):
    """Whether each prunable weight carries the n:m pattern.

    Args:
        model_or_tflite_path: a Keras model or layer (pruned, stripped or
            plain: its prunable weights are checked along their
            input-channel axis, `registry.input_axes`), or the path of a `.tflite` file (its weight
            tensors are checked along their last axis, where LiteRT keeps
            input channels; reading one needs `ai-edge-litert`).
        n: int, the most non-zeros allowed per group. Defaults to 2.
        m: int, the group length. Defaults to 4.

    Returns:
        A `PatternReport`; `report.all_hold` is the overall answer.

    Raises:
        ValueError: for a bad `n`/`m`, or a path that is not a `.tflite`
            file.

    Examples:
        >>> import keras, numpy as np, keras_progprune as kp
        >>> dense = keras.layers.Dense(2, use_bias=False)
        >>> dense.build((None, 4))
        >>> _ = dense.kernel.assign(np.array([[1., 0.], [0., 1.], [2., 3.], [0., 0.]]))
        >>> kp.check_m_by_n(dense, 2, 4).all_hold
        True
        >>> _ = dense.kernel.assign(np.ones((4, 2)))
        >>> kp.check_m_by_n(dense, 2, 4).all_hold
        False
    """
    structures.MByN(n, m)  # validates n and m
    if isinstance(model_or_tflite_path, (str, os.PathLike)):
        path = os.fspath(model_or_tflite_path)
        if not path.endswith(".tflite") or not os.path.isfile(path):
            raise ValueError(
                "`model_or_tflite_path` must be a Keras model or layer, or the path "
                f"of an existing .tflite file. Received: {path!r}.")
        items = [(name, values, -1) for name, values in litert.weight_tensors(path).items()]
    else:
        items = _keras_weights(model_or_tflite_path)
    return PatternReport((name, _check(values, n, m, axis)) for name, values, axis in items)
