"""Scores of weights from the model's gradients (and random ones).

Each function takes a model, the weights to score and (except SynFlow)
batches of data, and returns one float32 tensor per weight; the engine
keeps the highest. `keras_progprune.importance` makes them importances:
SNIP's `|g * w|` is also gradual Taylor pruning's score. No Layer or
Callback code lives here.
"""

import keras
import numpy as np
from keras import ops

from keras_progprune import backend
from keras_progprune import wrapper as wrapper_lib


def _loss(model, loss_fn, batch, training, temperature=1.0):
    """The mean loss over the batch (a loss function's per-example values,
    as `keras.losses.get(name)` gives, are averaged)."""
    x, y = batch
    return ops.mean(loss_fn(y, model(x, training=training) / temperature))


def host_batch(batch):
    """A batch as NumPy arrays (tf.data gives TensorFlow tensors, which
    every backend takes as NumPy)."""
    return keras.tree.map_structure(np.asarray, batch)


class _ScoringPass:
    """Forward passes in training mode that leave the model as it was.

    Training mode lets BatchNorm use batch statistics (as SNIP and GraSP
    do); its moving averages are restored afterwards, and the pruning
    wrappers accept the training-mode call without the callback.
    """

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.wrappers = wrapper_lib.collect_wrappers(self.model)
        self.armed = [w.armed for w in self.wrappers]
        for w in self.wrappers:
            if not w.armed:
                w.arm()
        self.saved = [(v, v.numpy()) for v in self.model.non_trainable_variables]
        return self

    def __exit__(self, *exc):
        for v, value in self.saved:
            v.assign(value)
        for w, armed in zip(self.wrappers, self.armed):
            if not armed:
                w.disarm()
        return False


def gradients(model, loss_fn, batches, weights, temperature=1.0):
    """Mean gradient of the loss over `batches`, for each of `weights`.

    `temperature` divides the logits before the loss (GraSP's code uses 200).
    """
    # Accumulated in each variable's own dtype (float32, or float64 in tests).
    total = [ops.zeros(w.shape, w.dtype) for w in weights]
    n = 0
    with _ScoringPass(model):
        for batch in batches:
            grads = backend.gradients(
                lambda b=batch: _loss(model, loss_fn, b, True, temperature), weights)
            total = [t + ops.cast(g, t.dtype) for t, g in zip(total, grads)]
            n += 1
    if n == 0:
        raise ValueError("Scoring needs at least one batch of data; the dataset was empty.")
    return [t / n for t in total]


def snip_scores(model, loss_fn, batches, weights):
    """SNIP (Lee et al. 2019): `|g * w|` at initialization."""
    grads = gradients(model, loss_fn, batches, weights)
    return [ops.cast(ops.abs(g * ops.cast(w, g.dtype)), "float32")
            for g, w in zip(grads, weights)]


def hessian_gradient_product(model, loss_fn, batches, weights, temperature=1.0):
    """`H g` for the loss over `batches`, by double backprop.

    `g` is the mean gradient over all batches (held constant); `H g` is the
    gradient of `g . grad L` with respect to the weights, averaged over the
    batches, as in GraSP's code.
    """
    g = [ops.stop_gradient(t)
         for t in gradients(model, loss_fn, batches, weights, temperature)]
    total = [ops.zeros(w.shape, w.dtype) for w in weights]
    n = 0
    with _ScoringPass(model):
        for batch in batches:
            hg = backend.hessian_vector_product(
                lambda b=batch: _loss(model, loss_fn, b, True, temperature), weights, g)
            total = [t + ops.cast(h, t.dtype) for t, h in zip(total, hg)]
            n += 1
    return [t / n for t in total]


def grasp_scores(model, loss_fn, batches, weights, temperature=1.0):
    """GraSP (Wang et al. 2020): keep-scores `w * (H g)`.

    GraSP scores weights by `-w * (H g)` and removes the highest; keeping
    the highest of the negation is the same selection.
    """
    hg = hessian_gradient_product(model, loss_fn, batches, weights, temperature)
    return [ops.cast(ops.cast(w, h.dtype) * h, "float32") for w, h in zip(weights, hg)]


def synflow_scores(model, weights, input_shape):
    """One SynFlow round (Tanaka et al. 2020): `|w * dR/dw|`.

    Every trainable variable is replaced by its absolute value (pruned
    weights are zero already), the input is all ones, and
    `R = sum(model(ones))` in inference mode: BatchNorm then applies its
    moving statistics (an affine map, the same for every input) instead of
    normalizing the single all-ones example away. Values are restored
    before returning.
    """
    variables = model.trainable_variables
    saved = [v.numpy() for v in variables]
    try:
        for v, value in zip(variables, saved):
            v.assign(np.abs(value))
        x = np.ones((1,) + tuple(input_shape), np.float32)
        grads = backend.gradients(
            lambda: ops.sum(ops.cast(model(x, training=False), "float32")), weights)
        return [ops.abs(ops.cast(g, "float32") * ops.cast(w, "float32"))
                for g, w in zip(grads, weights)]
    finally:
        for v, value in zip(variables, saved):
            v.assign(value)


def random_scores(weights, seed):
    """Uniform random scores: a random mask at the target sparsity.

    Drawn with NumPy, so the mask is the same on every backend.
    """
    return [np.random.default_rng([seed, i]).random(tuple(w.shape), dtype=np.float32)
            for i, w in enumerate(weights)]
