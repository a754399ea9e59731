"""The method interface and the registry of methods by name."""

import tensorflow as tf

import keras_progprune as kp
from keras_progprune import engine
from keras_progprune.wrapper import SCOPES

_METHODS = {}


class PruningMethod:
    """A way of producing a sparse model, run by `experiment.Trainer`.

    Subclasses set `name`, may set `default_scope`/`scopes`, and implement
    `train(trainer)`, which builds, prunes and trains a model through the
    trainer (so every method shares one recipe) and returns
    `(model, extra_results)`.

    Args:
        target_sparsity: float in [0, 1).
        scope: `"layer"` or `"global"`. Defaults to `default_scope`.
        **options: method options (see each method).
    """

    name = None
    default_scope = "global"
    scopes = SCOPES

    def __init__(self, target_sparsity, scope=None, **options):
        if not 0.0 <= target_sparsity < 1.0:
            raise ValueError(
                "`target_sparsity` must be in [0, 1). Received: "
                f"target_sparsity={target_sparsity!r}."
            )
        scope = scope or self.default_scope
        if scope not in self.scopes:
            raise ValueError(
                f"Method {self.name!r} does not support scope={scope!r}. "
                f"Supported: {self.scopes}. Pass one of those as `scope`."
            )
        if options:
            raise ValueError(
                f"Unknown options for method {self.name!r}: {sorted(options)}."
            )
        self.target_sparsity = float(target_sparsity)
        self.scope = scope

    def train(self, trainer):
        raise NotImplementedError


class ScoringMethod(PruningMethod):
    """A method that scores weights once, at initialization, then trains.

    Subclasses override only `scores(trainer, model, weights)`, returning
    one score tensor per weight in `weights`; the highest scores are kept.
    Masks, the exact top-k, the wrappers, training, strip and export are
    shared.
    """

    def scores(self, trainer, model, weights):
        raise NotImplementedError

    def set_masks(self, trainer, model, groups):
        """Scores every wrapped weight once, then masks each group."""
        weights = [w for group in groups for w in group.weights]
        scores = self.scores(trainer, model, weights)
        by_id = {id(w): tf.cast(s, tf.float32) for w, s in zip(weights, scores)}
        for group in groups:
            group.update(self.target_sparsity,
                         scores=[by_id[id(w)] for w in group.weights],
                         intersect=False)

    def prune_at_init(self, trainer, model):
        """Wraps `model` and fixes its masks; returns the wrapped model."""
        # The callback re-applies the magnitude top-k at step 0 only: a
        # no-op, since exactly k weights are active and inactive ones rank
        # below every active one. The mask is fixed from then on.
        schedule = kp.ConstantSparsity(self.target_sparsity, 0, end_step=0)
        pruned = kp.prune_low_magnitude(model, schedule, scope=self.scope)
        self.set_masks(trainer, pruned, engine.build_groups(engine.collect_wrappers(pruned)))
        return pruned

    def train(self, trainer):
        model = self.prune_at_init(trainer, trainer.build_model())
        history = trainer.fit(model, [kp.ProgressivePruningCallback()])
        return model, {"history": history}


def register_method(name, cls):
    """Registers a `PruningMethod` subclass under `name`.

    Raises:
        ValueError: if `cls` is not a `PruningMethod` subclass, or the name
            is taken.
    """
    if not (isinstance(cls, type) and issubclass(cls, PruningMethod)):
        raise ValueError(
            "`cls` must be a subclass of keras_progprune.methods.PruningMethod. "
            f"Received: cls={cls!r}."
        )
    if name in _METHODS and _METHODS[name] is not cls:
        raise ValueError(
            f"A method named {name!r} is already registered "
            f"({_METHODS[name].__name__}). Choose another name."
        )
    _METHODS[name] = cls
    return cls


def get_method(name):
    """The method class registered under `name`.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in _METHODS:
        raise ValueError(
            f"Unknown pruning method. Received: method={name!r}. Valid methods: "
            f"{sorted(_METHODS)}. Add one with "
            "`keras_progprune.methods.register_method(name, cls)`."
        )
    return _METHODS[name]


def available_methods():
    return sorted(_METHODS)
