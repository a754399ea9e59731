"""Methods that fix the mask at initialization: random, SNIP, GraSP, SynFlow.

Each is usable without the experiment runner, through `prune_at_init`.
"""

from keras_progprune import importance as importance_lib
from keras_progprune.methods.base import ScoringMethod
from keras_progprune.methods.base import get_method
from keras_progprune.methods.base import make


def prune_at_init(model, method, target_sparsity, *, data=None, loss=None,
                  scope=None, seed=0, **options):
    """Prunes `model` once, before training, with a scoring method.

    Wraps every prunable layer, scores the weights with `method` and fixes
    masks at `target_sparsity`. Train the result with a plain `model.fit`
    and `ProgressivePruningCallback()` (which keeps the pruned weights at
    zero; the masks no longer change), then `strip_pruning`.

    Args:
        model: a Sequential or Functional model (not modified).
        method: `"snip"`, `"grasp"`, `"synflow"`, `"random"`, or the name of
            a registered `ScoringMethod`.
        target_sparsity: float in [0, 1).
        data: for SNIP and GraSP: a `tf.data.Dataset` or iterable of
            `(x, y)` batches; the first `batches` of them are used
            (default 1). Ignored by SynFlow and random.
        loss: for SNIP and GraSP: a Keras loss, its name, or a function of
            `(y_true, y_pred)` on the model's outputs.
        scope: `"global"` or `"layer"`. Defaults to the method's own
            (global for SNIP, GraSP, SynFlow; layer for random).
        seed: int, for random masks. Defaults to 0.
        **options: the method's options (SNIP/GraSP `batches`, GraSP
            `temperature`, SynFlow `rounds`, random `seed`).

    Returns:
        The wrapped model with fixed masks.

    Raises:
        ValueError: for an unknown method, a method that does not prune at
            initialization, a missing `data`/`loss`, or a bad option.

    Examples:
        >>> import keras, numpy as np, keras_progprune as kp
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        >>> x, y = np.ones((16, 8), "float32"), np.zeros((16,), "int32")
        >>> pruned = kp.prune_at_init(model, "snip", 0.75, data=[(x, y)],
        ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> kp.sparsity_report(pruned)["total"]["sparsity"]
        0.75
    """
    cls = get_method(method)
    if not issubclass(cls, ScoringMethod):
        raise ValueError(
            f"Method {method!r} does not prune at initialization. Received: "
            f"method={method!r}. Use 'snip', 'grasp', 'synflow' or 'random' here; "
            "for progressive pruning wrap with `prune_low_magnitude` and train with "
            "`ProgressivePruningCallback`, for the lottery ticket call "
            "`lottery_ticket`.")
    return make(method, target_sparsity, scope=scope, options=options).prune_at_init(
        model, data=data, loss=loss, seed=seed)


class Random(ScoringMethod):
    """A uniform random mask at the target sparsity, fixed at initialization.

    Options:
        seed: int or None, seeds the mask. Defaults to the run's seed.
    """

    name = "random"
    default_scope = "layer"

    def __init__(self, target_sparsity, scope=None, seed=None):
        super().__init__(target_sparsity, scope)
        self.seed = seed

    def importance(self, inputs):
        return importance_lib.Random(self.seed if self.seed is not None else inputs.seed)


class _DataScoring(ScoringMethod):
    """A method scored on `batches` training batches at initialization."""

    needs_data = True

    def __init__(self, target_sparsity, scope=None, batches=1):
        super().__init__(target_sparsity, scope)
        if int(batches) < 1:
            raise ValueError(f"`batches` must be >= 1. Received: batches={batches!r}.")
        self.batches = int(batches)


class Snip(_DataScoring):
    """SNIP: keep the highest `|g * w|` at initialization (global by default).

    Options:
        batches: int, training batches the gradient is averaged over.
            Defaults to 1 (the paper's single minibatch).
    """

    name = "snip"

    def importance(self, inputs):
        return importance_lib.Taylor(inputs.batches, inputs.loss, batches=len(inputs.batches))


class Grasp(_DataScoring):
    """GraSP: remove the highest `-w * (H g)` at initialization.

    Options:
        batches: int, training batches for `g` and `H g`. Defaults to 1.
        temperature: float > 0, logits are divided by it before the loss,
            as in GraSP's official code. Defaults to 200.
    """

    name = "grasp"

    def __init__(self, target_sparsity, scope=None, batches=1, temperature=200.0):
        super().__init__(target_sparsity, scope, batches=batches)
        if not float(temperature) > 0:
            raise ValueError(
                f"`temperature` must be > 0. Received: temperature={temperature!r}.")
        self.temperature = float(temperature)

    def importance(self, inputs):
        return importance_lib.Grasp(inputs.batches, inputs.loss,
                                    batches=len(inputs.batches),
                                    temperature=self.temperature)


class SynFlow(ScoringMethod):
    """SynFlow: data-free, iterative pruning at initialization.

    Runs `rounds` rounds; round r prunes to density `d ** (r / rounds)`
    (the exponential schedule), `d = 1 - target_sparsity`, scoring the
    surviving weights by `|w * dR/dw|` with BatchNorm in inference mode
    (`keras_progprune.importance.SynFlow`).

    Options:
        rounds: int >= 1. Defaults to 100.
    """

    name = "synflow"

    def __init__(self, target_sparsity, scope=None, rounds=100):
        super().__init__(target_sparsity, scope)
        self.rounds = importance_lib.SynFlow(rounds).rounds  # checks it

    def round_sparsities(self):
        return importance_lib.SynFlow(self.rounds).round_sparsities(self.target_sparsity)

    def importance(self, inputs):
        return importance_lib.SynFlow(self.rounds)
