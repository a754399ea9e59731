"""Accuracy against sparsity on real MNIST, for every method, resumable.

Every cell (model, method, sparsity, seed) trains with the model's one
recipe (below) and is cached as JSON under benchmarks/results/grid/; a
cached cell is skipped, so the grid can run across several sittings.
Lottery runs one chain per (model, seed) whose rounds land exactly on every
grid sparsity, and each of those rounds is reported as a cell, with the
training steps of the chain up to that round as its cost.

    python -m benchmarks.grid --grid=full    # make bench
    python -m benchmarks.grid --grid=quick   # make bench-quick (minutes)
    python -m benchmarks.grid --grid=channel # channel pruning vs scratch

Test accuracy is the final epoch's; the recipe was chosen on the validation
split (see BUILD_NOTES.md), never on the test set.
"""

import json
import os

from absl import app
from absl import flags

from benchmarks import common
import keras_progprune as kp
from keras_progprune import experiments

FLAGS = flags.FLAGS
flags.DEFINE_enum("grid", "full", ["full", "nm", "channel", "quick"], "Which grid to run.")
flags.DEFINE_string("data_dir", os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "data", "mnist"), "MNIST IDX folder.")
flags.DEFINE_list("only_models", [], "Restrict to these models.")
flags.DEFINE_list("only_methods", [], "Restrict to these methods.")

# One recipe per model, shared by every method (lottery: per round).
RECIPES = {
    "lenet_300_100": dict(epochs=10, batch_size=60, optimizer="adam", lr=1.2e-3,
                          lr_schedule="cosine"),
    "lenet5": dict(epochs=8, batch_size=60, optimizer="adam", lr=1.2e-3,
                   lr_schedule="cosine"),
}

# (method label, registered method, scope, options)
METHODS = [
    ("dense", "dense", "global", {}),
    ("progressive_global", "progressive", "global", {"schedule": "polynomial"}),
    ("progressive_layer", "progressive", "layer", {"schedule": "polynomial"}),
    ("lottery", "lottery", "global", {"rate": 0.2, "rewind_step": 0}),
    ("snip", "snip", "global", {}),
    ("grasp", "grasp", "global", {}),
    ("synflow", "synflow", "global", {}),
    ("random", "random", "layer", {}),
    # N:M (2:4): the pattern is chosen after 2 dense epochs (ASP-style
    # warm-up), then held; its sparsity is always 50%.
    ("progressive_2of4", "progressive", "global",
     {"schedule": "polynomial", "structure": "2:4", "prune_start": 2}),
    # Channel pruning: the sparsity is the fraction of channels removed; the
    # model is shrunk after training. `scratch_channel` trains the shrunk
    # architecture of the same seed's progressive_channel cell from a fresh
    # initialization, with the same recipe (Liu et al., 2019).
    # Layer scope: "50% of channels" means half of every coupled group's
    # channels, as in benchmarks/shrink.py.
    ("progressive_channel", "progressive", "layer",
     {"schedule": "polynomial", "structure": "channel"}),
    ("scratch_channel", "dense", "global", {}),
    # The same, shrinking the model after every epoch (`kp.fit_shrinking`).
    ("progressive_channel_shrinking", "progressive", "layer",
     {"schedule": "polynomial", "structure": "channel", "shrink_every": 1}),
]
_OPT_IN = ("progressive_2of4", "progressive_channel", "scratch_channel",
           "progressive_channel_shrinking")

# Progressive's learning rate is held while the sparsity rises, then decays
# over the fine-tuning (`lr_schedule="hold_cosine"`, the training script's
# default for progressive): chosen on the validation split with
# benchmarks/tune.py. Every other method keeps the recipe's plain cosine.
_PROGRESSIVE_RECIPE = {"progressive_global_recipe": {"lr_schedule": "hold_cosine"},
                       "progressive_layer_recipe": {"lr_schedule": "hold_cosine"}}

GRIDS = {
    "full": {
        "lenet_300_100": {"sparsities": [0.9, 0.95, 0.98, 0.99], "seeds": [0, 1],
                          **_PROGRESSIVE_RECIPE},
        # Lottery on LeNet-5 is shortened: 40% of the remaining weights
        # pruned per round (10 rounds to 99%, milestones included) instead
        # of 20% (24), to fit the 2-core budget. BENCHMARKS.md says so.
        "lenet5": {"sparsities": [0.95, 0.98, 0.99], "seeds": [0, 1],
                   "lottery_options": {"rate": 0.4},
                   **_PROGRESSIVE_RECIPE},
    },
    # 2:4 against 50% unstructured (and the full grid's dense cells), under
    # the full grid's recipes: `python -m benchmarks.grid --grid=nm`.
    "nm": {
        "lenet_300_100": {"sparsities": [0.5], "seeds": [0, 1],
                          "methods": ["progressive_global", "progressive_2of4"]},
        "lenet5": {"sparsities": [0.5], "seeds": [0, 1],
                   "methods": ["progressive_global", "progressive_2of4"]},
    },
    # Channel pruning against dense and against training the shrunk
    # architecture from scratch: `python -m benchmarks.grid --grid=channel`.
    "channel": {
        "lenet5": {"sparsities": [0.5, 0.75], "seeds": [0, 1],
                   "methods": ["progressive_channel", "scratch_channel",
                               "progressive_channel_shrinking"]},
        "lenet_300_100": {"sparsities": [0.5, 0.75], "seeds": [0, 1],
                          "methods": ["progressive_channel", "scratch_channel"]},
    },
    "quick": {
        "lenet_300_100": {"sparsities": [0.9, 0.98], "seeds": [0],
                          "epochs": 1, "train_examples": 6000},
    },
}


def cell_dir():
    # The N:M cells share the full grid's recipes, so they share its folder.
    return os.path.join(common.RESULTS_DIR, "grid_quick" if FLAGS.grid == "quick" else "grid")


def cell_path(model, label, sparsity, seed):
    return os.path.join(cell_dir(), f"{model}__{label}__s{sparsity:g}__seed{seed}.json")


def _config(model, label, method, scope, sparsity, seed, spec, options):
    recipe = dict(RECIPES[model], **spec.get(f"{label}_recipe", {}))
    if "epochs" in spec:
        recipe["epochs"] = spec["epochs"]
    return experiments.Config(
        model=model, dataset="mnist", method=method, scope=scope,
        target_sparsity=sparsity, seed=seed, data_dir=FLAGS.data_dir,
        train_examples=spec.get("train_examples", 0), verbose="0",
        output_dir=os.path.join("/tmp", "progprune_grid"),
        prune_end=-1, frequency=100, method_options=dict(options), **recipe)


def _recipe(config):
    keys = ("epochs", "batch_size", "optimizer", "lr", "lr_schedule", "train_examples")
    return {k: getattr(config, k) for k in keys}


def architecture_path(model, sparsity, seed):
    """The shrunk architecture of a progressive_channel cell (Keras JSON)."""
    return cell_path(model, "progressive_channel", sparsity, seed)[:-5] + ".architecture.json"


def _size_of(model):
    return {"parameters": int(model.count_params()),
            "macs": kp.sparsity_report(model)["macs"]["dense"]}


def _shrink_cell(model, trainer, model_name, sparsity, seed):
    """Shrinks a channel-pruned cell's model and saves its architecture."""
    small = kp.shrink(model)
    os.makedirs(cell_dir(), exist_ok=True)
    with open(architecture_path(model_name, sparsity, seed), "w") as f:
        f.write(small.to_json())
    report = kp.sparsity_report(model)
    return {"parameters": int(small.count_params()), "macs": report["macs"]["shrunk"],
            "dense_macs": report["macs"]["dense"],
            "shrunk_test_accuracy": trainer.evaluate(small)}


def _run_cell(config):
    """Trains one configuration; returns (accuracy, cost and per-round
    data; the trained model; its trainer)."""
    os.makedirs(config.output_dir, exist_ok=True)
    model, extras, trainer, wall = experiments.train(config, log=False)
    return {
        "test_accuracy": trainer.evaluate(model),
        "final_val_accuracy": experiments.final_value(extras.get("history"), "val_accuracy"),
        # Measured; the cell's "sparsity" is its target (the table's key).
        "sparsity_measured": kp.sparsity_report(model)["total"]["sparsity"],
        "steps": trainer.steps_trained,
        "wall_time_s": wall,
        "epoch_wall_times_s": trainer.epoch_times,
        "rounds": extras.get("rounds"),
    }, model, trainer


def _save(path, payload):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def run_grid():
    grid = GRIDS[FLAGS.grid]
    prov = common.provenance(common.command_line())
    for model, spec in grid.items():
        if FLAGS.only_models and model not in FLAGS.only_models:
            continue
        for label, method, scope, options in METHODS:
            if FLAGS.only_methods and label not in FLAGS.only_methods:
                continue
            if label not in spec.get("methods", [m[0] for m in METHODS if m[0] not in _OPT_IN]):
                continue
            seeds = spec.get(f"{label}_seeds", spec["seeds"])
            options = dict(options, **spec.get(f"{label}_options", {}))
            for seed in seeds:
                if method == "lottery":
                    _lottery_chain(model, spec, seed, scope, options, prov)
                    continue
                sparsities = [0.0] if label == "dense" else spec["sparsities"]
                for s in sparsities:
                    path = cell_path(model, label, s, seed)
                    if os.path.exists(path):
                        continue
                    print(f"[grid] {model} {label} s={s} seed={seed}", flush=True)
                    if label == "scratch_channel":
                        options = dict(options, architecture=architecture_path(model, s, seed))
                    config = _config(model, label, method, scope, s, seed, spec, options)
                    result, trained, trainer = _run_cell(config)
                    if label == "progressive_channel":
                        result.update(_shrink_cell(trained, trainer, model, s, seed))
                    if label == "progressive_channel_shrinking":
                        result.update(_size_of(kp.shrink(trained)))
                    if label == "scratch_channel":
                        result.update(_size_of(trained))
                    _save(path, {"model": model, "method": label, "sparsity": s,
                                 "seed": seed, "recipe": _recipe(config), "grid": FLAGS.grid,
                                 "provenance": prov, **result})


def _lottery_chain(model, spec, seed, scope, options, prov):
    sparsities = spec["sparsities"]
    paths = [cell_path(model, "lottery", s, seed) for s in sparsities]
    if all(os.path.exists(p) for p in paths):
        return
    print(f"[grid] {model} lottery chain seed={seed}", flush=True)
    options = dict(options, milestones=",".join(str(s) for s in sparsities))
    config = _config(model, "lottery", "lottery", scope, max(sparsities), seed, spec, options)
    result, _, _ = _run_cell(config)
    cumulative = 0
    by_target = {}
    for r in result["rounds"]:
        cumulative += r["steps"]
        by_target[round(r["target_sparsity"], 6)] = (r, cumulative)
    per_step = result["wall_time_s"] / max(result["steps"], 1)
    for s, path in zip(sparsities, paths):
        r, steps = by_target[round(s, 6)]
        _save(path, {"model": model, "method": "lottery", "sparsity": s, "seed": seed,
                     "recipe": _recipe(config), "grid": FLAGS.grid, "provenance": prov,
                     "test_accuracy": r["test_accuracy"],
                     "final_val_accuracy": r["val_accuracy"],
                     "sparsity_measured": r["sparsity"], "steps": steps,
                     "wall_time_s": per_step * steps, "round": r["round"],
                     "chain_rounds": len(result["rounds"]) - 1,
                     "chain_steps": result["steps"]})


def main(argv):
    del argv
    run_grid()
    print("grid done:", cell_dir())


if __name__ == "__main__":
    app.run(main)
