"""The core engine's method, and the dense reference."""

import os

import keras

from keras_progprune import importance as importance_lib
from keras_progprune import prune as prune_lib
from keras_progprune import schedules
from keras_progprune import structures
from keras_progprune.callbacks import ProgressivePruningCallback
from keras_progprune.methods.base import PruningMethod


class Progressive(PruningMethod):
    """Gradual magnitude pruning during one training run (the paper).

    Options:
        schedule: one of `schedules.SCHEDULE_NAMES`: `"polynomial"` (cubic,
            Zhu & Gupta), `"linear"` (the paper's per-epoch
            `s(e) = s_f * (e + 1) / E`) or `"constant"`. Defaults to
            `"polynomial"`, the training script's default.
        prune_start: int, epoch at which pruning starts. Defaults to 0.
        prune_end: int or None, epoch at whose start the target is reached.
            Defaults to the last epoch.
        frequency: int, steps between mask updates for `"polynomial"`.
            Defaults to 100. (`linear` and `constant` update once per epoch.)
        structure: the mask's shape (`"unstructured"`, `"channel"`,
            `"n:m"`). Defaults to `"unstructured"`.
        shrink_every: int; with `structure="channel"`, train with
            `fit_shrinking` in phases of this many epochs, shrinking the
            model between them. 0 (the default): one masked `fit`.
        importance: a name from `kp.importance.names()`: what ranks the
            masks at each update. `"magnitude"` (the default),
            `"activation"` (mean |activation| per channel, Minitron's; needs
            `structure="channel"`), `"taylor"` (|w * dL/dw|, gradual SNIP),
            or a pruning-at-initialization score recomputed at each update.
        calibration_batches: int, the first training batches an importance
            that reads data takes at each update. Defaults to 8.
    """

    name = "progressive"
    default_scope = "global"

    def __init__(self, target_sparsity, scope=None, schedule="polynomial",
                 prune_start=0, prune_end=None, frequency=100, structure="unstructured",
                 shrink_every=0, importance="magnitude", calibration_batches=8):
        super().__init__(target_sparsity, scope)
        schedules.check_schedule_name(schedule)
        self.schedule = schedule
        self.prune_start = int(prune_start)
        self.prune_end = prune_end
        self.frequency = int(frequency)
        self.structure = structure
        self.shrink_every = int(shrink_every)
        if importance not in importance_lib.names():
            raise ValueError(f"`importance` must be one of {importance_lib.names()}. "
                             f"Received: importance={importance!r}.")
        self.importance = importance
        self.calibration_batches = int(calibration_batches)

    def make_schedule(self, epochs, steps_per_epoch):
        return schedules.by_name(self.schedule, self.target_sparsity, epochs,
                                 steps_per_epoch, prune_start=self.prune_start,
                                 prune_end=self.prune_end, frequency=self.frequency)

    def _importance(self, trainer):
        """The callback's importance: None (magnitude), or one that reads the
        first `calibration_batches` training batches at each update."""
        if self.importance == "magnitude":
            return None
        n = self.calibration_batches
        return importance_lib.get(self.importance, data=trainer.scoring_batches(n),
                                  loss=trainer.loss_fn(), batches=n,
                                  seed=trainer.config.seed)

    def train(self, trainer):
        schedule = self.make_schedule(trainer.epochs, trainer.steps_per_epoch)
        model = prune_lib.prune_low_magnitude(trainer.build_model(), schedule,
                                              scope=self.scope, structure=self.structure)
        callback = ProgressivePruningCallback(log_dir=trainer.pruning_log_dir,
                                              importance=self._importance(trainer))
        if self.shrink_every:
            model, history = trainer.fit_shrinking(model, [callback], self.shrink_every)
        else:
            history = trainer.fit(model, [callback])
        extras = {"history": history, "schedule": repr(schedule)}
        if structures.get(self.structure).shrinks:
            # Channels removed (of those at the start), from the masks' last update.
            extras["channel_sparsity"] = callback.sparsity
        return model, extras


class Dense(PruningMethod):
    """No pruning: the reference every method is compared with.

    Options:
        architecture: path to a Keras model JSON (`model.to_json()`), such
            as a shrunk model's, to train from scratch instead of the
            config's model: the baseline of "Rethinking the Value of
            Network Pruning" (Liu et al., 2019). Defaults to None.
    """

    name = "dense"

    def __init__(self, target_sparsity=0.0, scope=None, architecture=None):
        super().__init__(target_sparsity, scope)
        if architecture is not None and not os.path.isfile(architecture):
            raise ValueError(
                "`architecture` must be the path of a Keras model JSON file "
                f"(`model.to_json()`). Received: architecture={architecture!r}, "
                "which is not a file.")
        self.architecture = architecture

    def train(self, trainer):
        if self.architecture:
            with open(self.architecture) as f:
                model = keras.models.model_from_json(f.read())  # fresh weights
        else:
            model = trainer.build_model()
        return model, {"history": trainer.fit(model, [])}
