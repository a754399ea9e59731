"""`--backend=NAME` for the benchmarks: sets KERAS_BACKEND before Keras loads.

Keras reads its backend once, when it is first imported, so every
benchmark imports this module before anything that imports Keras:

    from benchmarks import backend_flag  # noqa: F401  (first)
"""

import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def from_argv(argv):
    """The value of a `--backend=NAME` (or `--backend NAME`) argument, or None."""
    for i, arg in enumerate(argv):
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
        if arg == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
    return None


_chosen = from_argv(sys.argv[1:])
if _chosen is not None:
    if _chosen not in BACKENDS:
        raise SystemExit(f"--backend must be one of {BACKENDS}. Received: --backend={_chosen!r}.")
    os.environ["KERAS_BACKEND"] = _chosen

from absl import flags  # noqa: E402

flags.DEFINE_enum("backend", os.environ.get("KERAS_BACKEND", "tensorflow"), list(BACKENDS),
                  "Keras backend to run on (sets KERAS_BACKEND before Keras is imported).")
