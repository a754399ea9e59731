import json

import keras
import pytest

from keras_progprune import backend

from keras_progprune import ConstantSparsity
from keras_progprune import PolynomialDecay
from keras_progprune import linear_per_epoch


def _both(schedule, step):
    """The Python path and the compiled tensor path must agree."""
    py = schedule(step)
    t_update, t_sparsity = backend.compile(schedule)(keras.ops.convert_to_tensor(step, "int32"))
    assert bool(keras.ops.convert_to_numpy(t_update)) == py[0]
    assert float(keras.ops.convert_to_numpy(t_sparsity)) == pytest.approx(py[1], abs=1e-6)
    return py


@pytest.mark.parametrize(
    "step,expected",
    [
        # s = 0.9 + (0.1 - 0.9) * (1 - (step - 100) / 400) ** 3, updates every 50
        (0, (False, 0.1)),
        (99, (False, 0.1)),
        (100, (True, 0.1)),
        (150, (True, 0.9 - 0.8 * 0.875**3)),
        (175, (False, 0.9 - 0.8 * 0.8125**3)),
        (300, (True, 0.9 - 0.8 * 0.5**3)),
        (500, (True, 0.9)),
        (550, (False, 0.9)),
    ],
)
def test_polynomial_decay_matches_hand_values(step, expected):
    s = PolynomialDecay(0.1, 0.9, begin_step=100, end_step=500, power=3, frequency=50)
    update, sparsity = _both(s, step)
    assert update == expected[0]
    assert sparsity == pytest.approx(expected[1], abs=1e-6)


def test_polynomial_decay_linear_power_one():
    s = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, power=1, frequency=10)
    assert _both(s, 25) == (False, pytest.approx(0.2))
    assert _both(s, 50) == (True, pytest.approx(0.4))


@pytest.mark.parametrize(
    "step,update",
    [(0, False), (10, True), (12, False), (14, True), (30, True), (31, False), (34, False)],
)
def test_constant_sparsity_updates(step, update):
    s = ConstantSparsity(0.7, begin_step=10, end_step=30, frequency=4)
    assert _both(s, step) == (update, pytest.approx(0.7))


def test_polynomial_decay_with_a_one_step_ramp():
    s = PolynomialDecay(0.0, 0.6, begin_step=5, end_step=5, frequency=10)
    assert _both(s, 4) == (False, pytest.approx(0.0))
    assert _both(s, 5) == (True, pytest.approx(0.6))
    assert _both(s, 6) == (False, pytest.approx(0.6))


def test_constant_sparsity_no_end():
    s = ConstantSparsity(0.5, begin_step=0)
    assert _both(s, 10**6) == (True, 0.5)
    assert _both(s, 10**6 + 1) == (False, 0.5)


def test_linear_per_epoch_is_paper_formula():
    # s(e) = s_final * (e + 1) / E, applied at each epoch's first step.
    epochs, spe, final = 5, 7, 0.9
    s = linear_per_epoch(final, epochs, spe)
    for e in range(epochs):
        update, sparsity = _both(s, e * spe)
        assert update
        assert sparsity == pytest.approx(final * (e + 1) / epochs)
        assert not s.should_update(e * spe + 3)
    assert s.frequency == spe and s.power == 1


def test_linear_per_epoch_rejects_empty_range():
    with pytest.raises(ValueError, match=r"`epochs` must be greater than `start_epoch`.*epochs=2, start_epoch=2"):
        linear_per_epoch(0.9, 2, 10, start_epoch=2)


@pytest.mark.parametrize(
    "schedule",
    [
        ConstantSparsity(0.3, begin_step=4, end_step=40, frequency=3),
        PolynomialDecay(0.1, 0.95, begin_step=1, end_step=99, power=2, frequency=7),
    ],
)
def test_config_round_trip(schedule):
    config = schedule.get_config()
    assert type(schedule).from_config(config) == schedule
    blob = json.dumps(keras.saving.serialize_keras_object(schedule))
    restored = keras.saving.deserialize_keras_object(json.loads(blob))
    assert restored == schedule and type(restored) is type(schedule)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: ConstantSparsity(1.0, 0),
         r"`target_sparsity` must be in \[0, 1\)\. Received: target_sparsity=1\.0"),
        (lambda: ConstantSparsity(-0.1, 0),
         r"`target_sparsity` must be in \[0, 1\)\. Received: target_sparsity=-0\.1"),
        (lambda: PolynomialDecay(0.0, 1.2, 0, 10),
         r"`final_sparsity` must be in \[0, 1\)\. Received: final_sparsity=1\.2"),
        (lambda: PolynomialDecay(1.5, 0.5, 0, 10),
         r"`initial_sparsity` must be in \[0, 1\)\. Received: initial_sparsity=1\.5"),
        (lambda: PolynomialDecay(0.0, 0.5, 10, 5),
         r"`end_step` must be >= `begin_step`\. Received: begin_step=10, end_step=5\. Pass end_step >= 10"),
        (lambda: ConstantSparsity(0.5, 10, end_step=5),
         r"`end_step` must be >= `begin_step` \(or -1 for no end\)\. Received: begin_step=10, end_step=5"),
        (lambda: ConstantSparsity(0.5, 0, frequency=0),
         r"`frequency` must be >= 1\. Received: frequency=0"),
        (lambda: PolynomialDecay(0.0, 0.5, 0, 10, frequency=-3),
         r"`frequency` must be >= 1\. Received: frequency=-3"),
        (lambda: ConstantSparsity(0.5, -1),
         r"`begin_step` must be >= 0\. Received: begin_step=-1"),
    ],
)
def test_errors_name_argument_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()
