"""`model.fit`-ready datasets: MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100.

`load` returns a batched, prefetched `tf.data.Dataset` of
`(images, labels)`: float32 images normalized with the usual per-dataset
mean and std, int32 labels.

Sources, in order:

1. A local mirror, when `data_dir` holds the official raw files: the IDX gz
   files for (Fashion-)MNIST (as in this repository's `data/mnist`), the
   python-pickle batches for CIFAR (`cifar-10-batches-py/`,
   `cifar-100-python/`, or the same files directly in `data_dir`). This is
   how an offline user works.
2. Otherwise tensorflow-datasets (`tfds.load`, with `data_dir` as its cache
   directory when given).

The validation split is the last `validation_size` examples of the official
training set, never test data; `"train"` is the rest.
"""

import gzip
import os
import pickle

import numpy as np
import tensorflow as tf

__all__ = ["DATASETS", "DEFAULT_VALIDATION_SIZE", "SPLITS", "info", "load", "read_idx",
           "steps_per_epoch"]

SPLITS = ("train", "validation", "test")

# name -> (image shape, classes, per-channel mean, per-channel std)
DATASETS = {
    "mnist": ((28, 28, 1), 10, (0.1307,), (0.3081,)),
    "fashion_mnist": ((28, 28, 1), 10, (0.2860,), (0.3530,)),
    "cifar10": ((32, 32, 3), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((32, 32, 3), 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

DEFAULT_VALIDATION_SIZE = 5000

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def info(name):
    """`(image_shape, num_classes)` of a dataset name."""
    _check_name(name)
    shape, classes, _, _ = DATASETS[name]
    return shape, classes


def _check_name(name):
    if name not in DATASETS:
        raise ValueError(
            f"Unknown dataset name. Received: name={name!r}. Valid names: "
            f"{sorted(DATASETS)}."
        )


# --- raw file readers -------------------------------------------------------


def read_idx(path):
    """Reads one IDX file (gzipped or not) into a numpy uint8 array.

    Raises:
        ValueError: if the file is missing, truncated or not IDX uint8.
    """
    if not os.path.exists(path):
        raise ValueError(f"IDX file not found: {path!r}.")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"Can't read IDX file {path!r}: {e}. Re-download it.") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(
            f"{path!r} is not an IDX file of unsigned bytes (bad magic number "
            f"{raw[:4].hex() if raw else 'empty'}). Re-download it."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path!r} is truncated in its header.")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise ValueError(
            f"IDX file {path!r} has {len(raw)} bytes, expected {expected} for "
            f"shape {dims}: it is truncated or corrupt. Re-download it."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _has_idx(data_dir):
    """True when all four IDX files are there; an error when only some are."""
    names = [f for pair in _IDX_FILES.values() for f in pair]
    missing = [f for f in names if not os.path.exists(os.path.join(data_dir, f))]
    if missing and len(missing) < len(names):
        raise ValueError(
            f"The MNIST mirror {data_dir!r} is missing {missing}. Copy the four "
            "official IDX gz files there, or remove the folder to use tfds."
        )
    return not missing


def _load_idx(data_dir, split):
    images_file, labels_file = _IDX_FILES[split]
    images = read_idx(os.path.join(data_dir, images_file))
    labels = read_idx(os.path.join(data_dir, labels_file))
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"Expected 28x28 images in {images_file!r} under {data_dir!r}. "
            f"Received shape {images.shape}."
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"{labels_file!r} holds {labels.shape} labels for {images.shape[0]} "
            f"images under {data_dir!r}; the files don't belong together."
        )
    return images[..., None], labels.astype(np.int32)


def _cifar_dir(name, data_dir):
    sub = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    marker = "data_batch_1" if name == "cifar10" else "train"
    for d in (os.path.join(data_dir, sub), data_dir):
        if os.path.exists(os.path.join(d, marker)):
            return d
    return None


def _read_pickle(path):
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except FileNotFoundError as e:
        raise ValueError(f"CIFAR batch file not found: {path!r}.") from e
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ValueError(f"Can't read CIFAR batch {path!r}: {e}. Re-download it.") from e


def _load_cifar(name, directory, split):
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        label_key = b"labels"
    else:
        files = ["train" if split == "train" else "test"]
        label_key = b"fine_labels"
    images, labels = [], []
    for f in files:
        batch = _read_pickle(os.path.join(directory, f))
        data = np.asarray(batch[b"data"], np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(
                f"Expected rows of 3072 bytes (32x32x3) in {f!r} under "
                f"{directory!r}. Received shape {data.shape}."
            )
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[label_key], np.int32))
    return np.concatenate(images), np.concatenate(labels)


def _local_arrays(name, data_dir, split):
    """(images, labels) of the official train or test split, or None."""
    if name in ("mnist", "fashion_mnist"):
        return _load_idx(data_dir, split) if _has_idx(data_dir) else None
    directory = _cifar_dir(name, data_dir)
    return _load_cifar(name, directory, split) if directory else None


# --- pipeline ---------------------------------------------------------------


def _normalize(name):
    _, _, mean, std = DATASETS[name]
    mean = tf.constant(mean, tf.float32) * 255.0
    std = tf.constant(std, tf.float32) * 255.0

    def fn(image, label):
        return (tf.cast(image, tf.float32) - mean) / std, tf.cast(label, tf.int32)

    return fn


def _augment(seed):
    def fn(image, label):
        padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]], mode="CONSTANT")
        image = tf.image.random_crop(padded, tf.shape(image), seed=seed)
        return tf.image.random_flip_left_right(image, seed=seed), label

    return fn


def _tfds_split(split, validation_size):
    if split == "test":
        return "test"
    if split == "validation":
        return f"train[-{validation_size}:]"
    return f"train[:-{validation_size}]" if validation_size else "train"


def _from_tfds(name, split, data_dir, validation_size):
    import tensorflow_datasets as tfds

    try:
        return tfds.load(
            name,
            split=_tfds_split(split, validation_size),
            data_dir=data_dir,
            as_supervised=True,
            shuffle_files=False,
        )
    except Exception as e:  # tfds raises many types when offline
        raise ValueError(
            f"Can't load {name!r} with tensorflow-datasets ({type(e).__name__}: "
            f"{e}). Offline, pass data_dir= a folder holding the official raw "
            "files (IDX gz for MNIST, python-pickle batches for CIFAR)."
        ) from e


def _check_split(split, validation_size):
    if split not in SPLITS:
        raise ValueError(
            f"`split` must be one of {SPLITS}. Received: split={split!r}."
        )
    if validation_size < 0 or (split == "validation" and validation_size == 0):
        raise ValueError(
            "`validation_size` must be > 0 to load the validation split, and "
            f"never negative. Received: validation_size={validation_size!r}."
        )


def load(
    name,
    split,
    batch_size,
    *,
    augment=False,
    data_dir=None,
    shuffle_seed=0,
    validation_size=DEFAULT_VALIDATION_SIZE,
    limit=None,
):
    """Loads a dataset split as a batched, prefetched `tf.data.Dataset`.

    Args:
        name: `"mnist"`, `"fashion_mnist"`, `"cifar10"` or `"cifar100"`.
        split: `"train"`, `"validation"` (the last `validation_size` training
            examples) or `"test"`.
        batch_size: int >= 1.
        augment: bool, random crop (4-pixel zero padding) and horizontal flip.
            CIFAR only. Defaults to False.
        data_dir: str or None, a folder with the official raw files (used
            directly), or tfds's data directory. Defaults to None (tfds's
            default).
        shuffle_seed: int or None. The train split is shuffled with this
            seed (reshuffled each epoch, reproducibly); None disables
            shuffling. Other splits are never shuffled. Defaults to 0.
        validation_size: int, training examples held out for validation.
            Defaults to 5000.
        limit: int or None, keep only the first `limit` examples of the split
            (for smoke tests). Defaults to None.

    Returns:
        A `tf.data.Dataset` of `(float32 images, int32 labels)` batches.

    Raises:
        ValueError: for an unknown name or split, augmentation on MNIST-like
            data, a missing or corrupt raw file, a wrong image shape, or tfds
            failing (offline) with no local mirror.

    Examples:
        >>> from keras_progprune import data
        >>> ds = data.load("mnist", "test", 100, data_dir="data/mnist")
        >>> images, labels = next(iter(ds))
        >>> tuple(images.shape), labels.dtype.name
        ((100, 28, 28, 1), 'int32')
    """
    _check_name(name)
    _check_split(split, validation_size)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size!r}.")
    shape, classes, _, _ = DATASETS[name]
    if augment and shape[-1] != 3:
        raise ValueError(
            f"`augment=True` (crop and flip) is defined for CIFAR only. "
            f"Received: name={name!r}, augment=True. Pass augment=False."
        )

    arrays = _local_arrays(name, data_dir, "test" if split == "test" else "train") \
        if data_dir else None
    if arrays is not None:
        images, labels = arrays
        if split != "test" and validation_size >= len(images):
            raise ValueError(
                f"`validation_size` must be smaller than the {len(images)} training "
                f"examples. Received: validation_size={validation_size}."
            )
        if split == "train" and validation_size:
            images, labels = images[:-validation_size], labels[:-validation_size]
        elif split == "validation":
            images, labels = images[-validation_size:], labels[-validation_size:]
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        ds = _from_tfds(name, split, data_dir, validation_size)
    spec = ds.element_spec[0]
    if tuple(spec.shape) != shape:
        raise ValueError(
            f"Expected {name!r} images of shape {shape}. Received: {tuple(spec.shape)}."
        )
    if limit is not None:
        ds = ds.take(limit)
    if split == "train" and shuffle_seed is not None:
        ds = ds.shuffle(
            arrays[0].shape[0] if arrays is not None else 50_000,
            seed=shuffle_seed,
            reshuffle_each_iteration=True,
        )
    if augment:
        ds = ds.map(_augment(shuffle_seed), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(_normalize(name), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(dataset):
    """Number of batches in one pass over `dataset` (counted if unknown)."""
    n = int(dataset.cardinality())
    if n >= 0:
        return n
    return int(dataset.reduce(0, lambda count, _: count + 1))
