"""Methods that fix the mask at initialization: random, SNIP, GraSP, SynFlow."""

from keras_progprune.methods import scores as scores_lib
from keras_progprune.methods.base import ScoringMethod


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

    def scores(self, trainer, model, weights):
        seed = self.seed if self.seed is not None else trainer.config.seed
        return scores_lib.random_scores(weights, seed)


class _DataScoring(ScoringMethod):
    """A method scored on `batches` training batches at initialization."""

    def __init__(self, target_sparsity, scope=None, batches=1):
        super().__init__(target_sparsity, scope)
        if int(batches) < 1:
            raise ValueError(f"`batches` must be >= 1. Received: batches={batches!r}.")
        self.batches = int(batches)

    def _data(self, trainer):
        return list(trainer.scoring_batches(self.batches))


class Snip(_DataScoring):
    """SNIP: keep the highest `|g * w|` at initialization (global by default).

    Options:
        batches: int, training batches the gradient is averaged over.
            Defaults to 1 (the paper's single minibatch).
    """

    name = "snip"

    def scores(self, trainer, model, weights):
        return scores_lib.snip_scores(model, trainer.loss_fn(), self._data(trainer), weights)


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

    def scores(self, trainer, model, weights):
        return scores_lib.grasp_scores(model, trainer.loss_fn(), self._data(trainer),
                                       weights, self.temperature)


class SynFlow(ScoringMethod):
    """SynFlow: data-free, iterative pruning at initialization.

    Runs `rounds` rounds; round r prunes to density `d ** (r / rounds)`
    (the exponential schedule), `d = 1 - target_sparsity`, scoring the
    surviving weights by `|w * dR/dw|` with BatchNorm in inference mode.

    Options:
        rounds: int >= 1. Defaults to 100.
    """

    name = "synflow"

    def __init__(self, target_sparsity, scope=None, rounds=100):
        super().__init__(target_sparsity, scope)
        if int(rounds) < 1:
            raise ValueError(f"`rounds` must be >= 1. Received: rounds={rounds!r}.")
        self.rounds = int(rounds)

    def round_sparsities(self):
        density = 1.0 - self.target_sparsity
        return [1.0 - density ** (r / self.rounds) for r in range(1, self.rounds + 1)]

    def set_masks(self, trainer, model, groups):
        shape = model.input_shape[1:]
        for sparsity in self.round_sparsities():
            for group in groups:
                scores = scores_lib.synflow_scores(model, group.weights, shape)
                group.update(sparsity, scores=scores, intersect=True)
