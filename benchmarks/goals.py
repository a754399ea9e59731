"""Every goal the benchmarks check, in one place (from the issues).

Accuracy goals live with the presets they belong to
(`keras_progprune.experiments.presets`); the rest are here.
"""

from keras_progprune.experiments import ACCURACY_TARGETS  # noqa: F401
from keras_progprune.experiments import DENSE_TARGETS  # noqa: F401

LOTTERY_STEP_RATIO = 0.2       # progressive costs <= 1/5 of lottery's steps (at 98%)
OVERHEAD_RATIO = 1.05          # pruned / dense epoch time
MASK_UPDATE_SECONDS = 0.25     # one global update over ResNet-18's weights
