"""`--backend=NAME` for the benchmarks: sets KERAS_BACKEND before Keras loads.

Keras reads its backend once, when it is first imported, so every
benchmark imports this module before anything that imports Keras:

    from benchmarks import backend_flag  # noqa: F401  (first)
"""

import os
import sys

from absl import flags

import keras_progprune_cli

keras_progprune_cli.choose_backend(sys.argv[1:])

flags.DEFINE_enum("backend", os.environ.get("KERAS_BACKEND", "tensorflow"),
                  list(keras_progprune_cli.BACKENDS),
                  "Keras backend to run on (sets KERAS_BACKEND before Keras is imported).")
