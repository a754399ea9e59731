"""`model.fit`-ready datasets; lives in `keras_progprune.experiments.data`.

The loaders build `tf.data` pipelines, which feed `fit` on every backend,
so they sit with the experiment runner, the part of the package that may
import TensorFlow. `kp.data` and this module name stay for existing code.
"""

from keras_progprune.experiments.data import *  # noqa: F401,F403
from keras_progprune.experiments.data import __all__  # noqa: F401
