"""Shared helpers for the benchmarks: machine facts, result files, LiteRT
latency side by side, transformer block MACs."""

import datetime
import json
import os
import platform
import subprocess
import sys

import numpy as np

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


def _installed(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions():
    import keras
    import numpy

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "tensorflow": _installed("tensorflow"),
        "jax": _installed("jax"),
        "torch": _installed("torch"),
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
    """The accelerators the current Keras backend sees, or None."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        found = [str(d) for d in jax.devices() if d.platform != "cpu"]
    elif backend == "torch":
        import torch

        found = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    else:
        import tensorflow as tf

        found = [g.name for g in tf.config.list_physical_devices("GPU")]
    return found or None


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


def block_macs(model, length):
    """MACs per sequence of every layer with a width rule (the transformer
    blocks) at sequence `length`."""
    from keras_progprune import rules as rules_lib  # noqa: PLC0415

    total = 0
    for layer in model.layers:
        groups = rules_lib.width_groups(layer)
        if groups:
            width = {g.label: g.size for g in groups}
            hidden = int(groups[0].members[0].variable.shape[0])
            total += rules_lib.rule_for(layer).macs(layer, (None, length, hidden), width)
    return total


def litert_latencies(files, x, batch, repeats):
    """`({name: median ms}, {name: XNNPACK prepared?})` of LiteRT `.tflite`
    files (`{name: path}`) at `batch`: every file timed side by side, in
    alternating blocks of 10 calls, in one process (2 threads; the first
    `batch` rows of `x`)."""
    import statistics  # noqa: PLC0415
    import time  # noqa: PLC0415

    from keras_progprune import litert  # noqa: PLC0415

    runners, xnnpack = {}, {}
    for name, path in files.items():
        runner, xnnpack[name] = litert.interpreter(path, num_threads=2)
        inp = runner.get_input_details()[0]
        shape = (batch,) + tuple(inp["shape"][1:])
        runner.resize_tensor_input(inp["index"], shape)
        runner.allocate_tensors()
        runner.set_tensor(inp["index"], np.asarray(x[:batch], np.float32).reshape(shape))
        runner.invoke()
        runners[name] = runner
    # Alternating blocks of calls, not single calls: each interpreter has
    # its own thread pool, and one that has just run keeps its threads
    # spinning for a while, which slows whichever file runs next. The first
    # call of each block is not counted.
    block = 10
    times = {name: [] for name in runners}
    for _ in range(max(1, repeats // block)):
        for name, runner in runners.items():
            runner.invoke()
            for _ in range(block):
                start = time.perf_counter()
                runner.invoke()
                times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) * 1e3 for n, t in times.items()}, xnnpack
