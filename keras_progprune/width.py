"""`prune_width`: one-shot width pruning of a trained transformer.

Removes a fraction of the feed-forward neurons and of the attention heads
in every block, ranked by an importance score, and returns the shrunk
model. The default importance is Minitron's (Muralidharan et al., 2024):
the mean absolute activation of each neuron, and of each head's output,
over a few calibration batches. Recover the accuracy afterwards with
Keras's own `keras.distillation.Distiller` (see the README).

What counts as a block's width:

- feed-forward neurons: the intermediate units of every layer with a width
  rule (`channels/rules.py`: KerasHub's transformer blocks, a user's
  registered layer), and, in a plain Keras graph, every prunable channel
  space made by one Dense layer and read only by Dense layers (the
  `Dense(ff) -> Dense(hidden)` of a hand-written block);
- attention heads: the heads of every `MultiHeadAttention` (plain, or
  inside a KerasHub block).

The hidden width (the residual stream) is never touched: it runs through
every LayerNormalization, so removing part of it can't be exact.
"""

import numpy as np

import keras

from keras_progprune import importance as importance_lib
from keras_progprune import prune
from keras_progprune import walk
from keras_progprune.channels import graph as graph_lib
from keras_progprune.channels import rules
from keras_progprune.channels import shrink as shrink_lib

IMPORTANCES = ("activation", "magnitude")


class _Target:
    """One block's width: a group of channels, how to read them, how to
    zero some of them."""

    def __init__(self, kind, label, size, members, probe):
        self.kind = kind              # "ffn" or "heads"
        self.label = label
        self.size = size
        self.members = [rules.Member(*m) if isinstance(m, tuple) else m
                        for m in members]  # `rules.Member`s
        self.probe = probe            # (layer, "input"/"output", axis[, channels]) or None

    def magnitude(self):
        """Mean square of each channel's weights."""
        total = np.zeros(self.size)
        count = np.zeros(self.size)
        for m in self.members:
            value = np.asarray(keras.ops.convert_to_numpy(m.variable), np.float64)
            flat = np.moveaxis(value, m.axis, 0).reshape(value.shape[m.axis], -1)
            total += m.per_channel((flat ** 2).sum(axis=1), self.size)
            count += m.per_channel(np.full(len(flat), flat.shape[1]), self.size)
        return total / np.maximum(count, 1)

    def zero(self, removed):
        """Sets every weight of the `removed` channels to 0."""
        for m in self.members:
            value = np.array(keras.ops.convert_to_numpy(m.variable))
            slicer = [slice(None)] * value.ndim
            slicer[m.axis] = m.indices(removed)
            value[tuple(slicer)] = 0
            m.variable.assign(value)


def _targets(graph):
    """The `_Target`s of a plain model's graph."""
    out = []
    for space in graph.spaces:
        if space.width is not None:
            _, group = space.width
            if group.fixed or space.frozen:
                continue
            out.append(_Target(group.name, group.label, space.size,
                               list(group.members), group.probe))
        elif _is_dense_ffn(space):
            (producer,) = space.producers
            members = [(producer.kernel, 1)]
            if producer.bias is not None:
                members.append((producer.bias, 0))
            members += [(consumer.layer.kernel, 0) for consumer in space.consumers]
            out.append(_Target("ffn", producer.name, space.size, members,
                               (producer, "output", -1)))
    return out


def _is_dense_ffn(space):
    dense = keras.layers.Dense
    return (space.prunable and len(space.producers) == 1 and not space.followers
            and isinstance(space.producers[0], dense) and space.consumers
            and all(isinstance(c.layer, dense) and c.offset == 0 and c.repeat == 1
                    and c.total == space.size for c in space.consumers))


def check_fraction(name, value):
    """`value` as a float, or a ValueError naming `name` unless in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0.0 <= float(value) < 1.0):
        raise ValueError(
            f"`{name}` is the fraction of each block's {_NOUNS[name.split('_')[-1]]} "
            f"to remove and must be in [0, 1). Received: {name}={value!r}.")
    return float(value)


_NOUNS = {"ffn": "feed-forward neurons", "heads": "attention heads"}


def prune_width(model, ffn=0.0, heads=0.0, data=None, importance="activation",
                batches=None, hidden=0.0):
    """Removes feed-forward neurons and attention heads of a trained model.

    In every block, the `ffn` fraction of its feed-forward neurons and the
    `heads` fraction of its attention heads with the lowest importance are
    removed, and the model is rebuilt smaller (`kp.shrink`), so it is plain
    Keras (KerasHub blocks stay KerasHub classes, or become their
    `keras_progprune.hub_layers` subclasses when heads go). What stays
    computes exactly what it did: only the removed neurons and heads change
    the outputs. Recover with distillation (see the README).

    Args:
        model: a trained Sequential or Functional `keras.Model` (a KerasHub
            backbone or task model's backbone, or a plain Keras transformer).
        ffn: float in [0, 1), the fraction of each block's feed-forward
            neurons removed.
        heads: float in [0, 1), the fraction of each attention layer's heads
            removed.
        data: the calibration set for `importance="activation"`: a
            `tf.data.Dataset` or an iterable of `(x, y)` batches (or of `x`
            alone), as for `prune_at_init`. Labels are not used.
        importance: `"activation"` (the mean absolute activation of each
            neuron and of each head's output over `data`, as Minitron ranks
            them), `"magnitude"` (the mean square of each neuron's or
            head's weights; needs no data), or a function `(label, kind,
            magnitude) -> scores` returning one score per channel (higher
            is kept), for a custom ranking.
        batches: how many batches of `data` to read (None: all of them;
            give a number for an endless dataset).
        hidden: must be 0. Removing hidden (residual-stream) channels is
            never exact, since every LayerNormalization averages over them;
            it is not offered, so it can't happen by accident.

    Returns:
        A new, smaller `keras.Model`; `model` is not modified.

    Raises:
        ValueError: for a fraction outside [0, 1); `ffn` > 0 on a model
            with no feed-forward block or `heads` > 0 on one without
            attention heads it can remove; a fraction that would remove
            every neuron or head of a block; `importance="activation"`
            without `data`, or an empty `data`; an unknown `importance`;
            `hidden` other than 0.

    Examples:
        >>> import keras, numpy as np, keras_progprune as kp
        >>> x = keras.Input((6, 8))
        >>> h = keras.layers.MultiHeadAttention(4, 2, name="mha")(x, x)
        >>> h = keras.layers.Dense(16, activation="relu", name="up")(x + h)
        >>> model = keras.Model(x, x + keras.layers.Dense(8)(h))
        >>> calib = [np.random.rand(4, 6, 8).astype("float32")]
        >>> small = kp.prune_width(model, ffn=0.5, heads=0.5, data=calib)
        >>> small.get_layer("up").units, small.get_layer("mha").num_heads
        (8, 2)
    """
    if hidden:
        raise ValueError(
            "Pruning the hidden width (the residual stream) is not offered: every "
            "LayerNormalization averages over those channels, so removing any is "
            "never exact, and it would need distillation to recover. Prune `ffn` "
            f"and `heads` instead. Received: hidden={hidden!r}.")
    fractions = {"ffn": check_fraction("ffn", ffn), "heads": check_fraction("heads", heads)}
    if not (importance in IMPORTANCES or callable(importance)):
        raise ValueError(
            f"`importance` must be one of {IMPORTANCES} or a function. Received: "
            f"importance={importance!r}.")
    if importance == "activation" and data is None and any(fractions.values()):
        raise ValueError(
            "importance='activation' ranks neurons and heads by their activations "
            "over calibration batches: pass `data` (a tf.data.Dataset or a list of "
            "(x, y) batches), or use importance='magnitude'. Received: data=None.")
    importance_lib.check_batches(batches)
    if not isinstance(model, keras.Model) or not walk.is_graph_model(model):
        raise ValueError(
            "`prune_width` takes a Sequential or Functional keras.Model (KerasHub "
            f"backbones are). Received: model={model!r} of type {type(model).__name__}.")
    plain = prune.strip_pruning(model)  # a copy: the user's model stays as it is
    targets = _targets(graph_lib.analyze(plain))
    for kind, fraction in fractions.items():
        if fraction > 0 and not any(t.kind == kind for t in targets):
            raise ValueError(
                f"`{kind}={fraction}` was given, but model {model.name!r} has no "
                f"{_NOUNS[kind]} that prune_width can remove"
                + (" (no feed-forward block: a Dense -> Dense pair, or a layer with a "
                   "width rule such as KerasHub's TransformerEncoder)" if kind == "ffn"
                   else " (no MultiHeadAttention, plain or inside a KerasHub block, "
                   "whose heads can be rebuilt)")
                + f". Pass {kind}=0, or register a rule for your layer with "
                "kp.register_layer_rule.")
    chosen = [t for t in targets if fractions[t.kind] > 0]
    scores = _importance(model, plain, chosen, importance, data, batches)
    for target in chosen:
        keep = int(round(target.size * (1.0 - fractions[target.kind])))
        if keep < 1:
            raise ValueError(
                f"`{target.kind}={fractions[target.kind]}` would remove every one of the "
                f"{target.size} {_NOUNS[target.kind]} of {target.label!r}; a block keeps "
                f"at least one. Use a fraction below {1 - 0.5 / target.size:.3g}.")
        order = np.argsort(-scores[target.label], kind="stable")
        target.zero(np.sort(order[keep:]))
    if not chosen:
        return plain
    return shrink_lib.shrink(plain)


def _importance(model, plain, targets, importance, data, batches):
    """`{label: scores}` of each target (higher is kept)."""
    if importance == "magnitude" or not targets:
        return {t.label: t.magnitude() for t in targets}
    if callable(importance):
        return {t.label: np.asarray(importance(t.label, t.kind, t.magnitude()), np.float64)
                for t in targets}
    probes = [importance_lib.Probe.of(t.label, t.probe, t.size)
              for t in targets if t.probe is not None]
    return importance_lib.mean_activations(plain, probes, data, batches)
