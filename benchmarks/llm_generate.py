"""`generate()` speed of KerasHub decoders after width and depth pruning.

A Llama-3-shaped and a Gemma-shaped `CausalLM` of about 100M parameters
(random init: speed doesn't depend on the values, so the ranking is by
magnitude and needs no data) against `kp.prune_width(ffn=0.5, heads=0.5)`
and `kp.prune_depth(blocks=0.5)`, each at about half the block
parameters. Each model generates greedily from a prompt of `PROMPT`
tokens up to `LENGTH` tokens (`stop_token_ids=None`: always the full
length), batch 1 and 8. The first call of each (the compile) is left
out; then every variant is timed in turn, `--repeats` rounds, and the
median of each is reported as new tokens per second (all sequences),
read from wall time and from CPU time (`time.process_time()`, all
threads).

    python -m benchmarks.llm_generate               # ~10 min on 2 cores, JAX
    python -m benchmarks.llm_generate --quick       # tiny models: a smoke run
    python -m benchmarks.llm_generate --backend=tensorflow

Results: benchmarks/results/llm_generate_<backend>.json (`--quick`:
llm_generate_quick_<backend>.json); BENCHMARKS.md is regenerated at the
end (not after `--quick`).
"""

from benchmarks import backend_flag  # noqa: F401  (first: sets the backend)

import statistics
import time

from absl import app
from absl import flags
import keras
import numpy as np

from benchmarks import common
import keras_progprune as kp

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "Tiny models and 2 rounds: a smoke run.")
flags.DEFINE_integer("repeats", 5, "Timed rounds of every variant.")

PROMPT, LENGTH = 16, 64
BATCHES = (1, 8)
_SHARED = dict(vocabulary_size=16384, num_layers=12, num_query_heads=16,
               num_key_value_heads=4, hidden_dim=768)
# Family -> backbone arguments (about 100M parameters each).
CONFIGS = {
    "Llama3": dict(_SHARED, intermediate_dim=2048),
    "Gemma": dict(_SHARED, intermediate_dim=4096, head_dim=64),  # counts both branches
}
QUICK = {
    "Llama3": dict(vocabulary_size=256, num_layers=2, num_query_heads=4,
                   num_key_value_heads=2, hidden_dim=32, intermediate_dim=64),
    "Gemma": dict(vocabulary_size=256, num_layers=2, num_query_heads=4,
                  num_key_value_heads=2, hidden_dim=32, intermediate_dim=128, head_dim=8),
}
VARIANTS = {
    "dense": lambda task: task,
    "prune_width(ffn=0.5, heads=0.5)": lambda task: kp.prune_width(
        task, ffn=0.5, heads=0.5, importance="magnitude"),
    # Which blocks go doesn't change the speed: the last half.
    "prune_depth(blocks=0.5)": lambda task: kp.prune_depth(
        task, 0.5, importance=lambda model, data: -np.arange(
            len(model.backbone.transformer_layers))),
}


def causal_lm(family, config):
    import keras_hub  # noqa: PLC0415

    models = keras_hub.models
    backbone = getattr(models, f"{family}Backbone")(**config)
    return getattr(models, f"{family}CausalLM")(backbone=backbone, preprocessor=None)


def block_parameters(task):
    return int(sum(np.prod(w.shape) for block in task.backbone.transformer_layers
                   for w in block.weights))


def prompt(batch):
    rng = np.random.default_rng(batch)
    ids = rng.integers(1, 200, (batch, LENGTH)).astype("int32")
    mask = np.zeros((batch, LENGTH), "int32")
    mask[:, :PROMPT] = 1
    return {"token_ids": ids * mask, "padding_mask": mask}


def run_family(family, config, repeats):
    task = causal_lm(family, config)
    variants = {name: make(task) for name, make in VARIANTS.items()}
    for model in variants.values():
        model.compile(sampler="greedy")
    rows = {name: {"parameters": int(m.count_params()),
                   "block_parameters": block_parameters(m)} for name, m in variants.items()}
    for batch in BATCHES:
        inputs = prompt(batch)
        new_tokens = batch * (LENGTH - PROMPT)
        for model in variants.values():  # compile, untimed
            model.generate(inputs, stop_token_ids=None)
        wall = {name: [] for name in variants}
        cpu = {name: [] for name in variants}
        for _ in range(repeats):
            for name, model in variants.items():
                w0, c0 = time.perf_counter(), time.process_time()
                out = model.generate(inputs, stop_token_ids=None)
                np.asarray(keras.ops.convert_to_numpy(out["token_ids"]))
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
        for name in variants:
            rows[name][f"b{batch}"] = {
                "wall_s": wall[name], "cpu_s": cpu[name],
                "tokens_per_s_wall": new_tokens / statistics.median(wall[name]),
                "tokens_per_s_cpu": new_tokens / statistics.median(cpu[name])}
        print(family, batch, {n: round(rows[n][f"b{batch}"]["tokens_per_s_wall"], 1)
                              for n in variants}, flush=True)
    return {"config": config, "rows": rows}


def main(argv):
    del argv
    configs = QUICK if FLAGS.quick else CONFIGS
    repeats = 2 if FLAGS.quick else FLAGS.repeats
    payload = {"provenance": common.provenance(common.command_line()),
               "prompt": PROMPT, "length": LENGTH, "repeats": repeats,
               "goal_speedup": 1.6,
               "families": {f: run_family(f, c, repeats) for f, c in configs.items()}}
    backend = keras.backend.backend()
    name = f"llm_generate{'_quick' if FLAGS.quick else ''}_{backend}.json"
    common.finish(name, payload, report=not FLAGS.quick)


if __name__ == "__main__":
    app.run(main)
