"""The `keras-progprune-train` command, before Keras is imported.

Two things must happen before the first `import keras`, so they live in
this small top-level module (importing anything inside `keras_progprune`
imports Keras):

- `--backend=NAME` sets `KERAS_BACKEND` (Keras picks its backend once, at
  import);
- TensorFlow's C++ start-up lines ("Could not find cuda drivers", "failed
  call to cuInit", oneDNN notes) are hidden unless the user set
  `TF_CPP_MIN_LOG_LEVEL` themselves: a new user reads them as failures.

The command itself (the absl flags and the run) is
`keras_progprune.experiments.cli`.
"""

import contextlib
import os
import sys

# The Keras backends this package runs on: the one definition, here because
# this module is read before Keras is imported.
BACKENDS = ("tensorflow", "jax", "torch")


def backend_from_argv(argv):
    """The value of a `--backend=NAME` (or `--backend NAME`) argument, or None."""
    for i, arg in enumerate(argv):
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
        if arg == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def choose_backend(argv):
    """Sets `KERAS_BACKEND` from a `--backend` argument in `argv`, if any.

    Raises:
        SystemExit: for a name that is not a Keras backend.
    """
    chosen = backend_from_argv(argv)
    if chosen is None:
        return
    if chosen not in BACKENDS:
        raise SystemExit(f"--backend must be one of {', '.join(BACKENDS)}. "
                         f"Received: --backend={chosen!r}.")
    os.environ["KERAS_BACKEND"] = chosen


@contextlib.contextmanager
def quiet_tensorflow():
    """Hides TensorFlow's C++ logging, unless `TF_CPP_MIN_LOG_LEVEL` is set.

    Level 3 drops C++ INFO, WARNING and ERROR lines (errors that matter
    reach Python as exceptions); the lines TensorFlow prints at import,
    before its logging starts, ignore the level, so the process's stderr
    is closed while the modules inside are imported. A Python error raised
    inside is shown as usual, after stderr is back.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def main(argv=None, data_dir=None):
    """Runs `keras-progprune-train` (`argv` defaults to `sys.argv`).

    Args:
        argv: the command line, program name first.
        data_dir: the default of `--data_dir` (None: TensorFlow Datasets'
            own folder); `examples/train.py` passes the repository's MNIST.
    """
    argv = list(sys.argv if argv is None else argv)
    choose_backend(argv[1:])
    with quiet_tensorflow():
        from keras_progprune.experiments import cli  # noqa: PLC0415 (after the backend)
    return cli.main(argv, data_dir=data_dir)


if __name__ == "__main__":
    sys.exit(main())
