"""keras_progprune: progressive magnitude pruning for Keras 3.

Wrap a model with `prune_low_magnitude`, add `ProgressivePruningCallback`
to `model.fit`, then `strip_pruning` to get a plain sparse Keras model, or
(with `structure="channel"`) `shrink` to get a smaller one.
"""

import importlib

from keras_progprune import importance
from keras_progprune import structures
from keras_progprune.channels.shrink import shrink
# Registers the channel structure's mask updaters with the engine.
from keras_progprune.channels import engine as _channel_engine  # noqa: F401
from keras_progprune.callbacks import ProgressivePruningCallback
from keras_progprune.methods import lottery_ticket
from keras_progprune.methods import prune_at_init
from keras_progprune.patterns import PatternReport
from keras_progprune.patterns import check_m_by_n
from keras_progprune.report import SparsityReport
from keras_progprune.prune import prune_low_magnitude
from keras_progprune.report import sparsity_report
from keras_progprune.prune import strip_pruning
from keras_progprune.saving import load_model
from keras_progprune.saving import save_model
from keras_progprune.shrinking import ShrinkingFitResult
from keras_progprune.shrinking import fit_shrinking
from keras_progprune.litert import export_litert
from keras_progprune.tensorflow_export import export_saved_model
from keras_progprune.schedules import ConstantSparsity
from keras_progprune.schedules import PolynomialDecay
from keras_progprune.schedules import PruningSchedule
from keras_progprune.schedules import linear_per_epoch
from keras_progprune.structures import Channel
from keras_progprune.structures import MByN
from keras_progprune.structures import Unstructured
from keras_progprune.wrapper import PruningWrapper
from keras_progprune.rules import DenseRule
from keras_progprune.rules import FollowerRule
from keras_progprune.rules import PassRule
from keras_progprune.rules import ProducerRule
from keras_progprune.rules import AttentionRule
from keras_progprune.rules import FeedForwardRule
from keras_progprune.rules import LayerRule
from keras_progprune.rules import WidthGroup
from keras_progprune.rules import register_layer_rule
from keras_progprune.rules.keras_hub import attention_units
from keras_progprune.width import prune_width
from keras_progprune.depth import prune_depth

__version__ = "0.1.0"

# Submodules users reach as `kp.models`, `kp.methods` (and, below, `kp.data`).
from keras_progprune import methods  # noqa: E402,F401
from keras_progprune import models  # noqa: E402,F401

# Imported on first use: it needs TensorFlow (tf.data), which the core
# doesn't, so that on JAX and PyTorch `import keras_progprune` imports no
# TensorFlow.
_LAZY = {"data": ("keras_progprune.data", None)}


# The KerasHub blocks `shrink` builds when it removes heads (registered for
# loading); imported here only when KerasHub already is (it imports
# TensorFlow). `kp.load_model` imports them for a file that holds one.
if "keras_hub" in __import__("sys").modules:
    from keras_progprune import hub_layers  # noqa: E402,F401


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_progprune' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value

__all__ = [
    "AttentionRule",
    "Channel",
    "DenseRule",
    "FollowerRule",
    "FeedForwardRule",
    "LayerRule",
    "ConstantSparsity",
    "MByN",
    "PassRule",
    "PatternReport",
    "PolynomialDecay",
    "ProducerRule",
    "ProgressivePruningCallback",
    "PruningSchedule",
    "PruningWrapper",
    "ShrinkingFitResult",
    "SparsityReport",
    "Unstructured",
    "WidthGroup",
    "check_m_by_n",
    "data",
    "export_litert",
    "export_saved_model",
    "fit_shrinking",
    "importance",
    "linear_per_epoch",
    "load_model",
    "lottery_ticket",
    "methods",
    "models",
    "prune_at_init",
    "prune_low_magnitude",
    "prune_width",
    "prune_depth",
    "attention_units",
    "register_layer_rule",
    "save_model",
    "shrink",
    "sparsity_report",
    "strip_pruning",
    "structures",
]
