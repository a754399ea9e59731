"""Pruning schedules: pure functions of the training step.

A schedule answers `(should_update, sparsity) = schedule(step)`. The math is
written once against a tiny set of operations, so the same formula runs on
Python ints (what the callback uses every batch, at no cost) and on tensors
of any backend (inside a compiled function). The semantics are tfmot's.
"""

import keras
from keras import ops

from keras_progprune.values import ConfigValue


class _PyOps:
    """Python-number versions of the few operations a schedule needs."""

    @staticmethod
    def to_float(x):
        return float(x)

    @staticmethod
    def clip(x, lo, hi):
        return min(max(x, lo), hi)

    @staticmethod
    def logical_and(*xs):
        return all(xs)


class _TensorOps:
    """Tensor versions of the same operations (`keras.ops`)."""

    @staticmethod
    def to_float(x):
        return ops.cast(x, "float32")

    @staticmethod
    def clip(x, lo, hi):
        return ops.clip(x, lo, hi)

    @staticmethod
    def logical_and(*xs):
        return ops.all(ops.stack([ops.convert_to_tensor(x) for x in xs]))


def _ops_for(step):
    return _PyOps if isinstance(step, int) else _TensorOps


def check_sparsity(name, value):
    """Raises unless `value` is a sparsity in [0, 1); the one such check."""
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"`{name}` must be in [0, 1). Received: {name}={value!r}. "
            "Pass a fraction of weights to remove, e.g. 0.9 for 90% sparsity."
        )


def _check_steps(begin_step, end_step, frequency, end_required):
    if begin_step < 0:
        raise ValueError(
            f"`begin_step` must be >= 0. Received: begin_step={begin_step!r}."
        )
    if end_required or end_step != -1:
        if end_step < begin_step:
            raise ValueError(
                "`end_step` must be >= `begin_step`"
                + ("" if end_required else " (or -1 for no end)")
                + f". Received: begin_step={begin_step!r}, end_step={end_step!r}. "
                f"Pass end_step >= {begin_step}."
            )
    if frequency < 1:
        raise ValueError(
            f"`frequency` must be >= 1. Received: frequency={frequency!r}. "
            "Pass the number of steps between mask updates, e.g. 100."
        )


class PruningSchedule(ConfigValue):
    """Base class: maps a step to `(should_update, sparsity)`.

    Subclasses implement `_sparsity(step, ops)` and `get_config()`.
    """

    begin_step = 0
    end_step = -1
    frequency = 1

    def __call__(self, step):
        """Returns `(should_update, sparsity)` at `step`.

        Args:
            step: a Python int, or an integer tensor of the current backend
                (then both outputs are tensors, and the call traces inside a
                compiled function).
        """
        ops = _ops_for(step)
        return self._should_update(step, ops), self._sparsity(step, ops)

    def should_update(self, step):
        """Whether masks are recomputed at `step` (no sparsity computed)."""
        return self._should_update(step, _ops_for(step))

    def _should_update(self, step, ops):
        in_range = step >= self.begin_step
        if self.end_step != -1:
            in_range = ops.logical_and(in_range, step <= self.end_step)
        on_period = (step - self.begin_step) % self.frequency == 0
        return ops.logical_and(in_range, on_period)

    def _sparsity(self, step, ops):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="keras_progprune")
class ConstantSparsity(PruningSchedule):
    """Holds one sparsity, updating masks every `frequency` steps.

    `sparsity(step) = target_sparsity`; masks are recomputed when
    `begin_step <= step <= end_step` (no upper bound when `end_step=-1`) and
    `(step - begin_step) % frequency == 0`.

    Args:
        target_sparsity: float in [0, 1), fraction of weights set to zero.
        begin_step: int >= 0, first step at which masks are computed.
        end_step: int, last such step, or -1 for no end. Defaults to -1.
        frequency: int >= 1, steps between updates. Defaults to 100.

    Raises:
        ValueError: on a sparsity outside [0, 1), `end_step < begin_step`
            or `frequency < 1`.

    Examples:
        >>> ConstantSparsity(0.8, begin_step=10, frequency=5)(15)
        (True, 0.8)
    """

    def __init__(self, target_sparsity, begin_step, end_step=-1, frequency=100):
        check_sparsity("target_sparsity", target_sparsity)
        _check_steps(begin_step, end_step, frequency, end_required=False)
        self.target_sparsity = float(target_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)

    def _sparsity(self, step, ops):
        return ops.to_float(self.target_sparsity)

    def get_config(self):
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package="keras_progprune")
class PolynomialDecay(PruningSchedule):
    """Raises sparsity from `initial_sparsity` to `final_sparsity` polynomially.

    With `p = clip((step - begin_step) / (end_step - begin_step), 0, 1)`:

        sparsity(step) = final + (initial - final) * (1 - p) ** power

    Masks are recomputed when `begin_step <= step <= end_step` and
    `(step - begin_step) % frequency == 0` (tfmot's semantics). `power=3` is
    Zhu & Gupta's cubic schedule. With `begin_step == end_step` the sparsity
    is `final_sparsity` from `begin_step` on. The paper's linear per-epoch schedule,
    `s(e) = s_final * (e + 1) / E`, is `power=1` with
    `frequency=steps_per_epoch`, `begin_step=0`,
    `end_step=(E - 1) * steps_per_epoch` and
    `initial_sparsity=final_sparsity / E`.

    Args:
        initial_sparsity: float in [0, 1), sparsity at `begin_step`.
        final_sparsity: float in [0, 1), sparsity from `end_step` on.
        begin_step: int >= 0.
        end_step: int >= begin_step.
        power: float, exponent of the decay. Defaults to 3.
        frequency: int >= 1, steps between updates. Defaults to 100.

    Raises:
        ValueError: on a sparsity outside [0, 1), `end_step < begin_step` or
            `frequency < 1`.

    Examples:
        >>> s = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, power=1)
        >>> s(50)
        (False, 0.4)
    """

    def __init__(
        self,
        initial_sparsity,
        final_sparsity,
        begin_step,
        end_step,
        power=3,
        frequency=100,
    ):
        check_sparsity("initial_sparsity", initial_sparsity)
        check_sparsity("final_sparsity", final_sparsity)
        _check_steps(begin_step, end_step, frequency, end_required=True)
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.power = float(power)
        self.frequency = int(frequency)

    def _sparsity(self, step, ops):
        span = self.end_step - self.begin_step
        if span == 0:  # a one-step ramp: the final value from begin_step on
            p = ops.clip(ops.to_float(step - self.begin_step + 1), 0.0, 1.0)
        else:
            p = ops.clip(ops.to_float(step - self.begin_step) / span, 0.0, 1.0)
        delta = self.initial_sparsity - self.final_sparsity
        return self.final_sparsity + delta * (1.0 - p) ** self.power

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


def linear_per_epoch(final_sparsity, epochs, steps_per_epoch, start_epoch=0):
    """The paper's schedule: `s(e) = final * (e + 1 - start) / (E - start)`.

    Masks change once per epoch, at its first step, reaching
    `final_sparsity` at the start of the last epoch.

    Args:
        final_sparsity: float in [0, 1).
        epochs: int, the `E` above: the epoch count by which the target is
            reached (usually the training length).
        steps_per_epoch: int >= 1.
        start_epoch: int, first pruning epoch. Defaults to 0.

    Returns:
        A `PolynomialDecay` with `power=1` and `frequency=steps_per_epoch`.
    """
    num = epochs - start_epoch
    if num < 1:
        raise ValueError(
            "`epochs` must be greater than `start_epoch`. Received: "
            f"epochs={epochs!r}, start_epoch={start_epoch!r}."
        )
    return PolynomialDecay(
        initial_sparsity=final_sparsity / num,
        final_sparsity=final_sparsity,
        begin_step=start_epoch * steps_per_epoch,
        end_step=(epochs - 1) * steps_per_epoch,
        power=1,
        frequency=steps_per_epoch,
    )


# The schedules the training script and the progressive method know by name.
SCHEDULE_NAMES = ("polynomial", "linear", "constant")


def check_schedule_name(name):
    if name not in SCHEDULE_NAMES:
        raise ValueError(
            f"`schedule` must be one of {SCHEDULE_NAMES}. Received: schedule={name!r}.")


def by_name(name, target_sparsity, epochs, steps_per_epoch, prune_start=0,
            prune_end=None, frequency=100):
    """A schedule from epoch-level settings, as the training script gives them.

    Args:
        name: one of `SCHEDULE_NAMES`: `"polynomial"` (cubic, Zhu & Gupta,
            updated every `frequency` steps), `"linear"` (the paper's
            per-epoch `s(e) = s_f * (e + 1) / E`) or `"constant"` (the
            target from `prune_start` on, re-applied every epoch).
        target_sparsity: float in [0, 1).
        epochs: int, training length.
        steps_per_epoch: int >= 1.
        prune_start: int, epoch at which pruning starts. Defaults to 0.
        prune_end: int or None, epoch at whose start the target is reached.
            Defaults to the last epoch.
        frequency: int, steps between updates for `"polynomial"`.

    Raises:
        ValueError: for an unknown name, or unless
            `0 <= prune_start <= prune_end < epochs`.
    """
    check_schedule_name(name)
    check_sparsity("target_sparsity", target_sparsity)
    end = epochs - 1 if prune_end is None else int(prune_end)
    if not 0 <= prune_start <= end < max(epochs, 1):
        raise ValueError(
            "Need 0 <= prune_start <= prune_end < epochs. Received: "
            f"prune_start={prune_start}, prune_end={end}, epochs={epochs}."
        )
    begin = prune_start * steps_per_epoch
    if name == "constant":
        return ConstantSparsity(target_sparsity, begin, frequency=steps_per_epoch)
    if name == "linear":
        return linear_per_epoch(target_sparsity, end + 1, steps_per_epoch,
                                start_epoch=prune_start)
    return PolynomialDecay(0.0, target_sparsity, begin, end * steps_per_epoch,
                           power=3, frequency=frequency)


def deserialize(config):
    """Builds a schedule from `keras.saving.serialize_keras_object` output."""
    return keras.saving.deserialize_keras_object(config)
