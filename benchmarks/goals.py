"""Every goal the benchmarks check, in one place (from the issues).

Accuracy goals live with the presets they belong to
(`keras_progprune.experiments.presets`); the rest are here.
"""

from keras_progprune.experiments import ACCURACY_TARGETS  # noqa: F401
from keras_progprune.experiments import DENSE_TARGETS  # noqa: F401

LOTTERY_STEP_RATIO = 0.2       # progressive costs <= 1/5 of lottery's steps (at 98%)
# Pruned / dense epoch CPU time (issue 34): TensorFlow and JAX, PyTorch.
OVERHEAD_RATIO = {"tensorflow": 1.03, "jax": 1.03, "torch": 1.05}
MODEL_PARALLEL_RATIO = 1.5     # ModelParallel mask update / one-device update
MASK_UPDATE_SECONDS = 0.10     # one global update over ResNet-18's weights, every backend
DATA_PARALLEL_RATIO = 1.05     # pruned / dense epoch under keras.distribution.DataParallel

# Channel pruning (issue: channel pruning that physically shrinks the model):
# batch-32 CPU speed-up of the shrunk model at 50% of channels.
SHRINK_SPEEDUP_AT_HALF = {"resnet18": 2.0, "vgg19": 2.0, "MobileNetV2": 1.5}
# LeNet-5 at 50% of channels: within this many points of dense, with fewer
# than this fraction of dense MACs.
CHANNEL_LENET5_POINTS = 0.003
CHANNEL_LENET5_MAC_FRACTION = 0.5
# Shrinking fit: total training time at 50% of channels, relative to dense.
SHRINKING_FIT_TIME_RATIO = 0.6
# Width pruning of transformers (issue 21): CPU speed-up at half the
# feed-forward neurons and heads; the ViT on MNIST within this many points
# of dense (and above the same architecture trained from scratch).
WIDTH_SPEEDUP = 1.6
WIDTH_VIT_POINTS = 0.5
