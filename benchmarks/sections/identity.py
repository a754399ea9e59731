"""Wrapping is an identity (`benchmarks/identity.py`)."""

import os

from benchmarks import common
from keras_progprune_cli import BACKENDS


def identity_section():
    """Written by `benchmarks.identity`, one file per backend."""
    lines = ["## 10. Wrapping is an identity (keras-io-style models)", "",
             "The corpus of `tests/user_models.py`: the largest output difference "
             "from the user's model (0 is the goal) before any mask update, then "
             "keras.applications.Xception at 80%. Command: `KERAS_BACKEND=<backend> "
             "python -m benchmarks.identity`.", ""]
    for backend in BACKENDS:
        path = os.path.join(common.RESULTS_DIR, f"identity_{backend}.md")
        if os.path.exists(path):
            with open(path) as f:
                lines += [f.read().strip(), ""]
        else:
            lines += [f"### {backend}", "", "Not measured: run `KERAS_BACKEND="
                      f"{backend} python -m benchmarks.identity`.", ""]
    return lines
