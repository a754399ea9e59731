"""LiteRT (TFLite) export of pruned models: sparse storage, optional quantization.

TensorFlow-only by nature (the converter is TensorFlow's). The LiteRT
interpreter used to check the files comes from the optional
`ai-edge-litert` package (`pip install keras-progprune[litert]`);
`tf.lite.Interpreter` is deprecated.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

from keras_progprune import engine
from keras_progprune import prune as prune_lib

QUANTIZATIONS = (None, "dynamic_int8", "float16")


def _converter_options(sparse, quantize):
    optimizations = []
    if sparse:
        # Stores a FullyConnected/Conv constant as CSR when >= 30% is zero.
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    options = {}
    if quantize is not None:
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if quantize == "float16":
        options["target_spec"] = {"supported_types": [tf.float16]}
    options["optimizations"] = optimizations
    return options


def export_litert(model, path, *, sparse=True, quantize=None):
    """Strips the pruning wrappers and writes a `.tflite` file.

    Goes through Keras's own `model.export(path, format="litert")`, which
    passes the converter options on. The file is written to a temporary
    name beside `path` and moved into place only once complete: a failed
    export leaves no half-written file.

    Args:
        model: a pruned (wrapped) or plain Sequential/Functional model.
        path: str or path ending in `.tflite`, in an existing folder.
        sparse: bool. Turn on the converter's sparsity optimization, which
            stores each FullyConnected/Conv weight that is at least 30%
            zeros in a compressed (CSR) form. Defaults to True.
        quantize: `None` (float32), `"dynamic_int8"` (int8 weights,
            dynamic-range activations) or `"float16"` (float16 weights).
            `"dynamic_int8"` combines with `sparse`; `"float16"` needs
            `sparse=False` (together they give NaN outputs in TF 2.21's
            converter). Defaults to None.

    Returns:
        `path`, as a string.

    Raises:
        ValueError: for a path that doesn't end in `.tflite` or whose folder
            doesn't exist or can't be written, an unknown `quantize`, or
            `sparse=True` with `quantize="float16"`.

    Note:
        XNNPACK's sparse kernels are disabled on x86 CPUs with AVX, so on
        x86 a sparse `.tflite` runs at dense speed (it is densified when
        loaded); the gain there is size. Speed comes from channel pruning.
    """
    path = os.fspath(path)
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"`quantize` must be one of {QUANTIZATIONS}. Received: quantize={quantize!r}.")
    if not path.endswith(".tflite"):
        raise ValueError(f"`path` must end in '.tflite'. Received: path={path!r}.")
    if sparse and quantize == "float16":
        raise ValueError(
            "`sparse=True` with `quantize='float16'` gives NaN outputs (TF 2.21's "
            "converter with ai-edge-litert 2.3, measured here), so it is refused. "
            "Received: sparse=True, quantize='float16'. Use sparse=True with "
            "quantize='dynamic_int8' or None, or sparse=False with 'float16'.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ValueError(
            f"Can't write `path`: its folder {folder!r} doesn't exist or isn't "
            f"writable. Received: path={path!r}. Create the folder, or choose another.")
    plain = prune_lib.strip_pruning(model) if engine.collect_wrappers(model) else model
    fd, tmp = tempfile.mkstemp(suffix=".tflite", prefix=".export-", dir=folder)
    os.close(fd)
    try:
        plain.export(tmp, format="litert", verbose=False,
                     **_converter_options(sparse, quantize))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def interpreter(path, num_threads=None, preserve_all_tensors=False):
    """A ready LiteRT interpreter for `path`, and whether XNNPACK runs it.

    XNNPACK (LiteRT's default CPU delegate) is tried first. Some files it
    can't prepare (seen with ai-edge-litert 2.3: sparse-stored weights with
    dynamic int8); those run on LiteRT's builtin kernels instead.

    Returns:
        `(interpreter, xnnpack)`: an `ai_edge_litert.interpreter.Interpreter`
        with tensors allocated, and a bool.

    Raises:
        ImportError: if `ai-edge-litert` is not installed, with the fix.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError as e:
        raise ImportError(
            "The LiteRT interpreter needs the `ai-edge-litert` package: "
            "pip install 'keras-progprune[litert]' (or pip install ai-edge-litert)."
        ) from e
    options = dict(model_path=os.fspath(path), num_threads=num_threads,
                   experimental_preserve_all_tensors=preserve_all_tensors)
    if not preserve_all_tensors:  # XNNPACK would hide intermediate tensors
        runner = Interpreter(**options)
        try:
            runner.allocate_tensors()
            _run_on_zeros(runner)
            return runner, True
        except RuntimeError as e:
            if "XNNPack" not in str(e):
                raise
    runner = Interpreter(
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        **options)
    runner.allocate_tensors()
    return runner, False


def _densify(values, shape, sparsity):
    """Decodes a 2-D weight stored sparse: CSR rows, optionally of 1xB blocks.

    These are the layouts TF's converter writes for FullyConnected weights
    (`EXPERIMENTAL_SPARSITY`); anything else returns None.
    """
    order = list(sparsity["traversal_order"])
    blocks = list(sparsity.get("block_map", []))
    dims = sparsity["dim_metadata"]
    if len(shape) != 2 or dims[0]["format"] != 0 or dims[1]["format"] != 1:
        return None
    if order == [0, 1] and not blocks:
        width = 1
    elif order == [0, 1, 2] and blocks == [1] and dims[2]["format"] == 0:
        width = int(dims[2]["dense_size"])
    else:
        return None
    segments, indices = dims[1]["array_segments"], dims[1]["array_indices"]
    dense = np.zeros(tuple(shape), np.float32)
    for row in range(int(shape[0])):
        for k in range(int(segments[row]), int(segments[row + 1])):
            col = int(indices[k]) * width
            dense[row, col:col + width] = values[k * width:(k + 1) * width]
    return dense


def _run_on_zeros(runner):
    for detail in runner.get_input_details():
        runner.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    runner.invoke()


def predict(path, x, batch_size=256, num_threads=None):
    """Runs a single-input `.tflite` model over `x` (a NumPy array)."""
    runner, _ = interpreter(path, num_threads=num_threads)
    inp = runner.get_input_details()[0]
    out = runner.get_output_details()[0]
    results = []
    for start in range(0, len(x), batch_size):
        chunk = np.asarray(x[start:start + batch_size], inp["dtype"])
        runner.resize_tensor_input(inp["index"], chunk.shape)
        runner.allocate_tensors()
        runner.set_tensor(inp["index"], chunk)
        runner.invoke()
        results.append(runner.get_tensor(out["index"]).copy())
    return np.concatenate(results)


def weight_tensors(path):
    """The constant weight matrices of a `.tflite` file, dense, by name.

    Weights the converter stored sparse (CSR rows, optionally of 1xB blocks)
    are decoded; the file is also run once on zeros with every tensor kept,
    so a weight behind a DENSIFY op is read there too (each weight is
    listed once). A tensor counts as a weight when it has rank >= 2 and no
    dynamic (batch) dimension.
    LiteRT keeps the input-channel axis last (FullyConnected `[out, in]`,
    Conv2D `[out, h, w, in]`, DepthwiseConv2D `[1, h, w, in * mult]`).

    Returns:
        A dict `{tensor name: float array}`.
    """
    runner, _ = interpreter(path, preserve_all_tensors=True)
    _run_on_zeros(runner)
    weights, contents = {}, set()
    for detail in runner.get_tensor_details():
        shape = detail["shape_signature"]
        if len(shape) < 2 or (shape < 0).any() or detail["dtype"] not in (
                np.float32, np.float16, np.int8):
            continue
        try:
            value = runner.get_tensor(detail["index"])
        except ValueError:
            continue
        if detail.get("sparsity_parameters"):
            value = _densify(value, detail["shape"], detail["sparsity_parameters"])
            if value is None:
                continue  # a layout we don't decode
        if value.shape == tuple(detail["shape"]):
            key = (value.shape, np.asarray(value, np.float32).tobytes())
            if key in contents:
                continue  # a DENSIFY op's output: the same weight again
            contents.add(key)
            name = detail["name"]
            if name in weights:  # e.g. several "Densify_output" tensors
                name = f"{name}:{detail['index']}"
            weights[name] = np.asarray(value, np.float32)
    return weights
