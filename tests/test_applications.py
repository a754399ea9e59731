"""keras.applications models nobody here wrote: prune, train, strip, reload.

A representative two, small enough for `make test`: Python-operator
residuals and squeeze-and-excitation (MobileNetV3Small), depthwise
convolutions (MobileNetV2). Concatenate (DenseNet121) is covered by the
channel tests; every family runs in `python -m benchmarks.applications`.
Slow: TensorFlow only.
"""

import keras
import numpy as np
import pytest

import keras_progprune as kp
from conftest import assert_close, served_outputs

BUILDERS = {
    "MobileNetV3Small": lambda: keras.applications.MobileNetV3Small(
        weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.75,
        include_preprocessing=False),
    "MobileNetV2": lambda: keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.35),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_application_prunes_trains_strips_saves_and_serves(name, tmp_path):
    model = BUILDERS[name]()
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    schedule = kp.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=1, frequency=1)
    pruned = kp.prune_low_magnitude(model, schedule, scope="global")
    pruned.compile(keras.optimizers.SGD(1e-3), "sparse_categorical_crossentropy")
    pruned.fit(x, np.arange(4), batch_size=2, epochs=1, verbose=0,
               callbacks=[kp.ProgressivePruningCallback()])
    assert kp.sparsity_report(pruned)["total"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    expected = pruned.predict(x, verbose=0)
    plain = kp.strip_pruning(pruned)
    assert_close(plain.predict(x, verbose=0), expected, atol=1e-5)
    kp.save_model(plain, tmp_path / "m.keras", include_optimizer=False)
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert_close(again.predict(x, verbose=0), expected, atol=1e-5)
    assert_close(served_outputs(plain, x, tmp_path / "saved"), expected, atol=1e-5)
