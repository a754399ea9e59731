"""Lottery ticket: iterative magnitude pruning with rewinding (IMP).

A procedure around the trainer, not a scoring rule: train, prune a fraction
of the surviving weights by magnitude, rewind the survivors to their values
at step k, retrain; repeat until the target. It reuses the wrappers, the
exact top-k and the trainer of every other method.
"""

import math

import keras

import keras_progprune as kp
from keras_progprune import engine
from keras_progprune.methods.base import PruningMethod


def round_sparsities(target, rate, milestones=()):
    """Sparsity after each pruning round.

    Each round removes `rate` of the remaining weights, except that a round
    stops exactly at a milestone it would pass, and the last round lands
    exactly on `target`. Without milestones there are
    `ceil(log(1 - target) / log(1 - rate))` rounds.

    Args:
        target: float in [0, 1).
        rate: float in (0, 1).
        milestones: sparsities in (0, target] to land on exactly (one
            chain then serves several sparsities).
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(
            f"`rate` must be in (0, 1). Received: rate={rate!r}. Pass the "
            "fraction of remaining weights pruned per round, e.g. 0.2."
        )
    stops = sorted({float(m) for m in milestones if 0.0 < m < target} | {float(target)})
    out, s = [], 0.0
    eps = 1e-12
    while s < target - eps:
        nxt = 1.0 - (1.0 - s) * (1.0 - rate)
        stop = next(m for m in stops if m > s + eps)
        s = stop if nxt >= stop - eps else nxt
        out.append(s)
    return out


class _Snapshot(keras.callbacks.Callback):
    """Copies the model's variables at the start of training step `step`."""

    def __init__(self, step):
        super().__init__()
        self.step = step
        self.values = None
        self._seen = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self._seen == self.step and self.values is None:
            self.values = [v.numpy().copy() for v in self.model.weights]
        self._seen += 1


class Lottery(PruningMethod):
    """Iterative magnitude pruning with rewinding (Frankle & Carbin 2019).

    Round 0 trains the dense network. Every later round prunes `rate` of
    the surviving weights by magnitude (globally or per layer), rewinds all
    weights to their values at step `rewind_step` of round 0 (0 = the
    original initialization, the original lottery ticket), and retrains
    with the same recipe. The last round lands exactly on the target.

    Options:
        rate: float in (0, 1), fraction of remaining weights pruned per
            round. Defaults to 0.2.
        rewind_step: int >= 0, the step whose weights survivors return to.
            Must be inside round 0. Defaults to 0.
        milestones: comma-separated sparsities also landed on exactly; the
            per-round table then covers them too. Defaults to none.

    The result records, per round, the sparsity, the final-epoch test
    accuracy and the training steps; `steps` is their total (the cost).
    """

    name = "lottery"
    default_scope = "global"

    def __init__(self, target_sparsity, scope=None, rate=0.2, rewind_step=0, milestones=""):
        super().__init__(target_sparsity, scope)
        if isinstance(milestones, str):
            milestones = [float(m) for m in milestones.split(",") if m.strip()]
        elif isinstance(milestones, (int, float)):
            milestones = [float(milestones)]
        self.sparsities = round_sparsities(self.target_sparsity, rate, milestones)
        if int(rewind_step) < 0:
            raise ValueError(
                f"`rewind_step` must be >= 0. Received: rewind_step={rewind_step!r}.")
        self.rate = float(rate)
        self.rewind_step = int(rewind_step)

    def _rewind(self, model, values):
        wrappers = engine.collect_wrappers(model)
        state = {id(v) for w in wrappers for v in w.masks + [w.pruning_step]}
        for v, value in zip(model.weights, values):
            if id(v) not in state:
                v.assign(value)
        for wrapper in wrappers:
            for w, m in zip(wrapper.pruned_weights, wrapper.masks):
                w.assign(w * m)

    def train(self, trainer):
        per_round = trainer.epochs * trainer.steps_per_epoch
        if self.rewind_step >= per_round:
            raise ValueError(
                f"`rewind_step` must be inside the first training run of {per_round} "
                f"steps. Received: rewind_step={self.rewind_step}. Pass a step "
                f"below {per_round}."
            )
        # Sparsity 0 at step 0 keeps every weight: masks change only between
        # rounds, set below.
        schedule = kp.ConstantSparsity(0.0, 0, end_step=0)
        model = kp.prune_low_magnitude(trainer.build_model(), schedule, scope=self.scope)
        groups = engine.build_groups(engine.collect_wrappers(model))
        snapshot = _Snapshot(self.rewind_step)
        rounds = []
        for r, sparsity in enumerate([0.0] + self.sparsities):
            if r > 0:
                for group in groups:
                    group.update(sparsity, intersect=True)
                self._rewind(model, snapshot.values)
            before = trainer.steps_trained
            extra = [snapshot] if r == 0 else []
            history = trainer.fit(model, [kp.ProgressivePruningCallback()] + extra)
            report = kp.sparsity_report(model)
            rounds.append({
                "round": r,
                "target_sparsity": sparsity,
                "sparsity": report["total"]["sparsity"],
                "test_accuracy": trainer.evaluate(model),
                "val_accuracy": (history.get("val_accuracy") or [None])[-1],
                "steps": trainer.steps_trained - before,
            })
            print(f"lottery round {r}: sparsity {rounds[-1]['sparsity']:.4f} "
                  f"test accuracy {rounds[-1]['test_accuracy']:.4f}", flush=True)
        return model, {"history": history, "rounds": rounds,
                       "rounds_planned": len(self.sparsities)}


def rounds_needed(target, rate):
    """`ceil(log(1 - target) / log(1 - rate))`: rounds without milestones."""
    return math.ceil(math.log(1.0 - target) / math.log(1.0 - rate) - 1e-12)
