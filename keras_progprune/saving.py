"""Safe `.keras` saving and loading for pruned (and plain) models.

`keras.saving.load_model` works on pruned models as is (no custom_objects).
These two add what long runs on preemptible machines need: a save that
never leaves a half-written file, and a load that checks the file first and
says clearly what is wrong with it.
"""

import json
import os
import tempfile
import zipfile

import keras


def save_model(model, filepath):
    """Saves `model` to a `.keras` file atomically.

    The model is written to a temporary file in the same folder, then moved
    over `filepath` in one step: a crash while saving leaves the previous
    file (if any) intact and no partial file behind.

    Raises:
        ValueError: if `filepath` doesn't end in `.keras`.
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(
            f"`filepath` must end in '.keras'. Received: filepath={filepath!r}.")
    folder = os.path.dirname(os.path.abspath(filepath))
    fd, tmp = tempfile.mkstemp(suffix=".keras", prefix=".saving-", dir=folder)
    os.close(fd)
    try:
        model.save(tmp, overwrite=True)
        os.replace(tmp, filepath)
    finally:
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
    return keras.saving.load_model(filepath, **kwargs)
