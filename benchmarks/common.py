"""Shared helpers for the benchmarks: machine facts and result files."""

import datetime
import json
import os
import platform
import subprocess
import sys

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions():
    import keras
    import numpy
    import tensorflow

    return {
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


def provenance(command):
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": _gpu(),
        "versions": versions(),
        "git": _git_rev(),
    }


def _gpu():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return [g.name for g in gpus] or None


def _git_rev():
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_result(name, payload):
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, name)
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)  # never leave a half-written result
    return path


def command_line():
    return " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])


def epoch_timer():
    """A new Keras callback that records each epoch's wall time in `.times`."""
    from keras_progprune.experiments.trainer import EpochTimer

    return EpochTimer()


def finish(name, payload, report=True):
    """Writes a result file and, unless `report` is false, regenerates
    BENCHMARKS.md from every result file."""
    path = write_result(name, payload)
    print("wrote", path)
    if report:
        regenerate_report()
    return path


def regenerate_report():
    """Rewrites BENCHMARKS.md from every result file (`benchmarks.report`)."""
    subprocess.run([sys.executable, "-m", "benchmarks.report"], check=True,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
