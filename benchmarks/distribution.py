"""Pruning under `keras.distribution` (JAX) on host CPU devices.

1. DataParallel overhead: epoch time of a pruned against a dense model,
   both under `DataParallel` over --devices host devices, in alternating
   (dense, pruned) pairs in one process, CPU time beside wall time (as
   `benchmarks.overhead`). LeNet-300-100 on real MNIST; resnet20 on
   generated CIFAR-shaped data (--resnet_examples per epoch: the ratio is
   what is measured, and a full CIFAR epoch takes too long on 2 cores).
   The first epoch of every fit (compilation) is not timed.
2. ModelParallel mask update: one exact global update (`PruningGroup.
   update`) over --update_weights prunable weights in two Dense kernels,
   on one device against `ModelParallel` with both kernels (and their
   masks) sharded over --devices devices; the masks must come out equal.

    python -m benchmarks.distribution --devices=2
    python -m benchmarks.distribution --devices=2 --parts=model_parallel

Writes benchmarks/results/distribution.json; `benchmarks.report` makes
its BENCHMARKS.md section.
"""

import json
import os
import sys


def _devices(argv):
    for i, arg in enumerate(argv):
        if arg.startswith("--devices="):
            return int(arg.split("=", 1)[1])
        if arg == "--devices" and i + 1 < len(argv):
            return int(argv[i + 1])
    return 2


# Before JAX starts: the host device count, and the backend.
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""),
     f"--xla_force_host_platform_device_count={_devices(sys.argv[1:])}"]).strip()
if not any(a.startswith("--backend") for a in sys.argv[1:]):
    sys.argv.append("--backend=jax")

from benchmarks import backend_flag  # noqa: F401, E402  (sets KERAS_BACKEND first)

import contextlib  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_progprune as kp  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks import overhead  # noqa: E402  (its --pairs, --epochs, --batch_size, --out)
from keras_progprune import data  # noqa: E402
from keras_progprune import engine  # noqa: E402
from keras_progprune import models  # noqa: E402
from keras_progprune import wrapper as wrapper_lib

FLAGS = flags.FLAGS
flags.DEFINE_integer("devices", 2, "Host CPU devices (set before JAX starts).")
flags.DEFINE_integer("resnet_examples", 1280, "Generated examples per resnet20 epoch.")
flags.DEFINE_integer("resnet_batch_size", 64, "resnet20 batch size.")
flags.DEFINE_integer("resnet_frequency", 10, "resnet20 mask update frequency in steps.")
flags.DEFINE_integer("update_weights", 10_485_760, "Prunable weights in the update model "
                     "(1024 -> h -> 1536 Dense kernels; h is chosen to reach this).")
flags.DEFINE_integer("update_repeats", 15, "Timed mask updates per setting (the median is kept).")
flags.DEFINE_list("parts", ["data_parallel", "model_parallel"],
                  "Parts to measure; a part left out keeps its result from the "
                  "existing result file (its own provenance kept beside it).")


def _data_parallel():
    return keras.distribution.DataParallel(devices=keras.distribution.list_devices())


def _fit_times(name, pruned, train, frequency):
    keras.utils.set_random_seed(0)
    with _data_parallel().scope():
        model = models.get_model(name)
        callbacks = []
        if pruned:
            steps = FLAGS.epochs * data.steps_per_epoch(train)
            model = kp.prune_low_magnitude(
                model, kp.PolynomialDecay(0.0, 0.9, 0, steps, frequency=frequency),
                scope="global")
            callbacks.append(kp.ProgressivePruningCallback())
        timer = overhead.CpuEpochTimer()
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(train, epochs=FLAGS.epochs, verbose=0, callbacks=callbacks + [timer])
    return float(np.median(timer.wall[1:])), float(np.median(timer.cpu[1:]))


def data_parallel_overhead(name, train, frequency):
    return overhead.summarize(overhead.measure(
        name, train, FLAGS.pairs,
        fit_times=lambda n, pruned, t: _fit_times(n, pruned, t, frequency)))


def _resnet_data():
    import tensorflow as tf  # noqa: PLC0415  (tf.data only, as keras_progprune.data)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(FLAGS.resnet_examples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, FLAGS.resnet_examples).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(
        FLAGS.resnet_batch_size, drop_remainder=True).prefetch(2)


def _update_model():
    hidden = max(8, FLAGS.update_weights // (1024 + 1536) // 8 * 8)  # divides the mesh
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1024,))
    x = keras.layers.Dense(hidden, name="wide_in")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1536, name="wide_out")(x))


def _model_parallel():
    mesh = keras.distribution.DeviceMesh((1, FLAGS.devices), ["batch", "model"],
                                         keras.distribution.list_devices())
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map["wide_in/kernel"] = (None, "model")
    layout_map["wide_out/kernel"] = ("model", None)
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")


def _time_update(distribution, sparsity):
    """(median wall s, median CPU s, masks, shard shapes) of one global update."""
    scope = distribution.scope() if distribution else contextlib.nullcontext()
    with scope:
        model = kp.prune_low_magnitude(_update_model(), scope="global")
        model.build((None, 1024))
        (group,) = engine.build_groups(wrapper_lib.collect_wrappers(model))
        walls, cpus = [], []
        for i in range(FLAGS.update_repeats + 1):
            for m in group.masks:
                m.assign(keras.ops.ones(m.shape))
            wall, cpu = time.perf_counter(), time.process_time()
            group.update(sparsity)
            keras.ops.convert_to_numpy(group.masks[-1].value[0, 0])  # wait for it
            if i:  # the first compiles
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        masks = [np.asarray(m.numpy()) for m in group.masks]
        shards = [sorted({tuple(s.data.shape) for s in m.value.addressable_shards})
                  for m in group.masks]
    return float(np.median(walls)), float(np.median(cpus)), masks, shards, group.size


def model_parallel_update():
    rows = []
    for sparsity in (0.5, 0.9, 0.98):
        one_wall, one_cpu, one_masks, _, size = _time_update(None, sparsity)
        mp_wall, mp_cpu, mp_masks, shards, _ = _time_update(_model_parallel(), sparsity)
        equal = all(np.array_equal(a, b) for a, b in zip(one_masks, mp_masks))
        rows.append({"sparsity": sparsity, "weights": size, "one_device_s": one_wall,
                     "one_device_cpu_s": one_cpu, "model_parallel_s": mp_wall,
                     "model_parallel_cpu_s": mp_cpu, "masks_equal": equal,
                     "mask_shards": [[list(s) for s in m] for m in shards]})
        print(f"update at {sparsity}: one device {one_wall:.3f} s, ModelParallel over "
              f"{FLAGS.devices} {mp_wall:.3f} s, masks equal: {equal}", flush=True)
    return rows


# Each part of the run and the result keys it writes.
PARTS = {"data_parallel": ("data_parallel", "epochs"),
         "model_parallel": ("model_parallel_update",)}


def _measure(part):
    """The result entries of one part (see `PARTS`)."""
    if part == "model_parallel":
        return {"model_parallel_update": model_parallel_update()}
    mnist = data.load("mnist", "train", FLAGS.batch_size, data_dir=overhead.DATA_DIR,
                      shuffle_seed=0)
    return {"data_parallel": {
        "lenet_300_100": dict(data_parallel_overhead("lenet_300_100", mnist, FLAGS.frequency),
                              data="real MNIST", batch_size=FLAGS.batch_size,
                              frequency=FLAGS.frequency),
        "resnet20": dict(data_parallel_overhead("resnet20", _resnet_data(),
                                                FLAGS.resnet_frequency),
                         data=f"generated, {FLAGS.resnet_examples} examples",
                         batch_size=FLAGS.resnet_batch_size,
                         frequency=FLAGS.resnet_frequency)},
            "epochs": FLAGS.epochs}


def main(argv):
    del argv
    if keras.backend.backend() != "jax":
        raise SystemExit("keras.distribution lays out variables on JAX only: "
                         "run with --backend=jax.")
    unknown = sorted(set(FLAGS.parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"Unknown --parts {unknown}: use {', '.join(PARTS)}.")
    out = FLAGS.out or "distribution.json"
    previous = {}
    if set(FLAGS.parts) != set(PARTS):
        path = os.path.join(common.RESULTS_DIR, out)
        if not os.path.exists(path):
            raise SystemExit(f"--parts={','.join(FLAGS.parts)} keeps the other part from "
                             f"{path}, which does not exist: run every part first.")
        with open(path) as f:
            previous = json.load(f)
    result = {"provenance": common.provenance(common.command_line()),
              "devices": len(keras.distribution.list_devices())}
    for part, keys in PARTS.items():
        if part in FLAGS.parts:
            result.update(_measure(part))
        else:  # kept from the previous run, with the provenance it was measured under
            result.update({key: previous[key] for key in keys})
            result[f"{part}_provenance"] = previous.get(f"{part}_provenance",
                                                        previous["provenance"])
    common.finish(out, result, report=False)


if __name__ == "__main__":
    app.run(main)
