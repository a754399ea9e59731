"""The method interface and the registry of methods by name."""

import dataclasses
import inspect
import itertools

import keras

from keras_progprune import engine
from keras_progprune import importance as importance_lib
from keras_progprune import prune as prune_lib
from keras_progprune import scores as scores_lib
from keras_progprune.callbacks import ProgressivePruningCallback
from keras_progprune import schedules
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.wrapper import SCOPES

_METHODS = {}


class PruningMethod:
    """A way of producing a sparse model.

    Subclasses set `name`, may set `default_scope`/`scopes`, and implement
    `train(trainer)`, which the experiment runner calls: it builds, prunes
    and trains a model through the trainer (so every method shares one
    recipe) and returns `(model, extra_results)`. Each method also has a
    public entry point that needs no trainer (`prune_at_init`,
    `lottery_ticket`, or `prune_low_magnitude` with the callback).

    Args:
        target_sparsity: float in [0, 1).
        scope: `"layer"` or `"global"`. Defaults to `default_scope`.
        **options: method options (see each method).
    """

    name = None
    default_scope = "global"
    scopes = SCOPES

    def __init__(self, target_sparsity, scope=None, **options):
        schedules.check_sparsity("target_sparsity", target_sparsity)
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


@dataclasses.dataclass
class ScoringInputs:
    """What a scoring method may read: data batches, a loss, a seed."""

    batches: list = None
    loss: object = None
    seed: int = 0


class _MethodScores(importance_lib.Importance):
    """A `ScoringMethod`'s own `scores`, as an importance."""

    def __init__(self, method, inputs):
        self.method = method
        self.inputs = inputs

    def weight_scores(self, model, weights):
        return self.method.scores(model, list(weights), self.inputs)


class ScoringMethod(PruningMethod):
    """A method that scores weights once, at initialization, then trains.

    Its masks are one update of the engine at the target sparsity, ranked
    by an importance (`keras_progprune.importance`): the built-in methods
    name theirs in `importance(inputs)`. A subclass overrides either that
    or only `scores(model, weights, inputs)`, returning one score tensor
    per weight in `weights`; the highest scores are kept. Masks, the exact
    top-k, the wrappers, training, strip and export are shared. Methods
    that read data set `needs_data = True`.
    """

    needs_data = False
    batches = 1

    def scores(self, model, weights, inputs):
        raise NotImplementedError

    def importance(self, inputs):
        """The `Importance` that ranks the masks; by default `scores`."""
        return _MethodScores(self, inputs)

    def set_masks(self, model, groups, inputs):
        """Masks every group at the target sparsity, ranked by
        `importance(inputs)` (`engine.update_at_init`)."""
        engine.update_at_init(groups, model, self.importance(inputs), self.target_sparsity)

    def _inputs(self, data, loss, seed):
        if not self.needs_data:
            return ScoringInputs(seed=seed)
        if data is None or loss is None:
            raise ValueError(
                f"Method {self.name!r} scores weights on training data: pass `data` "
                "(a tf.data.Dataset or any iterable of (x, y) batches, e.g. "
                "`train_ds.take(1)`) and `loss` (a Keras loss, its name, or a "
                f"function of (y_true, y_pred)). Received: data={data!r}, loss={loss!r}.")
        batches = [scores_lib.host_batch(b)
                   for b in itertools.islice(iter(data), self.batches)]
        if not batches:
            raise ValueError(
                f"Method {self.name!r} needs at least one batch of data; `data` was "
                "empty. Pass e.g. `train_ds.take(1)`.")
        if isinstance(loss, str):
            loss = keras.losses.get(loss)
        return ScoringInputs(batches=batches, loss=loss, seed=seed)

    def prune_at_init(self, model, data=None, loss=None, seed=0):
        """Wraps `model` and fixes its masks; returns the wrapped model."""
        inputs = self._inputs(data, loss, seed)
        # The callback re-applies the magnitude top-k at step 0 only: a
        # no-op, since exactly k weights are active and inactive ones rank
        # below every active one. The mask is fixed from then on.
        schedule = schedules.ConstantSparsity(self.target_sparsity, 0, end_step=0)
        pruned = prune_lib.prune_low_magnitude(model, schedule, scope=self.scope)
        groups = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
        self.set_masks(pruned, groups, inputs)
        return pruned

    def train(self, trainer):
        model = self.prune_at_init(
            trainer.build_model(), data=trainer.scoring_batches(self.batches),
            loss=trainer.loss_fn(), seed=trainer.config.seed)
        history = trainer.fit(model, [ProgressivePruningCallback()])
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


def make(name, target_sparsity, scope=None, options=None, argument="options"):
    """The method registered as `name`, built with the dict `options`.

    `argument` names the options in the error message (the caller's own
    argument name).

    Raises:
        ValueError: for an unknown name, or an option the method doesn't
            take (the error lists the ones it does).
    """
    options = dict(options or {})
    cls = get_method(name)
    accepted = set(inspect.signature(cls.__init__).parameters) - {
        "self", "target_sparsity", "scope"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for method {name!r}. Received: "
            f"{argument}={options}. Accepted: {sorted(accepted)}.")
    return cls(target_sparsity, scope=scope, **options)


def available_methods():
    return sorted(_METHODS)
