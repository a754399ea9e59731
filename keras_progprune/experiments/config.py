"""The run configuration, its validation, and the method it names."""

import dataclasses
import hashlib
import json

from keras_progprune.experiments import data as data_lib
from keras_progprune import importance as importance_lib
from keras_progprune import methods as methods_lib
from keras_progprune import models as models_lib
from keras_progprune import schedules
from keras_progprune import structures
from keras_progprune import width


@dataclasses.dataclass
class Config:
    """Everything that defines a run. Saved as `config.json`."""

    model: str = "lenet_300_100"
    dataset: str = "mnist"
    method: str = "progressive"
    target_sparsity: float = 0.95
    scope: str = ""  # "" = the method's default
    schedule: str = "polynomial"
    prune_start: int = 0
    prune_end: int = -1  # -1 = two thirds of the way through training
    frequency: int = 100
    structure: str = "unstructured"  # "channel", or "n:m", e.g. "2:4"
    shrink_every: int = 0  # channel only: shrink between phases of N epochs
    # Progressive only: what ranks weights or channels at each update
    # ("magnitude", "activation" or "taylor", over `calibration_batches`).
    importance: str = "magnitude"
    # One-shot width pruning after training (method "dense"): fractions of
    # every block's feed-forward neurons and heads, then recovery.
    width_ffn: float = 0.0
    width_heads: float = 0.0
    width_recovery: str = "distill"  # "distill", "finetune" or "none"
    recovery_epochs: int = 2
    calibration_batches: int = 8
    epochs: int = 20
    batch_size: int = 60
    optimizer: str = "adam"
    lr: float = 1.2e-3
    # "auto": "hold_cosine" for the progressive method (chosen on the
    # validation split, see BUILD_NOTES.md), "cosine" for every other one.
    lr_schedule: str = "auto"
    momentum: float = 0.9
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = False
    seed: int = 0
    data_dir: str = ""
    validation_size: int = 5000
    train_examples: int = 0  # 0 = all; a smoke test uses a few
    eval_examples: int = 0
    output_dir: str = ""
    verbose: str = "auto"
    # Method options (issue: baselines): see each method's docstring.
    method_options: dict = dataclasses.field(default_factory=dict)

    def digest(self):
        keys = {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("output_dir", "verbose", "data_dir")}
        if keys["structure"] == "unstructured":  # digests of older runs stay valid
            del keys["structure"]
        if not keys["shrink_every"]:
            del keys["shrink_every"]
        if keys["importance"] == "magnitude":
            del keys["importance"]
        if not (keys["width_ffn"] or keys["width_heads"]):  # no one-shot width pruning
            for name in ("width_ffn", "width_heads", "width_recovery", "recovery_epochs"):
                del keys[name]
            if "importance" not in keys:
                del keys["calibration_batches"]
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:8]


LR_SCHEDULES = ("auto", "constant", "cosine", "hold_cosine", "step")
WIDTH_RECOVERIES = ("distill", "finetune", "none")


def lr_schedule_of(config):
    """The learning-rate schedule a run uses: `config.lr_schedule`, with
    `"auto"` resolved to `"hold_cosine"` for the progressive method and to
    `"cosine"` for every other one."""
    if config.lr_schedule != "auto":
        return config.lr_schedule
    return "hold_cosine" if config.method == "progressive" else "cosine"


def prune_end_epoch(config):
    """The epoch at whose start progressive pruning reaches its target:
    `method_options["prune_end"]`, else `config.prune_end`, else (-1) two
    thirds of training."""
    if "prune_end" in config.method_options:
        return int(config.method_options["prune_end"])
    if config.prune_end >= 0:
        return config.prune_end
    return max(config.prune_start, (2 * config.epochs) // 3)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}.")


def validate(config):
    """Raises a `ValueError` naming the first bad field of `config`."""
    if config.model not in models_lib.MODELS:
        models_lib.get_model(config.model)  # raises with the valid names
    data_lib.info(config.dataset)
    methods_lib.get_method(config.method)
    _check_choice("optimizer", config.optimizer, ("sgd", "adam", "adamw"))
    _check_choice("lr_schedule", config.lr_schedule, LR_SCHEDULES)
    schedules.check_schedule_name(config.schedule)
    _check_choice("scope", config.scope, ("", "layer", "global"))
    structures.get(config.structure)
    if config.structure != "unstructured" and config.method not in ("progressive", "dense"):
        raise ValueError(
            f"`structure` applies to the progressive method only. Received: "
            f"structure={config.structure!r} with method={config.method!r}. Use "
            "method='progressive', or structure='unstructured'.")
    if config.shrink_every < 0 or (config.shrink_every and config.structure != "channel"):
        raise ValueError(
            "`shrink_every` (epochs per phase of a shrinking run) must be 0 (off) or a "
            "positive number with structure='channel': only channel masks can shrink "
            f"during training. Received: shrink_every={config.shrink_every}, "
            f"structure={config.structure!r}.")
    _check_choice("importance", config.importance, tuple(importance_lib.names()))
    if config.importance != "magnitude" and config.method != "progressive":
        raise ValueError(
            "`importance` ranks the masks of the progressive method. Received: "
            f"importance={config.importance!r} with method={config.method!r}. Use "
            "method='progressive', or importance='magnitude'.")
    if config.importance == "activation" and config.structure != "channel":
        raise ValueError(
            "importance='activation' ranks whole channels (neurons, heads, filters) by "
            "their mean |activation|. Received: importance='activation' with "
            f"structure={config.structure!r}. Use structure='channel', or "
            "importance='taylor' for weights.")
    width.check_fraction("width_ffn", config.width_ffn)
    width.check_fraction("width_heads", config.width_heads)
    _check_choice("width_recovery", config.width_recovery, WIDTH_RECOVERIES)
    if (config.width_ffn or config.width_heads) and config.method != "dense":
        raise ValueError(
            "One-shot width pruning (`width_ffn`, `width_heads`) starts from a trained "
            f"dense model. Received: method={config.method!r}. Use method='dense', or "
            "for width pruning during training method='progressive' with "
            "structure='channel'.")
    for name in ("recovery_epochs", "calibration_batches"):
        value = getattr(config, name)
        if value < (1 if name == "calibration_batches" else 0):
            raise ValueError(f"`{name}` must be >= {int(name == 'calibration_batches')}. "
                             f"Received: {name}={value}.")
    if config.epochs < 1:
        raise ValueError(f"`epochs` must be >= 1. Received: epochs={config.epochs}.")
    schedules.check_sparsity("target_sparsity", config.target_sparsity)


def make_method(config):
    """The `PruningMethod` that `config` names, with its options.

    The progressive method takes its schedule from the config's pruning
    fields (`prune_end=-1` means two thirds of training); every method also
    takes `config.method_options`.

    Raises:
        ValueError: for an option the method doesn't accept.
    """
    options = dict(config.method_options)
    method_cls = methods_lib.get_method(config.method)
    if method_cls is methods_lib.Progressive:
        options.setdefault("schedule", config.schedule)
        options.setdefault("prune_start", config.prune_start)
        options.setdefault("frequency", config.frequency)
        options.setdefault("structure", config.structure)
        if config.shrink_every:
            options.setdefault("shrink_every", config.shrink_every)
        if config.importance != "magnitude":
            options.setdefault("importance", config.importance)
            options.setdefault("calibration_batches", config.calibration_batches)
        options.setdefault("prune_end", prune_end_epoch(config))
    return methods_lib.make(config.method, config.target_sparsity,
                            scope=config.scope or None, options=options,
                            argument="method_options")


