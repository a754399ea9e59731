"""Channel pruning's payoff: parameters, MACs, file size and CPU latency.

For each model, channel masks are set at 0, 25, 50 and 75% of every coupled
channel group (`scope="layer"`: each group loses that fraction, so "50%"
means half the channels everywhere a channel can go), from the magnitudes
of a randomly initialized model (speed doesn't depend on the values), then
`kp.shrink` rebuilds the model. Each shrunk model is checked against its
masked model (outputs within 1e-4) before it is timed.

Latency: `model(x, training=False)` in a `tf.function`, CPU, batch 1 and
batch 32, every variant of one model timed in one process in alternating
order; the median of the runs is reported, with the speed-up over the
dense model and the MAC ratio beside it as the ideal. ResNet-18 is also
built at half width from scratch, the ceiling for 50% of channels.

    python -m benchmarks.shrink            # ~15 min on 2 cores, nothing else running
    python -m benchmarks.shrink --quick    # small inputs, 2 repeats: a smoke run
    python -m benchmarks.shrink --only=vgg19   # rerun some models, keep the rest
    python -m benchmarks.shrink --lenets   # the channel grid's shrunk LeNets, batch 32

Results: benchmarks/results/shrink.json (`--quick`: shrink_quick.json);
BENCHMARKS.md is regenerated at the end (not after `--quick`).
"""

import json
import os
import tempfile

from absl import app
from absl import flags
import keras
import numpy as np

from benchmarks import common
import keras_progprune as kp
from keras_progprune import engine
from keras_progprune import models
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.experiments import timing
from keras_progprune.models import resnet as resnet_lib

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "Small inputs and 2 repeats: a smoke run.")
flags.DEFINE_list("only", [], "Restrict to these model names.")
flags.DEFINE_boolean("lenets", False, "Time the channel grid's shrunk LeNets instead.")

FRACTIONS = (0.0, 0.25, 0.5, 0.75)
# name -> (builder, input shape); keras.applications at ImageNet size.
MODELS = {
    "resnet18": (lambda s: models.resnet18(s, 10), (32, 32, 3)),
    "vgg19": (lambda s: models.vgg19(s, 10), (32, 32, 3)),
    "resnet20": (lambda s: models.resnet20(s, 10), (32, 32, 3)),
    "ResNet50": (lambda s: keras.applications.ResNet50(
        weights=None, input_shape=s, classifier_activation=None), (224, 224, 3)),
    "MobileNetV2": (lambda s: keras.applications.MobileNetV2(
        weights=None, input_shape=s, classifier_activation=None), (224, 224, 3)),
}
REPEATS = {1: 30, 32: 7}


def resnet18_half(shape):
    """ResNet-18 with every width halved, built directly: the ceiling."""
    return resnet_lib._resnet(shape, 10, 32, [(32, 2), (64, 2), (128, 2), (256, 2)],
                              "resnet18_half")


def shrunk_at(model, fraction, x):
    """The model with `fraction` of every channel group removed."""
    if fraction == 0.0:
        return model
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(fraction, 0), scope="layer",
                                    structure="channel")
    (group,) = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
    group.update(fraction)
    small = kp.shrink(pruned)
    expected = keras.ops.convert_to_numpy(pruned(x, training=False))
    got = keras.ops.convert_to_numpy(small(x, training=False))
    error = float(np.max(np.abs(expected - got)))
    scale = float(np.max(np.abs(expected))) or 1.0
    if error > 1e-4 * max(1.0, scale):
        raise AssertionError(f"shrunk model differs from the masked one by {error}")
    return small


def keras_bytes(model):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        return os.path.getsize(path)


def measure(name, build, shape, quick):
    keras.utils.set_random_seed(0)
    dense = build(shape)
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype("float32")
    variants = {f"{int(f * 100)}%": shrunk_at(dense, f, x) for f in FRACTIONS}
    if name == "resnet18":
        variants["half width (built)"] = resnet18_half(shape)
    rows = {}
    for label, model in variants.items():
        graph_macs = kp.sparsity_report(model)["macs"]["dense"]
        rows[label] = {"parameters": int(model.count_params()), "macs": int(graph_macs),
                       "keras_bytes": keras_bytes(model)}
    for batch, repeats in REPEATS.items():
        latency = timing.latency_ms(variants, shape, batch_size=batch,
                                    repeats=2 if quick else repeats)
        for label, ms in latency.items():
            rows[label][f"latency_ms_b{batch}"] = ms
    dense_row = rows["0%"]
    for row in rows.values():
        row["mac_ratio"] = dense_row["macs"] / row["macs"]
        for batch in REPEATS:
            row[f"speedup_b{batch}"] = dense_row[f"latency_ms_b{batch}"] / row[
                f"latency_ms_b{batch}"]
    print(f"[shrink] {name}: " + ", ".join(
        f"{k} {v['speedup_b32']:.2f}x (MACs {v['mac_ratio']:.2f}x)" for k, v in rows.items()),
        flush=True)
    return {"input_shape": list(shape), "rows": rows}


def lenet_latency():
    """Batch-32 CPU latency of the channel grid's shrunk LeNets (seed 0)
    against their dense models: `--lenets`."""
    rows = []
    for name in ("lenet5", "lenet_300_100"):
        for sparsity in (0.5, 0.75):
            # The file benchmarks.grid writes (`architecture_path`).
            path = os.path.join(common.RESULTS_DIR, "grid", f"{name}__progressive_channel__"
                                f"s{sparsity:g}__seed0.architecture.json")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                small = keras.models.model_from_json(f.read())
            dense = models.get_model(name, input_shape=(28, 28, 1), num_classes=10)
            ms = timing.latency_ms({"dense": dense, "shrunk": small}, (28, 28, 1),
                                   batch_size=32, repeats=30)
            rows.append({"model": name, "sparsity": sparsity, "seed": 0,
                         "dense_ms": ms["dense"], "shrunk_ms": ms["shrunk"]})
            print(f"[shrink] {name} {sparsity:.0%}: {ms['dense'] / ms['shrunk']:.2f}x",
                  flush=True)
    common.finish("shrink_lenets.json", {
        "provenance": common.provenance(common.command_line()), "rows": rows})


def main(argv):
    del argv
    if FLAGS.lenets:
        return lenet_latency()
    results = {}
    provenance = common.provenance(common.command_line())
    for name, (build, shape) in MODELS.items():
        if FLAGS.only and name not in FLAGS.only:
            continue
        if FLAGS.quick:
            shape = (32, 32, 3)
        results[name] = dict(measure(name, build, shape, FLAGS.quick), provenance=provenance)
    out = "shrink_quick.json" if FLAGS.quick else "shrink.json"
    previous = os.path.join(common.RESULTS_DIR, out)
    if FLAGS.only and os.path.exists(previous):  # a partial rerun: keep the others
        with open(previous) as f:
            old = json.load(f)
        for model in old["models"].values():  # each row keeps the run it came from
            model.setdefault("provenance", old["provenance"])
        results = {**old["models"], **results}
    common.finish(out, {"provenance": provenance, "fractions": list(FRACTIONS),
                        "repeats": REPEATS, "scope": "layer", "models": results},
                  report=not FLAGS.quick)


if __name__ == "__main__":
    app.run(main)
