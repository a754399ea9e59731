"""LiteRT (TFLite) export of pruned models: sparse storage, optional quantization.

TensorFlow-only by nature (the converter is TensorFlow's): on JAX and
PyTorch the export runs in a TensorFlow child process, and this module
imports TensorFlow only where it converts. The LiteRT interpreter used to
check the files comes from the optional `ai-edge-litert` package
(`pip install keras-progprune[litert]`); `tf.lite.Interpreter` is
deprecated.
"""

import os
import platform
import warnings

import keras
import numpy as np

from keras_progprune import prune as prune_lib
from keras_progprune import litert_convert
from keras_progprune import tensorflow_export
from keras_progprune import walk
from keras_progprune import wrapper as wrapper_lib

QUANTIZATIONS = (None, "dynamic_int8", "float16")


def _is_x86():
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def export_litert(model, path, *, sparse=True, quantize=None, optimize_for="latency",
                  sparse_blocks=None, custom_objects=None):
    """Strips the pruning wrappers and writes a `.tflite` file.

    Goes through Keras's own `model.export(path, format="litert")`, which
    passes the converter options on. On JAX and PyTorch (where Keras has no
    TensorFlow converter) the stripped model is exported from a TensorFlow
    child process through a `.keras` file (`keras_progprune.tensorflow_export`). The file is written to a temporary
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
        optimize_for: `"latency"` (the default) or `"size"`: how the zeros
            are stored, for LiteRT's default CPU delegate (XNNPACK).
            `"latency"` keeps the converter's own encoding (FullyConnected
            weights in 1x4 blocks, read by XNNPACK like dense ones) and,
            with `quantize="dynamic_int8"`, dense int8 weights (XNNPACK
            can't run sparse int8 ones): as fast as the dense file or
            faster. `"size"` re-encodes the blocks as plain CSR behind a
            DENSIFY op and keeps int8 weights sparse: the smallest file,
            but XNNPACK leaves those layers to LiteRT's builtin kernels, so
            on x86 it runs slower than the dense file (LeNet-300-100 at
            95%: 12.5x instead of 8.5x smaller than dense, 2.8x slower at
            batch 32; BENCHMARKS.md section 3). Warns on x86.
        sparse_blocks: None (the default: as `optimize_for` says), or a
            bool to choose the FullyConnected encoding yourself: True keeps
            the converter's 1x4 blocks, False re-encodes them as CSR where
            that is smaller.
        custom_objects: optional dict `{name: class or function}` of the
            model's own unregistered classes, for the TensorFlow child
            process on JAX and PyTorch (see `export_saved_model`). Defaults
            to None.

    Returns:
        `path`, as a string.

    Raises:
        ValueError: for a path that doesn't end in `.tflite` or whose folder
            doesn't exist or can't be written, an unknown `quantize` or
            `optimize_for`, `sparse=True` with `quantize="float16"`, or a
            model quantized with Keras's `quantize(...)` (the converter
            can't take its int8 layers; quantize here instead); on JAX and
            PyTorch, for a class of the user's that is neither registered
            nor in `custom_objects`.

    Note:
        XNNPACK's sparse kernels are disabled on x86 CPUs with AVX, so on
        x86 a sparse `.tflite` is smaller, not faster (BENCHMARKS.md section
        3). For speed everywhere, remove whole channels:
        `structure="channel"`, then `keras_progprune.shrink`.

    Examples:
        >>> import os, tempfile, keras, keras_progprune as kp
        >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64)])
        >>> w = keras.ops.convert_to_tensor(model.layers[0].kernel)
        >>> _ = model.layers[0].kernel.assign(keras.ops.where(keras.ops.abs(w) > 0.2, w, 0.0))
        >>> folder = tempfile.mkdtemp()
        >>> sparse = kp.export_litert(model, os.path.join(folder, "sparse.tflite"))
        >>> dense = kp.export_litert(model, os.path.join(folder, "dense.tflite"), sparse=False)
        >>> os.path.getsize(sparse) < os.path.getsize(dense) / 2
        True
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
    stored_sparse, _ = litert_convert.encoding(sparse, quantize, optimize_for, sparse_blocks)
    if optimize_for == "size" and stored_sparse and _is_x86():
        warnings.warn(
            "export_litert(optimize_for='size') writes the smallest file, but on x86 "
            "LiteRT's XNNPACK delegate leaves its sparse layers to slower builtin "
            "kernels (LeNet-300-100 at 95%: 2.8x slower than the dense file at batch "
            "32). To serve on x86, use optimize_for='latency' (the default).",
            stacklevel=2)
    quantized = sorted({layer.name for layer in walk.sublayers(model)
                        if getattr(layer, "quantization_mode", None)})
    if quantized:
        # TF 2.21's converter stops on the int8 matmuls of Keras's quantized
        # layers ("'tfl.fully_connected' op operand #0 must be ... but got
        # 'tensor<?x784xi8>'"), deep in MLIR; say it here instead.
        raise ValueError(
            "Can't export a model quantized with Keras's `quantize(...)` to LiteRT: "
            "TensorFlow's converter doesn't take its int8 layers. Received: a model "
            f"with quantized layers {quantized}. Export the float model with "
            "`export_litert(model, path, quantize='dynamic_int8')` for an int8 "
            "`.tflite`, and keep the Keras int8 model as a `.keras` file.")
    plain = prune_lib.strip_pruning(model) if wrapper_lib.collect_wrappers(model) else model
    options = {"sparse": sparse, "quantize": quantize, "optimize_for": optimize_for,
               "sparse_blocks": sparse_blocks}
    if keras.backend.backend() != "tensorflow":
        # The converter is TensorFlow's: export from a TensorFlow process.
        return tensorflow_export.run(plain, "litert", path, custom_objects, **options)
    return litert_convert.convert(plain, path, **options)


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
            value = litert_convert.densify(value, detail["shape"], detail["sparsity_parameters"])
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


# TFLite tensor types whose raw buffer we can re-encode, and index vector types.
