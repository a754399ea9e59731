"""GPU figures: the global mask update and the training overhead on a GPU.

1. One global mask update over resnet18 (11.2M weights) and vgg19 (20M),
   against `tf.math.top_k` over the same flat |w|, in the same run
   (`mask_update.time_updates`).
2. Training steps per second, dense against pruned, for the resnet18 and
   vgg19 presets (SGD 0.9, batch 128), on generated CIFAR-shaped data: no
   CIFAR-10 is needed. Alternating (dense, pruned) pairs; each fit's first
   epoch (tracing) is not timed; each pair's ratio is of median epoch times.

    python -m benchmarks.gpu                    # on a GPU machine
    python -m benchmarks.gpu --allow_cpu --quick  # a CPU smoke test; writes nothing

It refuses to run without a GPU unless --allow_cpu, and never writes a
result file from a CPU run, so BENCHMARKS.md's GPU rows only ever hold GPU
numbers.
"""


from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

import keras_progprune as kp
from benchmarks import common
from benchmarks import mask_update
from keras_progprune import models

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["resnet18", "vgg19"], "Models to time.")
flags.DEFINE_integer("batch_size", 128, "Training batch size (the presets').")
flags.DEFINE_integer("steps", 100, "Steps per timed epoch.")
flags.DEFINE_integer("epochs", 4, "Epochs per fit; the first is not timed.")
flags.DEFINE_integer("pairs", 3, "Alternating dense/pruned pairs.")
flags.DEFINE_float("sparsity", 0.9, "The pruned fits' target (reached halfway).")
flags.DEFINE_boolean("allow_cpu", False, "Run without a GPU (smoke test; writes nothing).")
flags.DEFINE_boolean("quick", False, "Tiny sizes, for a smoke test.")
flags.DEFINE_string("gpu_out", "gpu.json", "Result file under benchmarks/results.")


def _dataset(batch_size):
    rng = np.random.default_rng(0)
    x = rng.random((batch_size * 8, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, batch_size * 8).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).repeat().prefetch(2)


def _epoch_times(name, pruned, data, steps, epochs):
    keras.utils.set_random_seed(0)
    model = models.get_model(name)
    callbacks = []
    if pruned:
        total = steps * epochs
        model = kp.prune_low_magnitude(
            model, kp.PolynomialDecay(0.0, FLAGS.sparsity, 0, total // 2,
                                      frequency=min(100, steps)), scope="global")
        callbacks.append(kp.ProgressivePruningCallback())
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = common.epoch_timer()
    model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0,
              callbacks=callbacks + [timer])
    return timer.times[1:]


def steps_per_second(name, steps, epochs, pairs, batch_size):
    """Dense and pruned steps per second, and the median pair ratio."""
    data = _dataset(batch_size)
    dense, pruned, ratios = [], [], []
    for _ in range(pairs):
        d = float(np.median(_epoch_times(name, False, data, steps, epochs)))
        p = float(np.median(_epoch_times(name, True, data, steps, epochs)))
        dense.append(steps / d)
        pruned.append(steps / p)
        ratios.append(p / d)
        print(f"{name}: dense {steps / d:.1f} steps/s, pruned {steps / p:.1f} steps/s",
              flush=True)
    return {"model": name, "batch_size": batch_size, "steps_per_epoch": steps,
            "dense_steps_per_s": float(np.median(dense)),
            "pruned_steps_per_s": float(np.median(pruned)),
            "pruned_over_dense_time": float(np.median(ratios)), "pairs": pairs}


def main(argv):
    del argv
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not FLAGS.allow_cpu:
        raise SystemExit("No GPU found: benchmarks.gpu measures GPU figures. Pass "
                         "--allow_cpu --quick for a CPU smoke test (it writes nothing).")
    quick = FLAGS.quick
    steps = 2 if quick else FLAGS.steps
    epochs = 2 if quick else FLAGS.epochs
    pairs = 1 if quick else FLAGS.pairs
    batch = 4 if quick else FLAGS.batch_size
    repeats = 1 if quick else 5
    result = {"provenance": common.provenance(common.command_line()),
              "sparsity": FLAGS.sparsity, "mask_update": {}, "training": []}
    for name in FLAGS.models:
        result["mask_update"][name] = mask_update.time_updates(
            models.get_model(name), [0.5, 0.9, 0.98], repeats)
        result["training"].append(steps_per_second(name, steps, epochs, pairs, batch))
    if gpus:
        common.finish(FLAGS.gpu_out, result)
    else:
        print("CPU run: nothing written.", result)


if __name__ == "__main__":
    app.run(main)
