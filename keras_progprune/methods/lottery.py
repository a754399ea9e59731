"""Lottery ticket: iterative magnitude pruning with rewinding (IMP).

A procedure around the user's own training routine, not a scoring rule:
train, prune a fraction of the surviving weights by magnitude, rewind the
survivors to their values at step k, retrain; repeat until the target. It
reuses the wrappers and the exact top-k of every other method.
"""

import math

import keras

from keras_progprune import engine
from keras_progprune import prune as prune_lib
from keras_progprune import report as report_lib
from keras_progprune import schedules
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.callbacks import ProgressivePruningCallback
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


class _RoundRecorder(keras.callbacks.Callback):
    """Counts a round's training steps; in round 0, copies the model's
    variables at the start of step `snapshot_step`."""

    def __init__(self, snapshot_step=None):
        super().__init__()
        self.snapshot_step = snapshot_step
        self.values = None
        self.steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.steps == self.snapshot_step and self.values is None:
            self.values = [v.numpy().copy() for v in self.model.weights]
        self.steps += 1


class Lottery(PruningMethod):
    """Iterative magnitude pruning with rewinding (Frankle & Carbin 2019).

    Round 0 trains the dense network. Every later round prunes `rate` of
    the surviving weights by magnitude (globally or per layer), rewinds all
    weights to their values at step `rewind_step` of round 0 (0 = the
    original initialization, the original lottery ticket), and retrains
    with the same routine. The last round lands exactly on the target.

    Options:
        rate: float in (0, 1), fraction of remaining weights pruned per
            round. Defaults to 0.2.
        rewind_step: int >= 0, the step whose weights survivors return to.
            Must be inside round 0. Defaults to 0.
        milestones: sparsities (a list, or comma-separated text) also
            landed on exactly; the per-round table then covers them too.
            Defaults to none.
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
        wrappers = wrapper_lib.collect_wrappers(model)
        state = {id(v) for w in wrappers for v in w.masks + [w.pruning_step]}
        for v, value in zip(model.weights, values):
            if id(v) not in state:
                v.assign(value)
        for wrapper in wrappers:
            wrapper.settle()

    def run(self, model, train_round, evaluate=None, on_round=None):
        """Runs every round on `model`; see `lottery_ticket`."""
        # Sparsity 0 at step 0 keeps every weight: masks change only between
        # rounds, set below.
        schedule = schedules.ConstantSparsity(0.0, 0, end_step=0)
        pruned = prune_lib.prune_low_magnitude(model, schedule, scope=self.scope)
        groups = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
        snapshot = None
        rounds = []
        for r, sparsity in enumerate([0.0] + self.sparsities):
            if r > 0:
                for group in groups:
                    group.update(sparsity, intersect=True)
                self._rewind(pruned, snapshot.values)
            recorder = _RoundRecorder(self.rewind_step if r == 0 else None)
            result = train_round(pruned, [ProgressivePruningCallback(), recorder])
            if r == 0:
                if recorder.values is None:
                    raise ValueError(
                        f"`rewind_step` must be inside the first training round, which "
                        f"ran {recorder.steps} steps. Received: rewind_step="
                        f"{self.rewind_step}. Pass a step below {recorder.steps}.")
                snapshot = recorder
            record = {
                "round": r,
                "target_sparsity": sparsity,
                "sparsity": report_lib.sparsity_report(pruned)["total"]["sparsity"],
                "steps": recorder.steps,
                "score": evaluate(pruned) if evaluate is not None else None,
                "result": result,
            }
            rounds.append(record)
            if on_round is not None:
                on_round(record)
        return pruned, rounds

    def train(self, trainer):
        per_round = trainer.epochs * trainer.steps_per_epoch
        if self.rewind_step >= per_round:
            raise ValueError(
                f"`rewind_step` must be inside the first training run of {per_round} "
                f"steps. Received: rewind_step={self.rewind_step}. Pass a step "
                f"below {per_round}."
            )

        def report(record):
            print(f"lottery round {record['round']}: sparsity {record['sparsity']:.4f} "
                  f"test accuracy {record['score']:.4f}", flush=True)

        model, records = self.run(trainer.build_model(), trainer.fit,
                                  evaluate=trainer.evaluate, on_round=report)
        rounds = [{
            "round": rec["round"],
            "target_sparsity": rec["target_sparsity"],
            "sparsity": rec["sparsity"],
            "test_accuracy": rec["score"],
            "val_accuracy": (rec["result"].get("val_accuracy") or [None])[-1],
            "steps": rec["steps"],
        } for rec in records]
        return model, {"history": records[-1]["result"], "rounds": rounds,
                       "rounds_planned": len(self.sparsities)}


def lottery_ticket(model, train_round, target_sparsity, *, rate=0.2, rewind_step=0,
                   scope="global", milestones=(), evaluate=None):
    """Finds a lottery ticket by iterative magnitude pruning with rewinding.

    Round 0 trains the dense model with `train_round`. Each later round
    prunes `rate` of the surviving weights by magnitude, rewinds every
    weight to its value at step `rewind_step` of round 0, and trains again
    with `train_round`, until `target_sparsity`. Each round is one full
    training: this is the expensive baseline that progressive pruning
    replaces.

    Args:
        model: a Sequential or Functional model (not modified).
        train_round: a function `train_round(model, callbacks)` that trains
            the wrapped model for one round and passes `callbacks` to its
            `model.fit` (they keep the pruned weights at zero and record the
            rewind point). Compile inside it for a fresh optimizer each
            round, as in the paper. Its return value is kept per round.
        target_sparsity: float in [0, 1).
        rate: float in (0, 1), the fraction of surviving weights pruned per
            round. Defaults to 0.2 (20%, as in the papers).
        rewind_step: int >= 0, the training step of round 0 whose weights
            the survivors return to; 0 is the original initialization.
            Defaults to 0.
        scope: `"global"` (one threshold, as OpenLTH) or `"layer"`.
            Defaults to `"global"`.
        milestones: sparsities below the target that a round also lands on
            exactly. Defaults to none.
        evaluate: optional function `evaluate(model) -> float`, called after
            each round; its value is recorded as the round's `score`.

    Returns:
        `(pruned_model, rounds)`: the wrapped model after the last round
        (strip it with `strip_pruning`) and one dict per round with
        `round`, `target_sparsity`, `sparsity`, `steps`, `score` and
        `result` (what `train_round` returned).

    Raises:
        ValueError: for a bad `rate`, `scope` or `target_sparsity`, or a
            `rewind_step` beyond round 0.

    Examples:
        >>> import keras, numpy as np, keras_progprune as kp
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        >>> x, y = np.ones((16, 8), "float32"), np.zeros((16, 4), "float32")
        >>> def train_round(m, callbacks):
        ...     m.compile("adam", "mse")
        ...     return m.fit(x, y, epochs=1, callbacks=callbacks, verbose=0)
        >>> pruned, rounds = kp.lottery_ticket(model, train_round, 0.5, rate=0.3)
        >>> [round(r["sparsity"], 3) for r in rounds]
        [0.0, 0.312, 0.5]
    """
    method = Lottery(target_sparsity, scope=scope, rate=rate, rewind_step=rewind_step,
                     milestones=list(milestones))
    return method.run(model, train_round, evaluate=evaluate)


def rounds_needed(target, rate):
    """`ceil(log(1 - target) / log(1 - rate))`: rounds without milestones."""
    return math.ceil(math.log(1.0 - target) / math.log(1.0 - rate) - 1e-12)
