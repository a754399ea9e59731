"""Safe, small `.keras` saving and checked loading, for pruned and plain models.

`keras.saving.load_model` works on pruned models as is (no custom_objects).
`save_model` adds what pruned models and long runs need: the archive's
entries are deflate-compressed (runs of zeros then cost almost nothing),
the optimizer state can be left out, and a crash never leaves a
half-written file. `load_model` checks the file first and says clearly what
is wrong with it.
"""

import io
import json
import os
import tempfile
import zipfile

import h5py
import keras

from keras_progprune import walk

_WEIGHTS = "model.weights.h5"
_CONFIG = "config.json"
# Every method Python's zipfile reads, so plain Keras loads the file.
COMPRESSIONS = {
    "bzip2": zipfile.ZIP_BZIP2,
    "lzma": zipfile.ZIP_LZMA,
    "deflate": zipfile.ZIP_DEFLATED,
    "stored": zipfile.ZIP_STORED,
}


def default_permissions(path):
    """Gives `path` the mode a plain `open(path, "w")` would (0666 minus the
    umask): temporary files are created 0600, and a model file is usually
    read by another user (a server)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _without_optimizer(weights_h5):
    """The weights file's bytes with the top-level `optimizer` group left out."""
    out = io.BytesIO()
    with h5py.File(io.BytesIO(weights_h5), "r") as src, h5py.File(out, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for key in src:
            if key != "optimizer":
                src.copy(src[key], dst, name=key)
    return out.getvalue()


def _rewrite(src_path, dst_path, include_optimizer, compression):
    """Copies a Keras archive, compressing every entry (and dropping the
    optimizer's state and compile config unless `include_optimizer`)."""
    with zipfile.ZipFile(src_path) as src, zipfile.ZipFile(
            dst_path, "w", compression=COMPRESSIONS[compression], compresslevel=9) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if not include_optimizer and info.filename == _WEIGHTS:
                data = _without_optimizer(data)
            elif info.filename == _CONFIG:
                config = portable_config(json.loads(data))
                if not include_optimizer:
                    config["compile_config"] = None
                data = json.dumps(config).encode()
            dst.writestr(info.filename, data)


def portable_config(config):
    """`config` with backend-specific Keras classes named by their public path.

    On PyTorch, Keras compiles with its own PyTorch optimizer subclasses
    (`keras.src.backend.torch.optimizers.torch_adam.Adam`) and saves that
    module path, so another backend that loads the file builds a PyTorch
    optimizer, which fails at the first training step (Keras 3.15). Any such
    object whose class `keras.optimizers` exports is written as
    `keras.optimizers.<Class>`, the path the other backends save.
    """
    if isinstance(config, dict):
        module = config.get("module")
        if (isinstance(module, str) and walk.is_backend_optimizer_module(module)
                and hasattr(keras.optimizers, str(config.get("class_name")))):
            config = {**config, "module": "keras.optimizers"}
        return {k: portable_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [portable_config(v) for v in config]
    return config


def save_model(model, filepath, include_optimizer=True, compression="bzip2"):
    """Saves `model` to a compressed `.keras` file, atomically.

    Keras writes `.keras` archives uncompressed; this writes every entry
    compressed, so the zeros of a pruned model cost almost nothing. The file
    is an ordinary Keras archive: `keras.saving.load_model(filepath)` loads
    it, with no `custom_objects` (Python's zipfile reads every method here).

    The model is written to a temporary file in the same folder, then moved
    over `filepath` in one step: a crash while saving leaves the previous
    file (if any) intact and no partial file behind.

    Args:
        model: a `keras.Model` (pruned, stripped or plain).
        filepath: str or path ending in `.keras`.
        include_optimizer: bool. If False, the optimizer's state (Adam's
            slots are twice the weights) and the compile config are left
            out, for deployment copies: the reloaded model is uncompiled.
            Defaults to True, which keeps training resumable.
        compression: `"bzip2"` (smallest on pruned float32 weights: it
            packs runs of zero bytes best), `"lzma"`, `"deflate"` (fastest
            to load) or `"stored"` (uncompressed, as Keras writes).
            Defaults to `"bzip2"` (BENCHMARKS.md compares them).

    The file loads on every Keras backend: classes Keras saves by a
    backend-specific path (its PyTorch optimizers) are written by their
    public one (`portable_config`).

    Raises:
        ValueError: if `filepath` doesn't end in `.keras`, its folder
            doesn't exist, or `compression` is unknown.

    Examples:
        >>> import os, tempfile, keras, keras_progprune as kp
        >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64)])
        >>> _ = model.layers[0].kernel.assign(keras.ops.zeros((64, 64)))
        >>> path = os.path.join(tempfile.mkdtemp(), "zeros.keras")
        >>> kp.save_model(model, path, include_optimizer=False)
        >>> os.path.getsize(path) < 64 * 64 * 4 / 4
        True
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(
            f"`filepath` must end in '.keras'. Received: filepath={filepath!r}.")
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"`compression` must be one of {sorted(COMPRESSIONS)}. Received: "
            f"compression={compression!r}.")
    folder = os.path.dirname(os.path.abspath(filepath))
    if not os.path.isdir(folder):
        raise ValueError(
            f"The folder of `filepath` does not exist: {folder!r}. Received: "
            f"filepath={filepath!r}. Create it first.")
    raw = tempfile.mkstemp(suffix=".keras", prefix=".saving-raw-", dir=folder)
    packed = tempfile.mkstemp(suffix=".keras", prefix=".saving-", dir=folder)
    for fd, _ in (raw, packed):
        os.close(fd)
    try:
        model.save(raw[1], overwrite=True)
        _rewrite(raw[1], packed[1], include_optimizer, compression)
        default_permissions(packed[1])
        os.replace(packed[1], filepath)
    finally:
        for _, tmp in (raw, packed):
            if os.path.exists(tmp):
                os.remove(tmp)


def _version(text):
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def load_model(filepath, **kwargs):
    """Checks a `.keras` file, then loads it with `keras.saving.load_model`.

    A file written by plain `model.save` on PyTorch names Keras's PyTorch
    optimizer classes, which fail on the other backends (Keras 3.15); such
    a file is loaded from a copy that names the public classes instead (see
    `portable_config`), so training resumes on any backend.

    Raises:
        ValueError: if the file is missing, truncated or corrupt (not a
            readable zip archive, or a member fails its checksum), has no
            Keras metadata, or was written by a newer Keras than the one
            installed.
    """
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise ValueError(f"No such model file: {filepath!r}.")
    if not zipfile.is_zipfile(filepath):
        raise ValueError(
            f"{filepath!r} is not a readable .keras archive: it is truncated or "
            "corrupt. Re-save the model, or restore the file from a backup.")
    try:
        with zipfile.ZipFile(filepath) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise ValueError(
                    f"{filepath!r} is corrupt: member {bad!r} fails its checksum. "
                    "Re-save the model, or restore the file from a backup.")
            metadata = json.loads(archive.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{filepath!r} is truncated or corrupt ({type(e).__name__}: {e}). Re-save "
            "the model, or restore the file from a backup.") from e
    saved = metadata.get("keras_version", "0")
    if _version(saved) > _version(keras.__version__):
        raise ValueError(
            f"{filepath!r} was saved with Keras {saved}, newer than the installed "
            f"Keras {keras.__version__}. Upgrade keras (pip install -U keras) to load it.")
    with zipfile.ZipFile(filepath) as archive:
        config = json.loads(archive.read(_CONFIG))
    if "keras_progprune>HeadSized" in json.dumps(config):
        from keras_progprune import hub_layers  # noqa: F401,PLC0415 (registers them)
    if portable_config(config) == config:
        return keras.saving.load_model(filepath, **kwargs)
    # Written by plain `model.save` on PyTorch: load a portable copy.
    folder = os.path.dirname(os.path.abspath(filepath))
    fd, copy = tempfile.mkstemp(suffix=".keras", prefix=".loading-", dir=folder)
    os.close(fd)
    try:
        with zipfile.ZipFile(filepath) as src, zipfile.ZipFile(copy, "w") as dst:
            for info in src.infolist():
                data = src.read(info.filename)
                if info.filename == _CONFIG:
                    data = json.dumps(portable_config(config)).encode()
                dst.writestr(info, data)
        return keras.saving.load_model(copy, **kwargs)
    finally:
        os.remove(copy)
