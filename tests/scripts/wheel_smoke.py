"""Run inside a fresh virtualenv that holds only the wheel and its core
dependencies: prune, train, strip, save and reload a tiny model.

Prints one JSON line with what it found, for tests/test_packaging.py.
"""

import importlib.util
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_progprune as kp  # noqa: E402

rng = np.random.default_rng(0)
x = rng.standard_normal((64, 6)).astype("float32")
y = rng.integers(0, 3, 64)
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(3)])
pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.75, 0, frequency=1),
                                scope="global")
pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
pruned.fit(x, y, epochs=2, batch_size=16, verbose=0,
           callbacks=[kp.ProgressivePruningCallback()])
plain = kp.strip_pruning(pruned)
path = os.path.join(tempfile.mkdtemp(), "m.keras")
kp.save_model(plain, path, include_optimizer=False)
loaded = kp.load_model(path)
print(json.dumps({
    "version": kp.__version__,
    "module": os.path.dirname(kp.__file__),
    "prefix": sys.prefix,
    "sparsity": kp.sparsity_report(plain)["total"]["sparsity"],
    "max_diff": float(np.max(np.abs(loaded.predict(x, verbose=0) - pruned.predict(x, verbose=0)))),
    "extras_present": [m for m in ("jax", "torch", "tensorflow_datasets", "matplotlib",
                                   "ai_edge_litert", "pytest", "keras_hub")
                       if importlib.util.find_spec(m) is not None],
}))
