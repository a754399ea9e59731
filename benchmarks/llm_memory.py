"""`prune_width`'s peak memory on a Llama-3-shaped KerasHub backbone.

Each size runs in a fresh child process: the backbone is made (random
init; float32), the process's peak resident memory is reset
(`/proc/self/clear_refs`), then `kp.prune_width(backbone, ffn=0.5,
heads=0.5, data=...)` runs on 8 calibration batches of one sequence of 256
tokens, ranked by activations (streamed: per-channel sums only). Reported:
the model's own bytes, the resident memory before the call (the runtime
and the model), the peak during it (`VmHWM`), and the time. Goal: a peak
of at most 1.5x the model's bytes. Also the bytes per weight of the masks
that `prune_low_magnitude` adds, on a small model.

    python -m benchmarks.llm_memory              # ~1B parameters (~4.4 GB), ~10 min
    python -m benchmarks.llm_memory --quick      # ~0.1B: a smoke run

Results: benchmarks/results/llm_memory.json (`--quick`:
llm_memory_quick.json); BENCHMARKS.md is regenerated at the end (not
after `--quick`). Run it alone: other processes change neither the
numbers nor the verdict, but they slow it down.
"""

from benchmarks import backend_flag  # noqa: F401  (first: sets the backend)

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

from benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "A ~0.1B model: a smoke run.")
flags.DEFINE_string("child", None, "Internal: run one size in this process.")

SIZES = {
    "1B": dict(vocabulary_size=32000, num_layers=16, num_query_heads=32,
               num_key_value_heads=8, hidden_dim=2048, intermediate_dim=8192),
    "0.1B": dict(vocabulary_size=32000, num_layers=8, num_query_heads=16,
                 num_key_value_heads=4, hidden_dim=768, intermediate_dim=2048),
}
BATCHES, LENGTH = 8, 256
GOAL = 1.5


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(size):
    import gc  # noqa: PLC0415

    import keras_hub  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import keras_progprune as kp  # noqa: PLC0415
    from keras_progprune import wrapper as wrapper_lib  # noqa: PLC0415

    runtime = _status("VmRSS")
    config = SIZES[size]
    backbone = keras_hub.models.Llama3Backbone(**config)
    parameters = int(backbone.count_params())
    model_bytes = int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize
                          for w in backbone.weights))
    rng = np.random.default_rng(0)
    data = [{"token_ids": rng.integers(1, config["vocabulary_size"], (1, LENGTH)).astype(
        "int32"), "padding_mask": np.ones((1, LENGTH), "int32")} for _ in range(BATCHES)]
    gc.collect()
    before = _status("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    small = kp.prune_width(backbone, ffn=0.5, heads=0.5, data=data)
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    row = {"size": size, "config": config, "parameters": parameters,
           "model_bytes": model_bytes, "runtime_rss": runtime, "baseline_rss": before,
           "peak_rss": peak, "seconds": seconds,
           "small_parameters": int(small.count_params())}
    # Mask bytes per masked weight, on a small model.
    tiny = keras_hub.models.Llama3Backbone(**{**config, "num_layers": 1,
                                              "vocabulary_size": 256})
    wrapped = kp.prune_low_magnitude(tiny, kp.ConstantSparsity(0.5, 0))
    masks = [m for w in wrapper_lib.collect_wrappers(wrapped) for m in w.masks]
    row["mask_bytes_per_weight"] = float(
        sum(np.prod(m.shape) * np.dtype(m.dtype).itemsize for m in masks)
        / sum(np.prod(m.shape) for m in masks))
    print("ROW " + json.dumps(row), flush=True)


def main(argv):
    del argv
    if FLAGS.child:
        child(FLAGS.child)
        return
    import keras  # noqa: PLC0415

    sizes = ["0.1B"] if FLAGS.quick else ["0.1B", "1B"]
    rows = []
    for size in sizes:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.llm_memory",
                               f"--child={size}", f"--backend={keras.backend.backend()}"],
                              capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        line = next((l for l in proc.stdout.splitlines() if l.startswith("ROW ")), None)
        if line is None:
            raise RuntimeError(f"size {size} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(line[4:]))
        print(rows[-1], flush=True)
    payload = {"provenance": common.provenance(common.command_line()), "goal": GOAL,
               "recipe": (f"`kp.prune_width(backbone, ffn=0.5, heads=0.5, data=...)` on a "
                          f"random-init `Llama3Backbone`, float32, {BATCHES} calibration "
                          f"batches of one sequence of {LENGTH} tokens (activation "
                          "ranking), each size in a fresh process. Baseline: resident "
                          "memory before the call (runtime and model); peak: `VmHWM` "
                          "during it, reset before. Goal: peak at most "
                          f"{GOAL}x the model's bytes."),
               "rows": rows}
    common.finish("llm_memory_quick.json" if FLAGS.quick else "llm_memory.json", payload,
                  report=not FLAGS.quick)


if __name__ == "__main__":
    app.run(main)
