"""Width pruning of a small ViT on real MNIST: half the feed-forward neurons
and half the heads, five ways, final-epoch test accuracy.

The model: `kp.models.vit_tiny`, KerasHub's `ViTBackbone` (28x28x1, patch
7: 16 patches and a class token; 4 blocks, hidden 64, 4 heads of 16, MLP
128) and a Dense(10) on the class token. Arms, each for seeds 0, 1 and 2:

- dense: trained `--epochs` epochs;
- progressive: `structure="channel"` masks rising from 0 to 50% of every
  block's neurons and heads over the first half of the same epochs
  (PolynomialDecay), then `kp.shrink`;
- progressive (activation): the same, each update ranking neurons and heads
  by their mean absolute activation over 2 training batches
  (`ProgressivePruningCallback(importance=kp.importance.Activation(...))`);
- one-shot + fine-tune: the dense model of the same seed, `kp.prune_width
  (ffn=0.5, heads=0.5)` ranked by activations over 8 training batches, then
  `--recover_epochs` epochs of plain training;
- one-shot + distillation: the same shrunk model, `--recover_epochs` epochs
  of `keras.distillation.Distiller` (teacher: the dense model,
  `LogitsDistillation`, temperature 2, student loss weight 0.5);
- progressive during distillation: the dense model of the same seed,
  wrapped with `structure="channel"`, masks rising from 0 to 50% over the
  first half of `--recover_epochs` epochs of the same distillation,
  ranked by activations over 2 training batches, then `kp.shrink`;
- from scratch: the shrunk architecture, freshly initialized, trained
  `--epochs` epochs (Liu et al., 2019).

Every arm uses Adam with a cosine decay and batch 128 on the first 20,000
training images (`--train_examples`; all 55,000 take 2 minutes an epoch on
these 2 cores); the test set (all 10,000) is read once, after the last
epoch, and nothing is chosen on it. Parameters, MACs per image (blocks only, counted
by the width rules) and CPU latency at batch 32 (alternating, one process)
are reported beside.

    python -m benchmarks.vit_width                # ~25 min on 2 cores
    python -m benchmarks.vit_width --quick        # 1 epoch on 2,000 images: a smoke run

Results: benchmarks/results/vit_width.json (`--quick`: vit_width_quick.json);
BENCHMARKS.md is regenerated (not after --quick). Cells are cached in
benchmarks/results/vit_width/, so an interrupted run resumes.
"""

import json
import os
import time

from absl import app
from absl import flags
import keras
import numpy as np

from benchmarks import common
import keras_progprune as kp
from keras_progprune import models
from keras_progprune.experiments import timing

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "1 epoch on 2,000 images: a smoke run.")
flags.DEFINE_integer("epochs", 4, "Epochs of the dense, progressive and scratch arms.")
flags.DEFINE_integer("train_examples", 20000, "Training images used (the first ones of "
                     "the training split; 0: all 55,000).")
flags.DEFINE_integer("recover_epochs", 2, "Epochs of fine-tuning or distillation.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_boolean("latency", True, "Time the dense and shrunk models (wall time: run "
                     "alone). --nolatency keeps the last result file's figures, with the "
                     "commit they were measured at.")
flags.DEFINE_string("data_dir", os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "data", "mnist"), "MNIST IDX folder.")

BATCH = 128
LR = 2e-3
ARMS = ("dense", "progressive", "progressive (activation)", "one-shot + fine-tune",
        "one-shot + distillation", "progressive during distillation", "from scratch")
# Arms that need no other arm's model: computed alone when a cached seed lacks them.
ALONE = ("progressive", "progressive (activation)")
# Arms that start from the seed's dense model: computed alone from the cached
# dense weights (or the dense model trained again, when they aren't cached).
FROM_DENSE = ("progressive during distillation",)
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def vit():
    return models.get_model("vit_tiny")


def _data():
    limit = 2000 if FLAGS.quick else (FLAGS.train_examples or None)
    train = kp.data.load("mnist", "train", BATCH, data_dir=FLAGS.data_dir, limit=limit)
    test = kp.data.load("mnist", "test", 1000, data_dir=FLAGS.data_dir,
                        limit=1000 if FLAGS.quick else None)
    return train, test


def _optimizer(steps):
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LR, steps))


def _accuracy(model, test):
    correct = total = 0
    for x, y in test:
        logits = keras.ops.convert_to_numpy(model(x, training=False))
        correct += int(np.sum(np.argmax(logits, -1) == np.asarray(y)))
        total += len(y)
    return correct / total


def _fit(model, train, epochs, callbacks=()):
    steps = epochs * int(train.cardinality())
    model.compile(_optimizer(steps), LOSS, metrics=["accuracy"])
    start = time.process_time()
    model.fit(train, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return time.process_time() - start


def progressive(arm, seed, train, epochs):
    """`(shrunk model, train CPU s)` of a progressive arm: masks from 0 to 50%
    of the neurons and heads over the first half of training."""
    keras.utils.set_random_seed(seed)
    steps = epochs * int(train.cardinality())
    pruned = kp.prune_low_magnitude(vit(), kp.PolynomialDecay(
        0.0, 0.5, begin_step=0, end_step=steps // 2, frequency=max(1, steps // 40)),
        structure="channel")
    importance = (kp.importance.Activation(train.take(2), batches=2)
                  if arm == "progressive (activation)" else None)
    cpu = _fit(pruned, train, epochs, [kp.ProgressivePruningCallback(importance=importance)])
    return kp.shrink(pruned), cpu


def _distiller(teacher, student):
    return keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=2.0, loss=keras.losses.KLDivergence()),
        student_loss_weight=0.5)


def during_distillation(dense, train, recover):
    """`(shrunk model, CPU s)`: channel masks rising to 50% while the
    student distills from `dense`, then shrunk."""
    steps = recover * int(train.cardinality())
    student = kp.prune_low_magnitude(dense, kp.PolynomialDecay(
        0.0, 0.5, begin_step=0, end_step=steps // 2, frequency=max(1, steps // 40)),
        structure="channel")
    callback = kp.ProgressivePruningCallback(
        importance=kp.importance.Activation(train.take(2), batches=2))
    cpu = _fit(_distiller(dense, student), train, recover, [callback])
    return kp.shrink(student), cpu


def _dense_path(seed):
    return os.path.join(os.path.dirname(_cell_path(seed)), f"dense_seed{seed}.weights.h5")


def _dense_of(seed, train, epochs):
    """`(the seed's dense model, its train CPU s)`: from the cached weights,
    or trained again (and cached)."""
    keras.utils.set_random_seed(seed)
    dense = vit()
    path = _dense_path(seed)
    if os.path.exists(path):
        dense.load_weights(path)
        with open(path + ".json") as f:
            return dense, json.load(f)["train_cpu_s"]
    cpu = _fit(dense, train, epochs)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    dense.save_weights(path)
    with open(path + ".json", "w") as f:
        json.dump({"train_cpu_s": cpu}, f)
    return dense, cpu


def _summary(model, cpu, test):
    return {"accuracy": _accuracy(model, test), "train_cpu_s": cpu,
            "parameters": int(model.count_params()),
            "block_macs": common.block_macs(model, 17)}


def run_seed(seed, train, test, epochs, recover):
    out = {}
    dense, cpu = _dense_of(seed, train, epochs)
    out["dense"] = (dense, cpu)

    for arm in ALONE:
        out[arm] = progressive(arm, seed, train, epochs)

    calibration = train.take(8)
    start = time.process_time()
    shrunk = kp.prune_width(dense, ffn=0.5, heads=0.5, data=calibration)
    cpu_prune = time.process_time() - start
    tuned = keras.models.clone_model(shrunk)
    tuned.set_weights(shrunk.get_weights())
    cpu = _fit(tuned, train, recover)
    out["one-shot + fine-tune"] = (tuned, out["dense"][1] + cpu_prune + cpu)

    student = keras.models.clone_model(shrunk)
    student.set_weights(shrunk.get_weights())
    cpu = _fit(_distiller(dense, student), train, recover)
    out["one-shot + distillation"] = (student, out["dense"][1] + cpu_prune + cpu)
    small, cpu = during_distillation(dense, train, recover)
    out["progressive during distillation"] = (small, out["dense"][1] + cpu)

    keras.utils.set_random_seed(seed)
    scratch = keras.models.clone_model(shrunk)  # same architecture, new weights
    cpu = _fit(scratch, train, epochs)
    out["from scratch"] = (scratch, cpu)
    return out


def _cell_path(seed):
    suffix = "_quick" if FLAGS.quick else ""
    return os.path.join(common.RESULTS_DIR, f"vit_width{suffix}", f"seed{seed}.json")


def main(argv):
    del argv
    train, test = _data()
    epochs, recover = (1, 1) if FLAGS.quick else (FLAGS.epochs, FLAGS.recover_epochs)
    cells = {}
    for seed in (int(s) for s in FLAGS.seeds):
        path = _cell_path(seed)
        if os.path.exists(path):
            with open(path) as f:
                cells[seed] = json.load(f)
            missing = [arm for arm in ARMS if arm not in cells[seed]]
            if not missing:
                print(f"[vit_width] seed {seed}: cached", flush=True)
                continue
            if any(arm not in ALONE + FROM_DENSE for arm in missing):
                raise SystemExit(f"{path} lacks arms {missing}: delete it to rerun the seed.")
            for arm in missing:  # an arm added later: run it alone, say when
                extra = {}
                if arm in ALONE:
                    made = progressive(arm, seed, train, epochs)
                else:
                    # A seed cached before its dense weights were: the dense
                    # model is trained again (TensorFlow's CPU kernels are not
                    # bitwise reproducible), and the cell says how it scored.
                    retrained = not os.path.exists(_dense_path(seed))
                    dense, dense_cpu = _dense_of(seed, train, epochs)
                    small, cpu = during_distillation(dense, train, recover)
                    made = (small, dense_cpu + cpu)
                    if retrained:
                        extra = {"teacher_retrained_accuracy": _accuracy(dense, test)}
                cells[seed][arm] = {**_summary(*made, test), **extra}
                cells[seed][arm]["git"] = common.provenance("")["git"]
            cells[seed] = {arm: cells[seed][arm] for arm in ARMS}
        else:
            trained = run_seed(seed, train, test, epochs, recover)
            cells[seed] = {arm: _summary(m, cpu, test) for arm, (m, cpu) in trained.items()}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        common.write_result(os.path.relpath(path, common.RESULTS_DIR), cells[seed])
        print(f"[vit_width] seed {seed}: " + ", ".join(
            f"{a} {c['accuracy']:.4f}" for a, c in cells[seed].items()), flush=True)
    # Speed doesn't depend on the values: a fresh dense model against its
    # shrunk architecture, alternating, batch 32.
    out = os.path.join(common.RESULTS_DIR, "vit_width_quick.json" if FLAGS.quick
                       else "vit_width.json")
    if FLAGS.latency or not os.path.exists(out):
        dense = vit()
        shrunk = kp.prune_width(dense, ffn=0.5, heads=0.5, importance="magnitude")
        latency = timing.latency_ms({"dense": dense, "shrunk": shrunk}, (28, 28, 1),
                                    batch_size=32, repeats=3 if FLAGS.quick else 30)
        latency_git = common.provenance("")["git"]
    else:
        with open(out) as f:
            last = json.load(f)
        latency = last["latency_ms_b32"]
        latency_git = last.get("latency_git") or last["provenance"]["git"]
    common.finish("vit_width_quick.json" if FLAGS.quick else "vit_width.json", {
        "provenance": common.provenance(common.command_line()),
        "backend": keras.backend.backend(), "epochs": epochs, "recover_epochs": recover,
        "batch_size": BATCH, "learning_rate": LR, "train_examples": FLAGS.train_examples, "arms": list(ARMS),
        "seeds": {str(k): v for k, v in cells.items()}, "latency_ms_b32": latency,
        "latency_git": latency_git},
        report=not FLAGS.quick)


if __name__ == "__main__":
    app.run(main)
