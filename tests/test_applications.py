"""keras.applications models nobody here wrote: prune, train, strip, reload.

A representative few, small enough for `make test`: Python-operator
residuals and squeeze-and-excitation (MobileNetV3Small), depthwise
convolutions (MobileNetV2), Concatenate (DenseNet121). Every family runs in
`python -m benchmarks.applications`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_progprune as kp

BUILDERS = {
    "MobileNetV3Small": lambda: keras.applications.MobileNetV3Small(
        weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.75,
        include_preprocessing=False),
    "MobileNetV2": lambda: keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.35),
    "DenseNet121": lambda: keras.applications.DenseNet121(
        weights=None, input_shape=(32, 32, 3), classes=10),
}


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
    np.testing.assert_allclose(plain.predict(x, verbose=0), expected, atol=1e-5)
    kp.save_model(plain, tmp_path / "m.keras", include_optimizer=False)
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, atol=1e-5)
    plain.export(str(tmp_path / "saved"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))  # keep it alive while serving
    served = loaded.serve(tf.constant(x))
    np.testing.assert_allclose(served, expected, atol=1e-5)
