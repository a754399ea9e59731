"""`fit_shrinking`: training that gets faster as it prunes.

Training runs in phases of `shrink_every` epochs. Between phases the model
is shrunk in place of itself: every channel the schedule has removed is
physically gone, and the next phase trains a smaller, still channel-wrapped
model, so the schedule carries on. Carried across, sliced exactly as the
weights are: the surviving weights, the masks and the schedule's step, the
optimizer's slots (momentum, Adam moments) and its iteration count (so a
learning-rate schedule continues), and BatchNormalization statistics.
"""

import keras
import numpy as np

from keras_progprune import backend
from keras_progprune import hub_models
from keras_progprune import surgery
from keras_progprune import walk
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.callbacks import ProgressivePruningCallback
from keras_progprune.channels import graph as graph_lib
from keras_progprune.channels import shrink as shrink_lib
from keras_progprune.wrapper import PruningWrapper


class ShrinkingFitResult:
    """What `fit_shrinking` returns.

    Attributes:
        model: the final model, shrunk after the last phase too: smaller,
            still channel-wrapped and compiled (so training can go on);
            `kp.shrink(model)` gives the plain model to save and serve.
        history: one `keras.callbacks.History` across all phases.
        phases: list of dicts, one per phase: `epochs` (first, last + 1),
            `parameters` (trainable, while the phase trained).
    """

    def __init__(self, model, history, phases):
        self.model = model
        self.history = history
        self.phases = phases


class _ParameterCount(keras.callbacks.Callback):
    """Shows the trainable parameter count in the progress bar and logs."""

    def on_train_begin(self, logs=None):
        self.count = int(sum(np.prod(w.shape) for w in self.model.trainable_weights))

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None:
            logs["params"] = self.count

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["params"] = self.count


def _check(model, shrink_every, callbacks):
    if isinstance(shrink_every, bool) or not isinstance(shrink_every, (int, np.integer)) \
            or shrink_every < 1:
        raise ValueError(
            "`shrink_every` must be a whole number of epochs >= 1. Received: "
            f"shrink_every={shrink_every!r}. Use shrink_every=1 to shrink after every epoch.")
    if not isinstance(model, keras.Model) or not walk.is_graph_model(model):
        raise ValueError(
            "`fit_shrinking` takes a Sequential or Functional model pruned with "
            f"structure='channel'. Received: model of type {type(model).__name__}.")
    wrappers = wrapper_lib.collect_wrappers(model)
    others = sorted({repr(w.structure) for w in wrappers if not w.structure.shrinks})
    if not wrappers or others:
        raise ValueError(
            "Only channel masks can shrink during training: unstructured or N:M masks "
            "leave every layer its full shape, so there is nothing to remove between "
            f"phases. Received a model whose wrappers have structures {others or 'none'}. "
            "Prune with `prune_low_magnitude(model, schedule, structure='channel')`.")
    if getattr(model, "optimizer", None) is None or not model.compiled:
        raise ValueError(
            f"Model {model.name!r} is not compiled. Call `model.compile(optimizer, loss, "
            "...)` first; `fit_shrinking` recompiles each smaller model the same way.")
    distribution = backend.distribution_name(model)
    if distribution == "ModelParallel":
        raise ValueError(
            "`fit_shrinking` works without a distribution and under "
            "`keras.distribution.DataParallel`, where each smaller model's variables "
            "are created replicated again. Received: a model training under "
            "ModelParallel, whose LayoutMap shards variables by their shapes: a shrunk "
            "width need not divide the mesh axis that shards it. Use `model.fit` "
            "(masks only, no shrinking), then `kp.shrink` once at the end.")
    if distribution not in (None, "DataParallel"):
        raise ValueError(
            "`fit_shrinking` doesn't support tf.distribute strategies: each phase builds "
            "a new, smaller model and optimizer outside the strategy's scope. Received: "
            f"a model training under {distribution}. Use `keras.distribution.DataParallel` "
            "(JAX), or `model.fit` (masks only, no shrinking), then `kp.shrink` once at "
            "the end.")
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            raise ValueError(
                "`BackupAndRestore` can't be used with `fit_shrinking`: a backup holds "
                "the weights of one phase's model, and the model changes shape between "
                "phases, so it could not be restored into the next one. Use "
                "`ModelCheckpoint` to save each epoch's model instead.")
    if getattr(model, "steps_per_execution", 1) not in (1, None):
        raise ValueError("`fit_shrinking` needs steps_per_execution=1. Received: "
                         f"steps_per_execution={model.steps_per_execution}.")


def _slices(model):
    """`(channels removed, {id(variable): slice function}, {id(layer): config
    overrides}, {id(layer): new weights})` for shrinking a wrapped model."""
    graph, values, keep = shrink_lib.removable_channels(model)
    cuts, overrides, weights = {}, {}, {}
    for node in graph.nodes:
        if not walk.is_layer(node.operation):
            continue
        layer = graph_lib.layer_of(node.operation)
        overrides[id(layer)], new, cut = shrink_lib.layer_changes(graph, node, values, keep)
        cuts.update(cut)
        if new is not None:
            weights[id(layer)] = new
    removed = sum(graph.space(i).size - len(k) for i, k in keep.items())
    return removed, cuts, overrides, weights


def shrink_in_training(model):
    """One phase boundary: the smaller model, compiled, with everything carried.

    Returns:
        `(new model, channels removed)`; `(model, 0)` when nothing can go.
    """
    removed, cuts, overrides, new_weights = _slices(model)
    if removed == 0:
        return model, 0
    changed = {k for k, o in overrides.items() if o} | set(new_weights)
    found = None
    if hub_models.is_hub_model(model):  # KerasHub's own class, smaller, wrapped again
        found = hub_models.shrunk_wrapped(
            model, {k: (overrides.get(k, {}), new_weights.get(k)) for k in changed})
    if found is not None:
        clone, pairs = found
    else:
        clone, pairs = surgery.rebuilt(model, overrides, changed)

        def values_of(old, new):
            old_layer = old.layer if isinstance(old, PruningWrapper) else old
            new_layer = new.layer if isinstance(new, PruningWrapper) else new
            return new_layer, new_weights.get(id(old_layer)) or old_layer.get_weights()

        surgery.copy_weights(pairs, values_of)
    for old, new in pairs.values():
        if isinstance(old, PruningWrapper):
            for w, m_old, m_new in zip(old.pruned_weights, old.masks, new.masks):
                cut = cuts.get(id(w), lambda a: a)
                m_new.assign(np.asarray(cut(np.asarray(m_old.numpy())), m_new.dtype))
            # A value, not the variable: on JAX they would share a buffer that the
            # old model's next `fit` donates.
            new.pruning_step.assign(int(old.pruning_step.numpy()))
    clone.compile_from_config(model.get_compile_config())
    _carry_optimizer(model, clone, cuts)
    return clone, removed


def _carry_optimizer(old_model, new_model, cuts):
    """Builds the new optimizer and fills it from the old one, slicing slots.

    Both optimizers are built over the same trainable variables in the same
    order, so their variables pair up by position. A slot shaped like a
    weight (momentum, Adam moments) is sliced like that weight; the slot's
    owner is found from its name, which Keras derives from the owner's path.
    """
    old_opt, new_opt = old_model.optimizer, new_model.optimizer
    if not old_opt.built:
        return
    new_opt.build(new_model.trainable_variables)
    old_trainable = old_model.trainable_variables
    if len(old_opt.variables) != len(new_opt.variables):
        raise ValueError(
            f"Can't carry the optimizer's state: it has {len(old_opt.variables)} variables "
            f"before the shrink and {len(new_opt.variables)} after. Please report this "
            "with the optimizer's class and the model's summary.")
    for old, new in zip(old_opt.variables, new_opt.variables):
        value = np.asarray(old.numpy())
        if tuple(old.shape) != tuple(new.shape):
            owner = walk.slot_owner(new, new_model.trainable_variables)
            cut = cuts.get(id(old_trainable[owner])) if owner is not None else None
            if cut is None:
                raise ValueError(
                    f"Can't carry optimizer variable {new.name!r} from shape "
                    f"{tuple(old.shape)} to {tuple(new.shape)}: no weight it belongs to "
                    "was found. Please report this with the model's summary.")
            value = cut(value)
        new.assign(np.asarray(value, new.dtype))


def _merge_history(target, phase_history):
    for key, values in phase_history.history.items():
        target.history.setdefault(key, []).extend(values)
    target.epoch.extend(phase_history.epoch)


def fit_shrinking(pruned, x=None, y=None, *, epochs=1, shrink_every=1, callbacks=None,
                  **fit_kwargs):
    """Trains a channel-pruned model in phases, shrinking it between them.

    After every `shrink_every` epochs, the channels the schedule has
    removed so far are physically removed (`kp.shrink`'s rules, exact), and
    training continues on the smaller model: later epochs run faster. The
    surviving weights, masks, schedule step, BatchNormalization statistics,
    the optimizer's slots (sliced like the weights) and its iteration count
    carry over, so the run computes what one masked `fit` would, up to float
    rounding.

    Callbacks see one run: epoch numbers continue across phases (`fit`'s
    `initial_epoch`), `History` is merged, a `CSVLogger` appends after the
    first phase, and `logs["params"]` (trainable parameters of the current
    phase's model) shows in the progress bar beside `sparsity`. A
    `ProgressivePruningCallback` is added if `callbacks` has none.
    `BackupAndRestore` is refused (the model changes shape between phases),
    as are tf.distribute strategies. Callbacks that keep state across
    `on_train_begin` (EarlyStopping's patience) restart it every phase.

    Args:
        pruned: a compiled Sequential or Functional model from
            `prune_low_magnitude(..., structure="channel")`.
        x: training data, as for `model.fit` (arrays, a `tf.data.Dataset`
            or a generator).
        y: targets, as for `model.fit` (None when `x` yields them).
        epochs: int, total epochs over all phases.
        shrink_every: int >= 1, epochs per phase.
        callbacks: list of Keras callbacks.
        **fit_kwargs: passed to every phase's `fit` (`validation_data`,
            `batch_size`, `verbose`, ...).

    Returns:
        A `ShrinkingFitResult` (`.model`, `.history`, `.phases`).

    Raises:
        ValueError: for `shrink_every` < 1, a model without channel
            wrappers, an uncompiled model, a distribution strategy, or
            `BackupAndRestore` among the callbacks.

    Examples:
        >>> import keras, numpy as np, keras_progprune as kp
        >>> inputs = keras.Input((6,))
        >>> hidden = keras.layers.Dense(16, activation="relu")(inputs)
        >>> model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
        >>> pruned = kp.prune_low_magnitude(
        ...     model, kp.ConstantSparsity(0.5, 0, frequency=1), structure="channel")
        >>> pruned.compile("adam", "mse")
        >>> result = kp.fit_shrinking(pruned, np.ones((8, 6)), np.ones((8, 2)),
        ...                           epochs=2, shrink_every=1, verbose=0)
        >>> result.model.layers[1].layer.units
        8
    """
    callbacks = list(callbacks or [])
    _check(pruned, shrink_every, callbacks)
    if "initial_epoch" in fit_kwargs:
        raise ValueError("`fit_shrinking` sets `initial_epoch` for each phase; pass "
                         "`epochs` (the total) only.")
    counter = _ParameterCount()
    # Ours first, so that loggers later in the list see `sparsity` and `params`.
    ours = [counter]
    if not any(isinstance(c, ProgressivePruningCallback) for c in callbacks):
        ours.insert(0, ProgressivePruningCallback())
    callbacks = ours + callbacks
    history = keras.callbacks.History()
    history.history, history.epoch = {}, []
    model, phases, start = pruned, [], 0
    while start < epochs:
        end = min(start + shrink_every, epochs)
        phase = model.fit(x, y, epochs=end, initial_epoch=start,
                          callbacks=callbacks, **fit_kwargs)
        _merge_history(history, phase)
        phases.append({"epochs": [start, end], "parameters": counter.count})
        for c in callbacks:
            if isinstance(c, keras.callbacks.CSVLogger):
                c.append = True  # the next phase continues the file
        start = end
        model, _ = shrink_in_training(model)  # after the last phase too
    history.set_model(model)
    return ShrinkingFitResult(model, history, phases)
