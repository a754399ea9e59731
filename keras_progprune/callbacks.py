"""`ProgressivePruningCallback`: drives the masks during `model.fit`."""

import weakref

import keras
import numpy as np

from keras_progprune import backend
from keras_progprune import engine
from keras_progprune import importance as importance_lib
from keras_progprune import walk
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.wrapper import training_without_callback_error

# Mask groups (and their compiled updates) per model, reused by every later
# `fit` while the model's wrappers are unchanged: building them again would
# compile the update again (a retrace on TensorFlow, a recompile on JAX).
_GROUPS = weakref.WeakKeyDictionary()


def _wrappers_key(wrappers, importance):
    return (None if importance_lib.is_magnitude(importance) else id(importance),) + tuple(
        (id(w), tuple(id(m) for m in w.masks), repr(w.pruning_schedule), w.scope,
         repr(w.structure)) for w in wrappers)


def cached_groups(model, wrappers, importance=None):
    """`engine.build_groups(wrappers, model, importance)`, reused while they
    are the same."""
    key = _wrappers_key(wrappers, importance)
    try:
        cached = _GROUPS.get(model)
    except TypeError:  # a model that can't be weakly referenced
        return engine.build_groups(wrappers, model, importance)
    if cached is not None and cached[0] == key:
        return cached[1]
    groups = engine.build_groups(wrappers, model, importance)
    try:
        _GROUPS[model] = (key, groups)
    except TypeError:
        pass
    return groups


def _updates_between(schedule, low, high):
    """The update steps of `schedule` strictly between `low` and `high`."""
    first = max(low + 1, schedule.begin_step)
    last = high - 1 if schedule.end_step == -1 else min(high - 1, schedule.end_step)
    if first > last:
        return []
    offset = (first - schedule.begin_step) % schedule.frequency
    start = first if offset == 0 else first + schedule.frequency - offset
    return list(range(start, last + 1, schedule.frequency))


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


def _check_teacher(model):
    """Refuses a distiller whose teacher is wrapped: its masks would be
    updated with the student's, pruning the reference while it teaches."""
    teacher = getattr(model, "teacher", None)
    if isinstance(teacher, keras.Model) and wrapper_lib.collect_wrappers(teacher):
        raise ValueError(
            f"The teacher of {type(model).__name__} {model.name!r} is wrapped for pruning, "
            "so ProgressivePruningCallback would prune it too. Pass the original model "
            "as `teacher` (or `keras_progprune.strip_pruning(teacher)`) and wrap only "
            "the student.")


def _guard_new_train_functions(model, wrappers):
    """Puts every train step Keras makes for `model` from now on behind the
    same check.

    After `compile`, Keras makes a new train step. TensorFlow traces it
    again, and the wrappers then raise at trace time; JAX may reuse its
    cached trace of the same `train_step` (traced while the callback was
    there), so the check has to sit outside the compiled function.
    """
    walk.wrap_train_function_maker(
        model, lambda function: function if isinstance(function, _RequiresCallback)
        else _RequiresCallback(function, wrappers))


@keras.saving.register_keras_serializable(package="keras_progprune")
class ProgressivePruningCallback(keras.callbacks.Callback):
    """Updates the pruning masks of every `PruningWrapper` during `fit`.

    At the start of each training batch it asks each schedule whether the
    masks are due; if so, it recomputes them with a compiled, exact top-k of
    the importance of the weights still active (a pruned weight never
    returns): their magnitude by default. Layer-scope wrappers are pruned
    one layer at a time; global-scope wrappers share one threshold.

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
        importance: what ranks the weights or channels at each update:
            None or `"magnitude"` (the default), or a
            `keras_progprune.importance.Importance` such as
            `kp.importance.Activation(calibration_batches)` (Minitron's mean
            absolute activation, for `structure="channel"`) or
            `kp.importance.Taylor(batches, loss)` (|w * dL/dw|: gradual
            SNIP). An importance that holds data can't be serialized.

    With `steps_per_execution=N`, Keras calls the callback once per N
    steps, so masks can change only between those calls. That is exact when
    every scheduled update falls on the first step of a call: for example
    `begin_step` and `frequency` multiples of N, with steps per epoch a
    multiple of N. Any other schedule raises a `ValueError` naming the step
    and a `frequency`/`begin_step` that works, at the start of `fit` when
    the epoch length is known and otherwise at the first missed update.

    Masks and groups are reused across `fit` calls on the same model, so a
    later `fit` compiles nothing again.

    Raises:
        ValueError: at the start of `fit`, if the model has no
            `PruningWrapper`, or if `steps_per_execution` doesn't divide the
            schedule's updates (see above).

    Examples:
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

    def __init__(self, log_dir=None, importance=None):
        super().__init__()
        self.log_dir = log_dir
        self.importance = importance_lib.get(importance)
        self._reset()

    def _reset(self):
        self._wrappers = []
        self._groups = None
        self._step = None          # steps trained, as of the current batch
        self._epoch_base = None    # the step at which the current epoch started
        self._last_end = -1        # the last step index of the epoch seen
        self._last_begin = None    # the step the previous call started at
        self._per_call = 1
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
        model = self._model  # not `self.model`: on JAX that syncs the state
        self._per_call = int(getattr(model, "steps_per_execution", 1) or 1)
        self._wrappers = wrapper_lib.collect_wrappers(model)
        if not self._wrappers:
            raise ValueError(
                "ProgressivePruningCallback found no PruningWrapper in model "
                f"{model.name!r}. Wrap it first with "
                "`keras_progprune.prune_low_magnitude(model)`, or use "
                "`PruningWrapper` inside a subclassed model."
            )
        _check_teacher(model)
        for wrapper in self._wrappers:
            wrapper.check_not_quantized()
        if not walk.is_graph_model(model):  # before the first step builds anything
            engine.check_model(self._wrappers, model)
        for wrapper in self._wrappers:
            # Allows training; a save in mid-epoch asks us for the step.
            wrapper.arm(step_source=self)
        if isinstance(model.train_function, _RequiresCallback):
            # The step compiled by an earlier `fit`: reuse it, no retrace.
            model.train_function = model.train_function.function
        if self.log_dir:
            self._writer = backend.summary_writer(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        if self._step is not None:
            self._epoch_base = self._step
        self._last_end = -1

    def _start(self, batch):
        """First call with built wrappers: read the step, group the weights."""
        if not all(w.built for w in self._wrappers):
            return False
        backend.sync_model_state(self._model)
        stored = max(int(w.pruning_step.numpy()) for w in self._wrappers)
        # A subclassed model builds its layers during its first step: the
        # steps before `batch` trained without masks (all ones).
        self._epoch_base = stored
        self._groups = cached_groups(self._model, self._wrappers, self.importance)
        if self._per_call > 1:
            self._check_calls(stored + batch)
        return True

    def _check_calls(self, first):
        """With N steps per call, raises unless every update of this `fit`
        falls on the first step of a call (when the epoch length is known)."""
        steps = self.params.get("steps") if self.params else None
        epochs = self.params.get("epochs") if self.params else None
        if not steps or not epochs:
            return  # checked as the calls come, in `on_train_batch_begin`
        end = first + steps * epochs
        for group in self._groups:
            for step in _updates_between(group.schedule, first - 1, end):
                if ((step - first) % steps) % self._per_call:
                    self._raise_inexact(group, step)

    def _raise_inexact(self, group, step):
        n = self._per_call
        schedule = group.schedule
        raise ValueError(
            f"With steps_per_execution={n}, masks can change only every {n} steps "
            f"(Keras calls the callback once per {n} steps), but the schedule of "
            f"{group.name} updates them at step {step}, inside a call. Received: "
            f"steps_per_execution={n}, begin_step={schedule.begin_step}, "
            f"frequency={schedule.frequency}. Use a schedule whose updates fall on "
            f"call boundaries: begin_step and frequency multiples of {n} (e.g. "
            f"begin_step={-(-schedule.begin_step // n) * n}, "
            f"frequency={max(n, -(-schedule.frequency // n) * n)}) and steps per epoch "
            f"a multiple of {n}; or compile with steps_per_execution=1.")

    def on_train_batch_begin(self, batch, logs=None):
        if self._groups is None and not self._start(batch):
            return
        step = self._epoch_base + batch
        if self._per_call > 1 and self._last_begin is not None:
            for group in self._groups:
                missed = _updates_between(group.schedule, self._last_begin, step)
                if missed:
                    self._raise_inexact(group, missed[0])
        self._last_begin = step
        due = []
        for group in self._groups:
            should_update, sparsity = group.schedule(step)
            if should_update:
                due.append((group, sparsity))
        if due:
            backend.sync_model_state(self._model)  # JAX: the variables up to date first
            engine.update_together(due, self._model)
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
        # With `async_safe`, Keras runs batch-end hooks on a thread pool of
        # several workers, so they may finish out of order: keep the largest.
        self._last_end = max(self._last_end, batch)
        if logs is not None:
            logs["sparsity"] = self.sparsity

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_base is not None and self._last_end >= 0:
            self._step = self._epoch_base + self._last_end + 1
        self._write_step()
        if logs is not None:
            logs["sparsity"] = self.sparsity
        if self._writer is not None and self._groups is not None:
            self._writer.scalar("sparsity/overall", self.sparsity, step=epoch)
            for wrapper in self._wrappers:
                kept = sum(np.count_nonzero(m.numpy()) for m in wrapper.masks)
                size = sum(int(np.prod(m.shape)) for m in wrapper.masks)
                self._writer.scalar(f"sparsity/{wrapper.layer.name}", 1.0 - kept / size,
                                    step=epoch)
            self._writer.flush()

    def on_train_end(self, logs=None):
        self._write_step()
        for wrapper in self._wrappers:
            wrapper.disarm()
            if wrapper.built:
                wrapper.settle()
        # Keep the compiled step for the next `fit`, behind a check that
        # this callback is there again.
        model = self._model
        if model.train_function is not None:
            model.train_function = _RequiresCallback(model.train_function, self._wrappers)
        _guard_new_train_functions(model, self._wrappers)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def get_config(self):
        if not importance_lib.is_magnitude(self.importance):
            raise ValueError(
                f"A ProgressivePruningCallback with importance={self.importance!r} can't "
                "be serialized: the importance holds its data. Make a new callback "
                "with the same importance instead.")
        return {"log_dir": self.log_dir}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
