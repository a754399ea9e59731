"""Half of a small Llama 3's blocks, seven ways, on real text: progressive
structured pruning during distillation against one-shot Minitron, depth,
iterative pruning and training from scratch.

The corpus: CPython 3.11.7's standard library source (`data/pystdlib`,
pinned by SHA-256), read byte by byte; held-out modules give bits per byte
(lower is better), measured once per arm after its last step on a fixed
set of windows, and nothing is selected on them.

The teacher: a KerasHub `Llama3CausalLM` (grouped-query attention, SwiGLU,
RMSNorm; 4 blocks, hidden 192, 8 query heads of 24 in 2 key/value groups,
MLP 768; about 2.2M parameters) trained `--teacher_steps` steps with
cross-entropy, cached in benchmarks/results/llm_distill/ (not in git).
One teacher for every seed: it is the reference, not an arm.

Each arm has about half of the teacher's block parameters and the same
recovery budget, `--steps` steps of `keras.distillation.Distiller`
(`LogitsDistillation`, temperature 2, student loss weight 0.5, Adam with a
cosine decay from 1e-3) on the same windows for a seed:

| arm | how |
| --- | --- |
| one-shot width | `prune_width(ffn=0.5, heads=0.5)` by activations, then distill |
| one-shot depth | `prune_depth(blocks=0.5)` by block influence, then distill |
| width and hidden | `prune_width(ffn=0.4, hidden=0.25)` (Minitron's best axes), then distill |
| progressive width | channel masks rising 0 -> 50% of neurons and query heads over the first half of the distillation, ranked by activations, then `kp.shrink` |
| iterative | `prune_width(ffn=0.25, heads=0.25)`, half the steps, `prune_width(ffn=1/3, heads=1/3)`, the other half |
| from scratch | the one-shot width architecture, fresh weights, the same distillation |
| dense teacher | the reference |

"From scratch" is distilled too, so that only the starting weights differ
from the pruned arms (the same loss, tokens and steps). Calibration: 8
training windows. Reported per arm and seed: held-out bits per byte, the
parameters (all, and the blocks'), the CPU time of pruning and recovery
(`time.process_time()`, all threads), and `generate()` tokens per second
at batch 1 (greedy, 64 new tokens; median of 3, wall and CPU).

    python -m benchmarks.llm_distill --backend=jax   # ~30 min on 2 cores
    python -m benchmarks.llm_distill --backend=jax --quick   # a smoke run, ~2 min

Results: benchmarks/results/llm_distill.json (`--quick`:
llm_distill_quick.json); BENCHMARKS.md is regenerated (not after --quick).
Each arm and seed is cached as it finishes, so an interrupted run resumes.
The goals, fixed before the held-out split was read: the best arm within
10% of the teacher's bits per byte; every pruned arm better than from
scratch; progressive at least as good as one-shot width.
"""

from benchmarks import backend_flag  # noqa: F401  (first: sets the backend)

import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
import keras_progprune as kp  # noqa: E402
from keras_progprune.experiments import llm  # noqa: E402
from keras_progprune.experiments import text  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "A tiny teacher and a few steps: a smoke run.")
flags.DEFINE_integer("teacher_steps", 2000, "Training steps of the teacher.")
flags.DEFINE_integer("steps", 400, "Recovery (distillation) steps of every arm.")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds of the arms.")
flags.DEFINE_integer("eval_windows", 256, "Held-out windows measured (fixed, evenly spaced).")

BATCH, LENGTH = 16, 64
TEACHER = dict(vocabulary_size=text.VOCABULARY_SIZE, num_layers=4, num_query_heads=8,
               num_key_value_heads=2, hidden_dim=192, intermediate_dim=768,
               tie_word_embeddings=False)
QUICK_TEACHER = dict(TEACHER, num_layers=2, hidden_dim=32, intermediate_dim=64)
ARMS = ("dense teacher", "one-shot width", "one-shot depth", "width and hidden",
        "progressive width", "iterative", "from scratch")
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _steps():
    return (30, 12) if FLAGS.quick else (FLAGS.teacher_steps, FLAGS.steps)


def _inputs(tokens):
    return {"token_ids": tokens, "padding_mask": np.ones_like(tokens)}


def _train_windows(count, seed):
    x, y = text.windows(text.load_corpus("train"), LENGTH, count, seed)
    return _inputs(x), y


def bits_per_byte(model, heldout):
    """Held-out bits per byte on `--eval_windows` evenly spaced windows
    (the LLM job's own measure)."""
    return text.bits_per_byte(llm.nats_per_token(model, heldout, LENGTH, FLAGS.eval_windows))


def _optimizer(lr, steps):
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, max(steps, 1)))


def _block_parameters(model):
    backbone = getattr(model, "backbone", model)
    return int(sum(layer.count_params() for layer in backbone.transformer_layers))


def teacher():
    """The trained teacher: loaded from its cache, or trained and cached."""
    steps = _steps()[0]
    config = QUICK_TEACHER if FLAGS.quick else TEACHER
    keras.utils.set_random_seed(1234)
    import keras_hub  # noqa: PLC0415

    model = keras_hub.models.Llama3CausalLM(
        backbone=keras_hub.models.Llama3Backbone(**config), preprocessor=None)
    path = os.path.join(_cell_dir(), f"teacher_{steps}.weights.h5")
    if os.path.exists(path):
        model(_inputs(np.zeros((1, LENGTH), "int32")))
        model.load_weights(path)
        with open(path + ".json") as f:
            return model, json.load(f)["train_cpu_s"]
    x, y = _train_windows(steps * BATCH, seed=1234)
    model.compile(_optimizer(3e-3, steps), LOSS)
    start = time.process_time()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=2 if not FLAGS.quick else 0)
    cpu = time.process_time() - start
    os.makedirs(_cell_dir(), exist_ok=True)
    model.save_weights(path)
    with open(path + ".json", "w") as f:
        json.dump({"train_cpu_s": cpu, "steps": steps}, f)
    return model, cpu


def _distill(teacher_model, student, x, y, steps, callbacks=()):
    # Every arm after the first prunes a teacher that a Distiller has frozen
    # in place: `llm.distiller` unfreezes the student.
    distiller = llm.distiller(teacher_model, student)
    distiller.compile(optimizer=_optimizer(1e-3, steps), loss=LOSS)
    start = time.process_time()
    distiller.fit({k: v[:steps * BATCH] for k, v in x.items()}, y[:steps * BATCH],
                  batch_size=BATCH, epochs=1, verbose=0, callbacks=list(callbacks))
    return time.process_time() - start


def _timed(function):
    start = time.process_time()
    out = function()
    return out, time.process_time() - start


def run_arm(arm, seed, teacher_model, teacher_cpu):
    """`(model, {"prune_cpu_s", "recover_cpu_s"})` of one arm and seed."""
    steps = _steps()[1]
    x, y = _train_windows(steps * BATCH, seed=seed)
    calibration = [({k: v[i:i + 1] for k, v in x.items()}, y[i:i + 1]) for i in range(8)]
    keras.utils.set_random_seed(seed)
    if arm == "dense teacher":
        return teacher_model, {"prune_cpu_s": 0.0, "recover_cpu_s": teacher_cpu}
    if arm == "progressive width":
        student, cpu = _timed(lambda: kp.prune_low_magnitude(
            teacher_model, kp.PolynomialDecay(0.0, 0.5, 0, steps // 2,
                                              frequency=max(1, steps // 20)),
            structure="channel"))
        callback = kp.ProgressivePruningCallback(
            importance=kp.importance.Activation(calibration[:2], batches=2))
        recover = _distill(teacher_model, student, x, y, steps, [callback])
        small, shrink_cpu = _timed(lambda: kp.shrink(student))
        return small, {"prune_cpu_s": cpu + shrink_cpu, "recover_cpu_s": recover}
    if arm == "iterative":
        first, cpu1 = _timed(lambda: kp.prune_width(
            teacher_model, ffn=0.25, heads=0.25, data=calibration))
        half = steps // 2
        recover = _distill(teacher_model, first, x, y, half)
        second, cpu2 = _timed(lambda: kp.prune_width(
            first, ffn=1 / 3, heads=1 / 3, data=calibration))
        rest = {k: v[half * BATCH:] for k, v in x.items()}
        recover += _distill(teacher_model, second, rest, y[half * BATCH:], steps - half)
        return second, {"prune_cpu_s": cpu1 + cpu2, "recover_cpu_s": recover}
    made = {
        "one-shot width": lambda: kp.prune_width(teacher_model, ffn=0.5, heads=0.5,
                                                 data=calibration),
        "one-shot depth": lambda: kp.prune_depth(teacher_model, 0.5, data=calibration),
        "width and hidden": lambda: kp.prune_width(teacher_model, ffn=0.4, hidden=0.25,
                                                   data=calibration),
        "from scratch": lambda: keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(kp.prune_width(
                teacher_model, ffn=0.5, heads=0.5, importance="magnitude"))),
    }[arm]
    student, cpu = _timed(made)
    if arm == "from scratch":
        cpu = 0.0  # a fresh model: nothing pruned
    recover = _distill(teacher_model, student, x, y, steps)
    return student, {"prune_cpu_s": cpu, "recover_cpu_s": recover}


def tokens_per_second(model, repeats=3):
    prompt = _inputs(np.zeros((1, 80), "int32"))
    prompt["token_ids"][:, :16] = np.frombuffer(b"def main(argv):\n", np.uint8)
    prompt["padding_mask"][:, 16:] = 0
    model.generate(prompt, stop_token_ids=None)  # compile
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        model.generate(prompt, stop_token_ids=None)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return 64 / float(np.median(walls)), 64 / float(np.median(cpus))


def _cell_dir():
    """The cache of this recipe's teacher and cells: one folder per number
    of steps, so that a run with other steps never reads them."""
    teacher_steps, steps = _steps()
    return os.path.join(common.RESULTS_DIR, "llm_distill_quick" if FLAGS.quick
                        else "llm_distill", f"teacher{teacher_steps}_steps{steps}")


def main(argv):
    del argv
    heldout = text.load_corpus("heldout")
    teacher_model, teacher_cpu = teacher()
    teacher_blocks = _block_parameters(teacher_model)
    cells = {}
    for seed in (int(s) for s in FLAGS.seeds):
        for arm in ARMS:
            path = os.path.join(_cell_dir(), f"{arm.replace(' ', '_')}_seed{seed}.json")
            if os.path.exists(path):
                with open(path) as f:
                    cells[(arm, seed)] = json.load(f)
                continue
            if arm == "dense teacher" and seed != int(FLAGS.seeds[0]):
                cells[(arm, seed)] = cells[(arm, int(FLAGS.seeds[0]))]
                continue
            model, cpu = run_arm(arm, seed, teacher_model, teacher_cpu)
            wall_tps, cpu_tps = tokens_per_second(model)
            cell = {"arm": arm, "seed": seed, "bits_per_byte": bits_per_byte(model, heldout),
                    "parameters": int(model.count_params()),
                    "block_parameters": _block_parameters(model),
                    "block_fraction": _block_parameters(model) / teacher_blocks,
                    "class": type(model).__name__,
                    "generate_tokens_per_s": wall_tps, "generate_tokens_per_cpu_s": cpu_tps,
                    **cpu}
            cells[(arm, seed)] = cell
            common.write_result(os.path.relpath(path, common.RESULTS_DIR), cell)
            print(f"[llm_distill] {arm} seed {seed}: {cell['bits_per_byte']:.4f} bits/byte, "
                  f"{cell['block_fraction']:.2f} of the blocks", flush=True)
    rows = []
    for arm in ARMS:
        values = [cells[(arm, int(s))] for s in FLAGS.seeds]
        rows.append({"arm": arm, "cells": values,
                     "mean_bits_per_byte": float(np.mean([c["bits_per_byte"] for c in values]))})
    teacher_steps, steps = _steps()
    common.finish("llm_distill_quick.json" if FLAGS.quick else "llm_distill.json", {
        "provenance": common.provenance(common.command_line()),
        "teacher": dict(QUICK_TEACHER if FLAGS.quick else TEACHER),
        "teacher_steps": teacher_steps, "steps": steps, "batch": BATCH, "length": LENGTH,
        "eval_windows": min(FLAGS.eval_windows, len(text.tiled(heldout, LENGTH)[0])), "seeds": [int(s) for s in FLAGS.seeds],
        "rows": rows,
    }, report=not FLAGS.quick)


if __name__ == "__main__":
    app.run(main)
