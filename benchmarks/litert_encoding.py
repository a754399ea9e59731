"""LiteRT latency and size of each `export_litert` encoding (issue: the
default `.tflite` ran several times slower than dense on x86).

LeNet-300-100 and LeNet-5 on real MNIST, pruned (global progressive) to
`--sparsity` in a short run (weights shaped like trained ones; accuracy is
not the point here: `benchmarks/small_files.py` has it). Each model is
exported dense, `optimize_for="latency"` (the default) and
`optimize_for="size"`, in float and with dynamic int8. All files are timed
side by side, alternating, in one process: LiteRT interpreter from
`ai-edge-litert`, XNNPACK on (LiteRT's builtin kernels where XNNPACK can't
prepare a file), 2 threads, batch 1 and 32, median of `invoke()` calls.

    python -m benchmarks.litert_encoding
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_progprune as kp  # noqa: E402
from benchmarks import common  # noqa: E402

flags.DEFINE_float("sparsity", 0.95, "Sparsity of the pruned model.")
flags.DEFINE_integer("steps", 400, "Training steps (batch 60) before export.")
flags.DEFINE_integer("repeats", 200, "Timed invoke() calls per file and batch size.")
flags.DEFINE_string("out", "", "Result file name (default litert_encoding.json).")
FLAGS = flags.FLAGS

VARIANTS = {  # name -> export_litert options
    "dense": dict(sparse=False),
    "latency": dict(optimize_for="latency"),
    "size": dict(optimize_for="size"),
    "dense_int8": dict(sparse=False, quantize="dynamic_int8"),
    "latency_int8": dict(optimize_for="latency", quantize="dynamic_int8"),
    "size_int8": dict(optimize_for="size", quantize="dynamic_int8"),
}


def _pruned(name):
    keras.utils.set_random_seed(0)
    train = kp.data.load("mnist", "train", 60, data_dir=os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mnist"))
    model = kp.models.get_model(name)
    end = FLAGS.steps * 2 // 3
    pruned = kp.prune_low_magnitude(
        model, kp.PolynomialDecay(0.0, FLAGS.sparsity, 0, end, frequency=max(1, end // 10)),
        scope="global")
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(train.take(FLAGS.steps), epochs=1, verbose=0,
               callbacks=[kp.ProgressivePruningCallback()])
    return pruned


def measure(name, folder):
    pruned = _pruned(name)
    import warnings  # noqa: PLC0415

    files = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the x86 warning of optimize_for="size"
        for variant, options in VARIANTS.items():
            files[variant] = kp.export_litert(pruned, os.path.join(folder, f"{name}_{variant}.tflite"),
                                              **options)
    x = np.random.default_rng(0).random((32, 28, 28, 1), np.float32)
    row = {"bytes": {v: os.path.getsize(p) for v, p in files.items()}, "latency_ms": {},
           "xnnpack": {}}
    for batch in (1, 32):
        latency, row["xnnpack"] = common.litert_latencies(files, x, batch, FLAGS.repeats)
        for variant, ms in latency.items():
            row["latency_ms"][f"{variant}_b{batch}"] = ms
    return row


def main(argv):
    del argv
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in ("lenet_300_100", "lenet5"):
            rows[name] = row = measure(name, folder)
            lat = row["latency_ms"]
            for v in VARIANTS:
                print(f"{name:14s} {v:13s} {row['bytes'][v] / 1e3:8.1f} KB  "
                      f"b1 {lat[v + '_b1']:.4f} ms  b32 {lat[v + '_b32']:.4f} ms  "
                      f"xnnpack={row['xnnpack'][v]}")
    result = {"provenance": common.provenance(common.command_line()),
              "sparsity": FLAGS.sparsity, "steps": FLAGS.steps, "repeats": FLAGS.repeats,
              "rows": rows}
    common.finish(FLAGS.out or "litert_encoding.json", result, report=False)


if __name__ == "__main__":
    app.run(main)
