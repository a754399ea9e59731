"""Training that gets faster as it prunes: `kp.fit_shrinking` against `fit`.

Timing (2 cores, mock CIFAR-shaped data: speed doesn't depend on the
values): resnet20 (2,048 examples per epoch) and vgg_like (1,024) train 12
epochs of batch 64 three ways, one after the other in one process:

- dense: plain `fit`;
- masked: progressive channel pruning with `fit` (masks only);
- shrinking: the same with `kp.fit_shrinking(..., shrink_every=1)`.

Pruning: layer scope, cubic PolynomialDecay from 0 at step 0 to the target
(50% or 75% of channels) at the start of epoch 4 (a quarter of training),
masks updated 4 times per epoch. Each epoch's wall time is recorded (the first epoch of each phase
includes tracing the smaller model: a real cost of shrinking) and the
total of the whole call is compared with dense.

Accuracy (real MNIST, LeNet-5) comes from the channel grid
(`python -m benchmarks.grid --grid=channel`): `progressive_channel`
against `progressive_channel_shrinking`, the same recipe and seeds.

    python -m benchmarks.shrinking_fit            # ~20 min, nothing else running
    python -m benchmarks.shrinking_fit --quick    # a smoke run

Results: benchmarks/results/shrinking_fit.json and an epoch-time plot per
model (shrinking_fit_<model>.png); BENCHMARKS.md is regenerated at the end.
"""

import time

from absl import app
from absl import flags
import keras
import numpy as np

from benchmarks import common
import keras_progprune as kp
from keras_progprune import models

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "Tiny data and 3 epochs: a smoke run.")
flags.DEFINE_list("only", [], "Restrict to these models.")

EPOCHS = 12
PRUNE_END_EPOCH = 3
BATCH = 64
TARGETS = (0.5, 0.75)
# name -> (builder, examples per epoch): sized so the whole benchmark takes
# about 20 minutes on 2 cores.
MODELS = {"resnet20": (models.resnet20, 2048), "vgg_like": (models.vgg_like, 1024)}


def _compiled(model):
    model.compile(keras.optimizers.SGD(0.02, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _pruned(build, target, steps_per_epoch, epochs):
    end = min(PRUNE_END_EPOCH, epochs - 1) * steps_per_epoch
    schedule = kp.PolynomialDecay(0.0, target, 0, end,
                                  frequency=max(1, steps_per_epoch // 4))
    return _compiled(kp.prune_low_magnitude(build(), schedule, scope="layer",
                                            structure="channel"))


def run_model(name, build, examples, epochs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((examples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, examples)
    steps = examples // BATCH
    fit_args = dict(batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)
    runs = {}

    def timed(label, function):
        keras.utils.set_random_seed(0)
        timer = common.epoch_timer()
        start = time.perf_counter()
        params = function(timer)
        total = time.perf_counter() - start
        runs[label] = {"epoch_s": timer.times, "total_s": total, "final_parameters": params}
        print(f"[shrinking_fit] {name} {label}: {total:.1f} s, epochs "
              + " ".join(f"{t:.1f}" for t in timer.times), flush=True)

    def dense(timer):
        model = _compiled(build())
        model.fit(x, y, callbacks=[timer], **fit_args)
        return int(model.count_params())

    timed("dense", dense)
    for target in TARGETS:
        def masked(timer, target=target):
            model = _pruned(build, target, steps, epochs)
            model.fit(x, y, callbacks=[timer, kp.ProgressivePruningCallback()], **fit_args)
            return int(kp.shrink(model).count_params())

        def shrinking(timer, target=target):
            model = _pruned(build, target, steps, epochs)
            result = kp.fit_shrinking(model, x, y, shrink_every=1, callbacks=[timer],
                                      **fit_args)
            return int(kp.shrink(result.model).count_params())

        timed(f"masked {target:.0%}", masked)
        timed(f"shrinking {target:.0%}", shrinking)
    dense_total = runs["dense"]["total_s"]
    for run in runs.values():
        run["total_vs_dense"] = run["total_s"] / dense_total
    return {"runs": runs, "examples": examples, "batch_size": BATCH, "epochs": epochs,
            "prune_end_epoch": PRUNE_END_EPOCH}


def _plot(name, result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, run in result["runs"].items():
        if label == "dense" or "50%" in label:
            ax.plot(range(1, len(run["epoch_s"]) + 1), run["epoch_s"], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"{name}: epoch time, 50% of channels (2 CPU cores)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv):
    del argv
    import os

    results = {}
    for name, (build, examples) in MODELS.items():
        if FLAGS.only and name not in FLAGS.only:
            continue
        examples, epochs = (256, 3) if FLAGS.quick else (examples, EPOCHS)
        results[name] = run_model(name, build, examples, epochs)
        if not FLAGS.quick:
            _plot(name, results[name], os.path.join(common.RESULTS_DIR,
                                                    f"shrinking_fit_{name}.png"))
    out = "shrinking_fit_quick.json" if FLAGS.quick else "shrinking_fit.json"
    common.finish(out, {"provenance": common.provenance(common.command_line()),
                        "models": results}, report=not FLAGS.quick)


if __name__ == "__main__":
    app.run(main)
