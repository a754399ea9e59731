"""The core engine's method, and the dense reference."""

import keras_progprune as kp
from keras_progprune import schedules
from keras_progprune.methods.base import PruningMethod


class Progressive(PruningMethod):
    """Gradual magnitude pruning during one training run (the paper).

    Options:
        schedule: `"polynomial"` (cubic, Zhu & Gupta), `"linear"` (the
            paper's per-epoch `s(e) = s_f * (e + 1) / E`) or `"constant"`.
            Defaults to `"linear"`.
        prune_start: int, epoch at which pruning starts. Defaults to 0.
        prune_end: int or None, epoch at whose start the target is reached.
            Defaults to the last epoch.
        frequency: int, steps between mask updates for `"polynomial"`.
            Defaults to 100. (`linear` and `constant` update once per epoch.)
    """

    name = "progressive"
    default_scope = "global"

    def __init__(self, target_sparsity, scope=None, schedule="linear",
                 prune_start=0, prune_end=None, frequency=100):
        super().__init__(target_sparsity, scope)
        if schedule not in ("polynomial", "linear", "constant"):
            raise ValueError(
                "`schedule` must be 'polynomial', 'linear' or 'constant'. "
                f"Received: schedule={schedule!r}."
            )
        self.schedule = schedule
        self.prune_start = int(prune_start)
        self.prune_end = prune_end
        self.frequency = int(frequency)

    def make_schedule(self, epochs, steps_per_epoch):
        end = epochs - 1 if self.prune_end is None else int(self.prune_end)
        if not 0 <= self.prune_start <= end < max(epochs, 1):
            raise ValueError(
                "Need 0 <= prune_start <= prune_end < epochs. Received: "
                f"prune_start={self.prune_start}, prune_end={end}, "
                f"epochs={epochs}."
            )
        s = self.target_sparsity
        begin = self.prune_start * steps_per_epoch
        if self.schedule == "constant":
            return kp.ConstantSparsity(s, begin, frequency=steps_per_epoch)
        if self.schedule == "linear":
            return schedules.linear_per_epoch(
                s, end + 1, steps_per_epoch, start_epoch=self.prune_start)
        return kp.PolynomialDecay(0.0, s, begin, end * steps_per_epoch,
                                  power=3, frequency=self.frequency)

    def train(self, trainer):
        schedule = self.make_schedule(trainer.epochs, trainer.steps_per_epoch)
        model = kp.prune_low_magnitude(trainer.build_model(), schedule, scope=self.scope)
        callback = kp.ProgressivePruningCallback(log_dir=trainer.pruning_log_dir)
        history = trainer.fit(model, [callback])
        return model, {"history": history, "schedule": repr(schedule)}


class Dense(PruningMethod):
    """No pruning: the reference every method is compared with."""

    name = "dense"

    def __init__(self, target_sparsity=0.0, scope=None):
        super().__init__(target_sparsity, scope)

    def train(self, trainer):
        model = trainer.build_model()
        return model, {"history": trainer.fit(model, [])}
