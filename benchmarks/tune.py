"""Choosing progressive pruning's settings on the validation split only.

Each variant changes one thing about the grid's `progressive_global` cell as
it was before this study (`base`: plain cosine learning rate): the
schedule's end, the per-layer budget of the global threshold, the learning
rate while pruning, the mask-update frequency or the length of training. It
trains on the 55,000 training images. Only the final epoch's *validation*
accuracy (the last 5,000 training images) is recorded: the test set is never
evaluated here, so the grid's test numbers stay untouched by this choice.

    python -m benchmarks.tune --model=lenet_300_100 --sparsities=0.9,0.98
    python -m benchmarks.tune --model=lenet5 --sparsities=0.99

Cells are cached under benchmarks/results/tune/ and skipped when present,
like the grid's.
"""

import os
import time

from absl import app
from absl import flags
import keras
import numpy as np

from benchmarks import common
from benchmarks import grid
import keras_progprune as kp
from keras_progprune import registry
from keras_progprune import schedules
from keras_progprune import experiments

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "lenet_300_100", "Grid model to tune on.")
flags.DEFINE_list("sparsities", ["0.9", "0.98"], "Target sparsities.")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds.")
flags.DEFINE_list("variants", [], "Restrict to these variants (default: all).")

TUNE_DIR = os.path.join(common.RESULTS_DIR, "tune")


def erk_densities(shapes, sparsity):
    """Erdos-Renyi-Kernel densities (RigL, Evci et al. 2020): each layer's
    density is proportional to sum(shape) / prod(shape), scaled so the
    total kept count matches `sparsity`; a layer that would exceed 1 stays
    dense and the rest is rescaled."""
    sizes = np.array([float(np.prod(s)) for s in shapes])
    raw = np.array([float(np.sum(s)) / float(np.prod(s)) for s in shapes])
    keep = (1.0 - sparsity) * sizes.sum()
    dense = np.zeros(len(shapes), bool)
    while True:
        eps = (keep - sizes[dense].sum()) / (raw[~dense] * sizes[~dense]).sum()
        over = (~dense) & (eps * raw > 1.0)
        if not over.any():
            break
        dense |= over
    return np.where(dense, 1.0, eps * raw)


def _kernel_layers(model):
    return [l for l in model.layers if registry.is_prunable(l)]


def _clone(model, wrapper_for):
    """A copy of `model` (same weights) whose layers `wrapper_for(layer)`
    returns a `PruningWrapper` for (or None to leave dense)."""
    def wrap(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        wrapper = wrapper_for(layer)
        return fresh if wrapper is None else wrapper(fresh)
    clone = keras.models.clone_model(model, clone_function=wrap)
    for new, old in zip(clone.layers, model.layers):
        target = new.layer if isinstance(new, kp.PruningWrapper) else new
        target.set_weights(old.get_weights())
    return clone


def _schedule(sparsity, trainer, end, frequency=100):
    return schedules.by_name("polynomial", sparsity, trainer.epochs,
                             trainer.steps_per_epoch, prune_end=end, frequency=frequency)


def _per_layer(model, targets, trainer, end):
    """Each layer named in `targets` pruned to its own target, on its own
    polynomial schedule of the same shape."""
    def wrapper_for(layer):
        if layer.name not in targets:
            return None
        schedule = _schedule(targets[layer.name], trainer, end)
        return lambda fresh: kp.PruningWrapper(fresh, schedule, scope="layer")
    return _clone(model, wrapper_for)


def _global(model, sparsity, trainer, end, frequency=100):
    return kp.prune_low_magnitude(model, _schedule(sparsity, trainer, end, frequency),
                                  scope="global")


def _every(frequency):
    def build(model, sparsity, trainer, end):
        return _global(model, sparsity, trainer, end, frequency=frequency)
    return build


def _erk(model, sparsity, trainer, end):
    layers = _kernel_layers(model)
    densities = erk_densities([l.kernel.shape for l in layers], sparsity)
    return _per_layer(model, {l.name: float(1 - d) for l, d in zip(layers, densities)},
                      trainer, end)


def _output_half(model, sparsity, trainer, end):
    """The Lottery Ticket paper's budget: the output layer pruned at half
    the rate; the hidden layers share one global threshold at the rate
    that keeps the total at `sparsity`."""
    layers = _kernel_layers(model)
    out = layers[-1]
    n_out = int(np.prod(out.kernel.shape))
    n_all = sum(int(np.prod(l.kernel.shape)) for l in layers)
    s_out = sparsity / 2
    s_hidden = (sparsity * n_all - s_out * n_out) / (n_all - n_out)
    hidden_schedule = _schedule(s_hidden, trainer, end)
    out_schedule = _schedule(s_out, trainer, end)

    def wrapper_for(layer):
        if layer.name == out.name:
            return lambda fresh: kp.PruningWrapper(fresh, out_schedule, scope="layer")
        if layer in layers:
            return lambda fresh: kp.PruningWrapper(fresh, hidden_schedule, scope="global")
        return None
    return _clone(model, wrapper_for)


def _end_at(fraction):
    def build(model, sparsity, trainer, end):
        del end
        return _global(model, sparsity, trainer, max(1, int(fraction * trainer.epochs)))
    return build


# name -> (how to prune, `lr_schedule` or None for the recipe's, multiple of
#          the recipe's epochs)
VARIANTS = {
    "base": (_global, None, 1),
    "end_0.3": (_end_at(0.3), None, 1),
    "end_0.5": (_end_at(0.5), None, 1),
    "end_0.8": (_end_at(0.8), None, 1),
    "erk": (_erk, None, 1),
    "output_half": (_output_half, None, 1),
    # Since this study, the grid's and the training script's default for
    # progressive (`lr_schedule="hold_cosine"`).
    "hold_lr": (_global, "hold_cosine", 1),
    # Masks updated 4x as often: smaller steps of the same schedule.
    "every_25": (_every(25), None, 1),
    # Twice the grid's epochs (the schedule end stays at two thirds).
    "double_epochs": (_global, None, 2),
}


def _recipe(variant):
    """The grid's recipe from before this study (plain cosine), changed as
    `variant` says."""
    _, lr_schedule, epochs_factor = VARIANTS[variant]
    recipe = dict(grid.RECIPES[FLAGS.model])
    recipe["epochs"] *= epochs_factor
    if lr_schedule:
        recipe["lr_schedule"] = lr_schedule
    return recipe


def run_cell(variant, sparsity, seed):
    build = VARIANTS[variant][0]
    recipe = _recipe(variant)
    config = experiments.Config(model=FLAGS.model, dataset="mnist", method="progressive",
                                target_sparsity=sparsity, seed=seed,
                                data_dir=FLAGS.data_dir, verbose="0", **recipe)
    keras.utils.set_random_seed(seed)
    end = experiments.prune_end_epoch(config)  # two thirds of training
    trainer = experiments.Trainer(config, log=False)
    pruned = build(trainer.build_model(), sparsity, trainer, end)
    start = time.time()
    history = trainer.fit(pruned, [kp.ProgressivePruningCallback()])
    report = kp.sparsity_report(pruned)
    return {
        "final_val_accuracy": float(history["val_accuracy"][-1]),
        "sparsity_measured": report["total"]["sparsity"],
        "layer_sparsity": {k: v["sparsity"] for k, v in report["layers"].items()},
        "wall_time_s": time.time() - start,
    }


def main(argv):
    del argv
    prov = common.provenance(common.command_line())
    for variant in FLAGS.variants or list(VARIANTS):
        for s in [float(x) for x in FLAGS.sparsities]:
            for seed in [int(x) for x in FLAGS.seeds]:
                path = os.path.join(TUNE_DIR, f"{FLAGS.model}__{variant}__s{s:g}__seed{seed}.json")
                if os.path.exists(path):
                    continue
                print(f"[tune] {FLAGS.model} {variant} s={s} seed={seed}", flush=True)
                result = run_cell(variant, s, seed)
                print(f"[tune]   val {result['final_val_accuracy']:.4f} "
                      f"layers {result['layer_sparsity']}", flush=True)
                grid._save(path, {"model": FLAGS.model, "variant": variant, "sparsity": s,
                                  "seed": seed, "recipe": _recipe(variant),
                                  "provenance": prov, **result})
    print("tune done:", TUNE_DIR)


if __name__ == "__main__":
    app.run(main)
