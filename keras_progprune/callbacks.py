"""`ProgressivePruningCallback`: drives the masks during `model.fit`."""

import keras
import numpy as np
import tensorflow as tf

from keras_progprune import engine
from keras_progprune.wrapper import training_without_callback_error


class _RequiresCallback:
    """Holds a model's compiled train function between `fit` calls.

    A wrapper checks for the callback when the train step is traced; Keras
    then caches the traced function, so a later `fit` without the callback
    would train without that check. Instead of dropping the function (which
    costs a full retrace on every later `fit`), the callback leaves this in
    its place: it refuses to run while the wrappers are unarmed, and the
    callback puts the compiled function back at the start of the next `fit`.
    """

    def __init__(self, function, wrappers):
        self.function = function
        self.wrappers = wrappers

    def __call__(self, *args, **kwargs):
        for wrapper in self.wrappers:
            if not wrapper.armed:
                raise training_without_callback_error(wrapper.layer.name)
        return self.function(*args, **kwargs)


@keras.saving.register_keras_serializable(package="keras_progprune")
class ProgressivePruningCallback(keras.callbacks.Callback):
    """Updates the pruning masks of every `PruningWrapper` during `fit`.

    At the start of each training batch it asks each schedule whether the
    masks are due; if so, it recomputes them with a compiled, exact top-k of
    the magnitudes of the weights still active (a pruned weight never
    returns). Layer-scope wrappers are pruned one layer at a time;
    global-scope wrappers share one threshold.

    The step counter is model state: each wrapper's `pruning_step` variable,
    so a saved and reloaded model (or `BackupAndRestore`) continues the
    schedule with a fresh callback. The callback counts in Python, so no
    variable is read or written per batch: it reads the variables at the
    first batch of `fit` (after `BackupAndRestore` has restored them) and
    writes them at each epoch end, at the end of `fit`, and whenever the
    model is saved (the wrapper asks the callback for the step in
    `save_own_variables`, so `ModelCheckpoint(save_freq=N)` files are exact).

    The current overall sparsity (pruned fraction of all wrapped weights) is
    written to `logs["sparsity"]`, so the progress bar, `History` and
    `CSVLogger` show it.

    Args:
        log_dir: str or None. If set, per-layer and overall sparsity are
            written there as TensorBoard scalars at the end of every epoch.
            Defaults to None.

    Raises:
        ValueError: at the start of `fit`, if the model has no
            `PruningWrapper`, or uses `steps_per_execution > 1`.

    Example:

    >>> import keras, numpy as np, keras_progprune as kp
    >>> model = kp.prune_low_magnitude(
    ...     keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)]),
    ...     kp.ConstantSparsity(0.75, begin_step=0, frequency=1))
    >>> model.compile("sgd", "mse")
    >>> history = model.fit(np.ones((4, 8)), np.ones((4, 4)), verbose=0,
    ...                     callbacks=[kp.ProgressivePruningCallback()])
    >>> history.history["sparsity"]
    [0.75]
    """

    # Keras may run `on_train_batch_end` on a worker thread instead of
    # waiting for each step's results; ours only copies a Python float into
    # `logs`, which is safe there. (Without this, any callback with a batch-end
    # hook makes every step synchronous: +50% epoch time on LeNet-300-100.)
    async_safe = True

    def __init__(self, log_dir=None):
        super().__init__()
        self.log_dir = log_dir
        self._reset()

    def _reset(self):
        self._wrappers = []
        self._groups = None
        self._step = None
        self._unstarted_batches = 0
        self._writer = None

    @property
    def sparsity(self):
        """Overall sparsity of the wrapped weights, as of the last update."""
        if not self._groups:
            return 0.0
        size = sum(g.size for g in self._groups)
        if not size:  # e.g. every channel group left whole
            return 0.0
        return 1.0 - sum(g.kept for g in self._groups) / size

    def on_train_begin(self, logs=None):
        self._reset()
        spe = getattr(self.model, "steps_per_execution", 1) or 1
        if int(spe) > 1:
            raise ValueError(
                "ProgressivePruningCallback needs one callback call per step. "
                f"Received: steps_per_execution={spe}. Compile the model with "
                "steps_per_execution=1."
            )
        self._wrappers = engine.collect_wrappers(self.model)
        if not self._wrappers:
            raise ValueError(
                "ProgressivePruningCallback found no PruningWrapper in model "
                f"{self.model.name!r}. Wrap it first with "
                "`keras_progprune.prune_low_magnitude(model)`, or use "
                "`PruningWrapper` inside a subclassed model."
            )
        for wrapper in self._wrappers:
            wrapper.check_not_quantized()
        for wrapper in self._wrappers:
            # Allows training; a save in mid-epoch asks us for the step.
            wrapper.arm(step_source=self)
        if isinstance(self.model.train_function, _RequiresCallback):
            # The step compiled by an earlier `fit`: reuse it, no retrace.
            self.model.train_function = self.model.train_function.function
        if self.log_dir:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def _start(self):
        """First batch with built wrappers: read the step, group the weights."""
        if not all(w.built for w in self._wrappers):
            return False
        stored = max(int(w.pruning_step.numpy()) for w in self._wrappers)
        self._step = stored + self._unstarted_batches
        self._groups = engine.build_groups(self._wrappers, self.model)
        return True

    def on_train_batch_begin(self, batch, logs=None):
        if self._groups is None and not self._start():
            # A subclassed model builds its layers during its first step.
            self._unstarted_batches += 1
            return
        step = self._step
        for group in self._groups:
            should_update, sparsity = group.schedule(step)
            if should_update:
                group.update(sparsity)
        self._step = step + 1

    def _write_step(self):
        """Writes the Python step copy into every wrapper's variable."""
        if self._step is not None:
            for wrapper in self._wrappers:
                wrapper.pruning_step.assign(self._step)

    def current_step(self):
        """The number of training steps counted so far (None before fit)."""
        return self._step

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None:
            logs["sparsity"] = self.sparsity

    def on_epoch_end(self, epoch, logs=None):
        self._write_step()
        if logs is not None:
            logs["sparsity"] = self.sparsity
        if self._writer is not None and self._groups is not None:
            with self._writer.as_default():
                tf.summary.scalar("sparsity/overall", self.sparsity, step=epoch)
                for wrapper in self._wrappers:
                    kept = sum(np.count_nonzero(m.numpy()) for m in wrapper.masks)
                    size = sum(int(np.prod(m.shape)) for m in wrapper.masks)
                    tf.summary.scalar(
                        f"sparsity/{wrapper.layer.name}", 1.0 - kept / size, step=epoch
                    )
            self._writer.flush()

    def on_train_end(self, logs=None):
        self._write_step()
        for wrapper in self._wrappers:
            wrapper.disarm()
        # Keep the compiled step for the next `fit`, behind a check that
        # this callback is there again.
        if self.model.train_function is not None:
            self.model.train_function = _RequiresCallback(
                self.model.train_function, self._wrappers)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def get_config(self):
        return {"log_dir": self.log_dir}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
