"""A real-text corpus for language models, read byte by byte.

The corpus is CPython 3.11.7's standard library source, kept in this
repository's `data/pystdlib` with its license, split by module into
`train` and `heldout` (see its README). Tokens are bytes: a vocabulary of
256, so a model's loss in nats per token divided by `ln 2` is bits per
byte. NumPy only: every backend reads it.
"""

import gzip
import hashlib
import math
import os

import numpy as np

SPLITS = ("train", "heldout")
VOCABULARY_SIZE = 256
DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "data", "pystdlib")


def _digests(data_dir):
    path = os.path.join(data_dir, "SHA256SUMS")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No corpus in data_dir={data_dir!r}: {path} is missing. Pass the "
            "`data/pystdlib` folder of a keras-progprune checkout.")
    with open(path) as f:
        return {name: digest for digest, name in (line.split() for line in f if line.strip())}


def load_corpus(split, data_dir=None):
    """The bytes of one split as a uint8 array, checked against its digest.

    Args:
        split: `"train"` or `"heldout"`.
        data_dir: the corpus folder; defaults to this checkout's
            `data/pystdlib`.

    Raises:
        ValueError: for an unknown split, or a file whose digest differs
            from `SHA256SUMS` (numbers from it would not be comparable).
        FileNotFoundError: if the folder holds no corpus.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}.")
    data_dir = data_dir or DEFAULT_DIR
    name = f"{split}.txt.gz"
    expected = _digests(data_dir).get(name)
    with open(os.path.join(data_dir, name), "rb") as f:
        raw = f.read()
    if hashlib.sha256(raw).hexdigest() != expected:
        raise ValueError(
            f"{os.path.join(data_dir, name)} does not match its SHA-256 in SHA256SUMS: "
            "it is not the pinned corpus. Restore it from the repository (or rebuild "
            "it with data/pystdlib/build.py from CPython 3.11.7).")
    return np.frombuffer(gzip.decompress(raw), np.uint8)


def windows(tokens, length, count, seed):
    """`count` random windows of `length + 1` tokens: `(inputs, targets)`,
    each `[count, length]` int32, the targets shifted by one."""
    tokens = np.asarray(tokens)
    if len(tokens) <= length + 1:
        raise ValueError(
            f"The text has {len(tokens)} tokens, too few for windows of length={length}. "
            "Give more text or a smaller sequence length.")
    starts = np.random.default_rng(seed).integers(0, len(tokens) - length - 1, count)
    rows = np.stack([tokens[s:s + length + 1] for s in starts]).astype("int32")
    return rows[:, :-1], rows[:, 1:]


def tiled(tokens, length):
    """The whole text as consecutive, non-overlapping windows (the last
    partial one dropped): what held-out bits per byte are measured on."""
    tokens = np.asarray(tokens)
    count = (len(tokens) - 1) // length
    if count < 1:
        raise ValueError(
            f"The text has {len(tokens)} tokens, too few for one window of "
            f"length={length}.")
    x = tokens[:count * length].reshape(count, length).astype("int32")
    y = tokens[1:count * length + 1].reshape(count, length).astype("int32")
    return x, y


def bits_per_byte(nats_per_token):
    """A mean cross-entropy in nats per byte token, in bits per byte."""
    return float(nats_per_token) / math.log(2.0)
