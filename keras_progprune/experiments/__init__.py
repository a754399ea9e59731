"""The experiment runner: configs, presets, the one-recipe trainer, outputs.

Separate from the library: the core package (`keras_progprune` minus this
subpackage and the model zoo) never imports it. Needs the `experiments`
extra (`pip install keras-progprune[experiments]`: tensorflow-datasets,
matplotlib, tensorboard).
"""

from keras_progprune.experiments.config import LR_SCHEDULES
from keras_progprune.experiments.config import Config
from keras_progprune.experiments.config import lr_schedule_of
from keras_progprune.experiments.config import make_method
from keras_progprune.experiments.config import prune_end_epoch
from keras_progprune.experiments.config import validate
from keras_progprune.experiments.outputs import final_value
from keras_progprune.experiments.outputs import plot_history
from keras_progprune.experiments.outputs import rounds_table
from keras_progprune.experiments.outputs import served_accuracy
from keras_progprune.experiments.outputs import summary_table
from keras_progprune.experiments.outputs import write_rounds
from keras_progprune.experiments.presets import ACCURACY_TARGETS
from keras_progprune.experiments.presets import DENSE_TARGETS
from keras_progprune.experiments.presets import PRESETS
from keras_progprune.experiments.presets import apply_preset
from keras_progprune.experiments.runner import TrainedRun
from keras_progprune.experiments.runner import default_output_dir
from keras_progprune.experiments.runner import run
from keras_progprune.experiments.runner import strip_if_pruned
from keras_progprune.experiments.runner import train
from keras_progprune.experiments.trainer import Trainer

__all__ = [
    "ACCURACY_TARGETS", "Config", "DENSE_TARGETS", "LR_SCHEDULES", "PRESETS", "TrainedRun",
    "Trainer", "apply_preset", "default_output_dir", "final_value", "lr_schedule_of",
    "make_method", "plot_history", "prune_end_epoch", "rounds_table", "run",
    "served_accuracy", "strip_if_pruned", "summary_table", "train", "validate",
    "write_rounds",
]
