"""TensorFlow's LiteRT converter, in the process that has it.

`convert` turns a plain Keras model into a `.tflite` file; `export_litert`
(`keras_progprune.litert`) checks the options and calls it here on the
TensorFlow backend, or through a TensorFlow child process
(`keras_progprune.tensorflow_export`) on JAX and PyTorch. Also here: the
file's sparse encodings (`encoding`, `densify`, `unblock_sparse_weights`),
which the reader in `litert` shares.
"""

import os
import tempfile

import numpy as np

from keras_progprune import saving

OPTIMIZE_FOR = ("latency", "size")


def encoding(sparse, quantize, optimize_for, sparse_blocks=None):
    """`(sparse, sparse_blocks)` as `export_litert` uses them (see there)."""
    if optimize_for not in OPTIMIZE_FOR:
        raise ValueError(f"`optimize_for` must be one of {OPTIMIZE_FOR}. "
                         f"Received: optimize_for={optimize_for!r}.")
    if optimize_for == "latency" and quantize == "dynamic_int8":
        sparse = False  # XNNPACK can't prepare sparse + dynamic-int8 weights
    if sparse_blocks is None:
        sparse_blocks = optimize_for == "latency"
    return sparse, bool(sparse_blocks)


def _converter_options(sparse, quantize):
    import tensorflow as tf  # noqa: PLC0415 - only where the converter runs

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

def convert(model, path, *, sparse=True, quantize=None, optimize_for="latency",
            sparse_blocks=None):
    """Writes `model` (a plain Keras model, on the TensorFlow backend) to the
    `.tflite` file `path` with TensorFlow's converter, replacing it whole
    (no half-written file is left on an error). The options are
    `export_litert`'s, already checked there.

    Returns:
        `path`.
    """
    sparse, sparse_blocks = encoding(sparse, quantize, optimize_for, sparse_blocks)
    fd, tmp = tempfile.mkstemp(suffix=".tflite", prefix=".export-",
                               dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        model.export(tmp, format="litert", verbose=False,
                     **_converter_options(sparse, quantize))
        if sparse and not sparse_blocks:
            with open(tmp, "rb") as f:
                data = unblock_sparse_weights(f.read())
            with open(tmp, "wb") as f:
                f.write(data)
        saving.default_permissions(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def densify(values, shape, sparsity):
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


_TFLITE_DTYPES = {0: np.float32, 9: np.int8}


def _index_vector(values, schema):
    """The smallest TFLite index vector (uint8, uint16, int32) for `values`."""
    top = int(values.max()) if len(values) else 0
    for limit, kind, cls in ((255, schema.SparseIndexVector.Uint8Vector, schema.Uint8VectorT),
                             (65535, schema.SparseIndexVector.Uint16Vector,
                              schema.Uint16VectorT),
                             (2**31 - 1, schema.SparseIndexVector.Int32Vector,
                              schema.Int32VectorT)):
        if top <= limit:
            vector = cls()
            vector.values = [int(v) for v in values]
            return kind, vector, np.dtype({255: np.uint8, 65535: np.uint16}.get(limit, np.int32))


def unblock_sparse_weights(tflite_bytes):
    """Re-encodes 1xB block-sparse weights as plain CSR when that is smaller.

    TF's converter stores a FullyConnected weight in 1x4 blocks when most
    blocks are empty, for LiteRT's block-sparse kernel (used on ARM). After
    unstructured pruning most kept blocks hold a single weight, so the file
    carries up to 4x the values. This rewrites such a weight as plain CSR
    (as the converter does for other weights) behind a DENSIFY op, only when
    the result is smaller. Outputs are unchanged.

    Args:
        tflite_bytes: the bytes of a `.tflite` file.

    Returns:
        The bytes of the rewritten file (the input if nothing changed).
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    changed = False
    for graph in model.subgraphs:
        for t_index, tensor in enumerate(graph.tensors):
            sp = tensor.sparsity
            if (sp is None or sp.blockMap is None or len(sp.blockMap) == 0
                    or len(tensor.shape) != 2
                    or tensor.type not in _TFLITE_DTYPES):
                continue
            dims = sp.dimMetadata
            if (list(sp.traversalOrder) != [0, 1, 2] or list(sp.blockMap) != [1]
                    or dims[0].format != 0 or dims[1].format != 1 or dims[2].format != 0):
                continue
            dtype = _TFLITE_DTYPES[tensor.type]
            buffer = model.buffers[tensor.buffer]
            raw = np.frombuffer(bytes(bytearray(buffer.data)), dtype)
            details = {"traversal_order": [0, 1, 2], "block_map": [1], "dim_metadata": [
                {"format": 0, "dense_size": dims[0].denseSize},
                {"format": 1, "array_segments": np.asarray(dims[1].arraySegments.values),
                 "array_indices": np.asarray(dims[1].arrayIndices.values)},
                {"format": 0, "dense_size": dims[2].denseSize}]}
            dense = densify(raw, tensor.shape, details)
            rows, cols = np.nonzero(dense)
            values = dense[rows, cols].astype(dtype)
            segments = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[0]))])
            seg_kind, seg_vec, seg_dtype = _index_vector(segments, schema)
            idx_kind, idx_vec, idx_dtype = _index_vector(cols, schema)
            new_bytes = values.nbytes + segments.size * seg_dtype.itemsize + \
                cols.size * idx_dtype.itemsize
            old_bytes = raw.nbytes + len(dims[1].arraySegments.values) * 2 + \
                len(dims[1].arrayIndices.values)
            if new_bytes >= old_bytes:
                continue
            dense_dim = schema.DimensionMetadataT()
            dense_dim.format, dense_dim.denseSize = 0, int(dense.shape[0])
            csr_dim = schema.DimensionMetadataT()
            csr_dim.format = 1
            csr_dim.arraySegmentsType, csr_dim.arraySegments = seg_kind, seg_vec
            csr_dim.arrayIndicesType, csr_dim.arrayIndices = idx_kind, idx_vec
            sp.traversalOrder, sp.blockMap, sp.dimMetadata = [0, 1], [], [dense_dim, csr_dim]
            buffer.data = np.frombuffer(values.tobytes(), np.uint8)
            # A DENSIFY op turns it back into the dense weight its consumers read.
            # Declared as the converter declares its own DENSIFY outputs: ranked
            # (`hasRank`; TensorT's default is False) and with an empty buffer
            # of its own. Unranked, it made XNNPACK leave the
            # FULLY_CONNECTED that reads it to LiteRT's builtin kernel: about
            # 3x slower than the dense file at batch 32 on x86.
            model.buffers.append(schema.BufferT())
            out = schema.TensorT()
            out.shape, out.type, out.hasRank = list(tensor.shape), tensor.type, True
            out.buffer = len(model.buffers) - 1
            out.name = (tensor.name or b"") + b"/densified"
            out.quantization = tensor.quantization
            graph.tensors.append(out)
            out_index = len(graph.tensors) - 1
            op = schema.OperatorT()
            op.opcodeIndex = _opcode_index(model, schema.BuiltinOperator.DENSIFY, schema)
            op.inputs, op.outputs = [t_index], [out_index]
            first_user = None
            for i, consumer in enumerate(graph.operators):
                if t_index in list(consumer.inputs):
                    consumer.inputs = [out_index if x == t_index else x for x in consumer.inputs]
                    first_user = i if first_user is None else first_user
            graph.operators.insert(first_user or 0, op)
            changed = True
    if not changed:
        return bytes(tflite_bytes)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _opcode_index(model, builtin, schema):
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
