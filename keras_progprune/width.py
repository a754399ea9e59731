"""`prune_width`: one-shot width pruning of a trained transformer.

Removes a fraction of the feed-forward neurons and of the attention heads
in every block, ranked by an importance score, and returns the shrunk
model. The default importance is Minitron's (Muralidharan et al., 2024):
the mean absolute activation of each neuron, and of each head's output,
over a few calibration batches. Recover the accuracy afterwards with
Keras's own `keras.distillation.Distiller` (see the README).

What counts as a block's width:

- feed-forward neurons: the intermediate units of every layer with a width
  rule (`keras_progprune.rules`: KerasHub's transformer blocks, a user's
  registered layer), and, in a plain Keras graph, every prunable channel
  space made by one Dense layer and read only by Dense layers (the
  `Dense(ff) -> Dense(hidden)` of a hand-written block);
- attention heads: the heads of every `MultiHeadAttention` (plain, or
  inside a KerasHub block), and in a grouped-query block the query-head
  slots (`heads`) or whole key/value groups (`kv_heads`);
- hidden channels (the residual stream) of a KerasHub decoder, only when
  asked for (`hidden.py`): it runs through every normalization layer, so
  removing part of it is never exact.
"""

import numpy as np

import keras
from keras import ops

from keras_progprune import engine
from keras_progprune import hidden as hidden_lib
from keras_progprune import hub_models
from keras_progprune import importance as importance_lib
from keras_progprune import prune
from keras_progprune import rules
from keras_progprune import schedules
from keras_progprune import walk
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.channels import graph as graph_lib
from keras_progprune.channels import shrink as shrink_lib
from keras_progprune.rules import keras_hub as hub_rules


def _kind(space, dense=True):
    """`"ffn"`, `"heads"` or `"kv_heads"` for a space `prune_width` can
    remove channels of (a width group, or with `dense`, a plain Dense
    feed-forward space), else None. A KerasHub model's feed-forward
    neurons are its blocks' (`dense=False`): a Dense pair outside them is
    a task's head (BERT's pooler), not a block's width."""
    if space.width is not None:
        _, group = space.width
        return None if group.fixed or space.frozen else group.name
    return "ffn" if dense and _is_dense_ffn(space) else None


def _kept(space, fraction):
    """How many of `space`'s channels stay when `fraction` of them go."""
    return int(round(space.size * (1.0 - fraction)))


def _label(space):
    return space.width[1].label if space.width is not None else space.producers[0].name


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
            f"`{name}` is the fraction of each block's {_NOUNS[name.split('width_')[-1]]} "
            "to remove and must "
            f"be in [0, 1). Received: {name}={value!r}.")
    return float(value)


_NOUNS = {"ffn": "feed-forward neurons", "heads": "attention heads",
          "kv_heads": "key/value groups (with their query heads)",
          "hidden": "hidden (embedding) channels"}


@walk.keeps_frozen("prune_width")
def prune_width(model, ffn=0.0, heads=0.0, kv_heads=0.0, hidden=0.0, data=None,
                importance="activation", batches=None):
    """Removes feed-forward neurons, attention heads, key/value groups and
    hidden channels of a trained model, as Minitron does.

    In every block, the `ffn` fraction of its feed-forward neurons and the
    `heads` fraction of its attention heads with the lowest importance are
    removed, and the model is rebuilt smaller (`kp.shrink`), so it is plain
    Keras or KerasHub's own class with a smaller config (see the README's
    "LLMs" section for which families). What stays computes exactly what
    it did: only the removed neurons and heads change the outputs. Recover
    with distillation (see the README).

    With grouped-query attention (Llama, Gemma, Qwen, Mistral, Phi-3),
    `heads` removes the same number of query heads from every key/value
    group and keeps every key/value head; `kv_heads` removes whole
    key/value groups with their query heads. Both are exact. Key/value
    groups go first, in a pass of their own (with its own calibration),
    then neurons and query heads.

    `hidden` removes hidden (embedding) channels everywhere in a KerasHub
    decoder: the token embedding, every block's input and output
    projections, every normalization scale, and an output head (tied or
    not). It is **not exact**: each RMSNorm or LayerNorm then averages over
    fewer channels, and Gemma scales its embeddings by `sqrt(hidden_dim)`.
    Channels are ranked by the mean absolute output of every normalization
    layer over `data`, summed (Minitron's ranking), and removed last.

    Args:
        model: a trained Sequential or Functional `keras.Model`: a KerasHub
            task or backbone (returned as its own class, with a smaller
            config, where the config can say the new width), or a plain
            Keras transformer.
        ffn: float in [0, 1), the fraction of each block's feed-forward
            neurons removed (a gated neuron's gate, up and down slices go
            together).
        heads: float in [0, 1), the fraction of each attention layer's heads
            removed; with grouped-query attention, of the query heads of
            each key/value group, and it must remove a whole number of them
            (`0.5` of 4 per group, not `0.3`).
        kv_heads: float in [0, 1), the fraction of each grouped-query
            block's key/value groups removed with their query heads; a
            whole number of groups.
        hidden: float in [0, 1), the fraction of a KerasHub decoder's hidden
            channels removed (not exact, see above).
        data: the calibration set for `importance="activation"`: a
            `tf.data.Dataset` or an iterable of `(x, y)` batches (or of `x`
            alone), as for `prune_at_init`. Labels are not used. It is read
            batch by batch; only per-channel sums are kept.
        importance: `"activation"` (the mean absolute activation of each
            neuron and of each head's output over `data`, as Minitron ranks
            them, read at the channel engine's probes), `"magnitude"` (the
            mean square of the weights each neuron's or head's mask covers;
            needs no data), another name of `kp.importance.names()` or a
            `kp.importance.Importance` (given `data` and `batches`), or a
            function `(label, kind, magnitude) -> scores` returning one
            score per channel (higher is kept), for a custom ranking.
            Hidden channels are ranked by `"activation"`, `"magnitude"` (the
            token embedding's column norms) or the function.
        batches: how many batches of `data` to read (None: all of them;
            give a number for an endless dataset).

    Returns:
        A new, smaller `keras.Model`; `model` is not modified, also when an
        error is raised.

    Raises:
        ValueError: for a fraction outside [0, 1); `ffn`, `heads` or
            `kv_heads` > 0 on a model without them (naming why, or the
            class that lacks a rule); a fraction that would remove every
            neuron or head of a block, or that doesn't split evenly over
            the key/value groups; `hidden` > 0 on a model without a
            residual stream that this package can rebuild;
            `importance="activation"` without `data`, or an empty `data`;
            an unknown `importance`.

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
    fractions = {name: check_fraction(name, value) for name, value in
                 (("ffn", ffn), ("heads", heads), ("kv_heads", kv_heads),
                  ("hidden", hidden))}
    if not (importance in importance_lib.names() or callable(importance)
            or isinstance(importance, importance_lib.Importance)):
        raise ValueError(
            f"`importance` must be one of {importance_lib.names()}, a "
            "kp.importance.Importance or a function. Received: "
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
            f"backbones and tasks are). Received: model={model!r} of type "
            f"{type(model).__name__}.")
    if fractions["hidden"]:
        hidden_lib.check_model(model, fractions["hidden"], importance)
    if not any(fractions.values()):
        return prune.strip_pruning(model)  # a copy, as always
    # Read, never changed: a model with wrappers is stripped into a copy; a
    # KerasHub model is sliced into a new one (`_sliced`), and any other is
    # copied when it is wrapped.
    plain = prune.strip_pruning(model) if wrapper_lib.collect_wrappers(model) else model
    if fractions["kv_heads"]:
        with hub_rules.attention_units("kv_heads"):
            plain = _one_pass(plain, {"kv_heads": fractions["kv_heads"]}, importance,
                              data, batches)
    plain = _one_pass(plain, {"ffn": fractions["ffn"], "heads": fractions["heads"]},
                      importance, data, batches)
    if fractions["hidden"]:
        plain = hidden_lib.prune_hidden(plain, fractions["hidden"], importance, data,
                                        batches)
    return plain


def _without_rule(model):
    """Names of the classes of the layers that `model`'s graphs call (nested
    graph models looked into) that hold weights but are neither Keras's own
    nor covered by a rule: a user's blocks, which the width grouping can't
    see into."""
    found = set()
    for layer in model.layers:
        if walk.is_graph_model(layer):
            found |= set(_without_rule(layer))
        elif (layer.weights and not walk.is_keras_own(layer)
              and rules.rule_for(layer) is None):
            found.add(type(layer).__name__)
    return sorted(found)


def _check_spaces(model, spaces, fractions, dense):
    """Raises unless each fraction > 0 has channels to remove, in whole
    numbers where the group asks for it, leaving at least one per block."""
    name = model.name
    kinds = {_kind(space, dense) for space in spaces}
    for kind, fraction in fractions.items():
        if fraction > 0 and kind not in kinds:
            fixed = sorted({s.width[1].fixed for s in spaces if s.width is not None
                            and s.width[1].name == kind and s.width[1].fixed})
            raise ValueError(
                f"`{kind}={fraction}` was given, but model {name!r} has no "
                f"{_NOUNS[kind]} that prune_width can remove"
                + (f": {'; '.join(fixed)}" if fixed else
                   " (no feed-forward block: a Dense -> Dense pair, or a layer with a "
                   "width rule such as KerasHub's TransformerEncoder)" if kind == "ffn"
                   else " (no MultiHeadAttention, plain or inside a KerasHub block, "
                   "whose heads can be rebuilt)" if kind == "heads"
                   else " (no grouped-query attention block with a rule)")
                + (f". Layers of classes without a rule: {', '.join(missing)}"
                   if (missing := _without_rule(model)) else "")
                + f". Pass {kind}=0, or register a rule for your layer with "
                "kp.register_layer_rule.")
        fixed = [s for s in spaces if s.width is not None and s.width[1].name == kind
                 and s.width[1].fixed]
        if fraction > 0 and fixed and not dense:
            # A KerasHub config says one count for every block.
            raise ValueError(
                f"`{kind}={fraction}` can't be removed from model {name!r}: its config sets "
                f"one count of {_NOUNS[kind]} for every block, but in "
                f"{_label(fixed[0])!r} {fixed[0].width[1].fixed}. Pass {kind}=0.")
    for space in spaces:
        kind = _kind(space, dense)
        if kind not in fractions or not fractions[kind]:
            continue
        fraction, group = fractions[kind], space.width[1] if space.width else None
        removed = space.size * fraction
        if group is not None and group.even and abs(removed - round(removed)) > 1e-6:
            whole = [f"{k / space.size:.4g}" for k in range(1, space.size)]
            raise ValueError(
                f"`{kind}={fraction}` would remove {removed:.3g} of the {space.size} "
                f"{group.even} of {_label(space)!r}; only a whole number can go. Use a "
                f"multiple of 1/{space.size}: {', '.join(whole) or 'none below 1'}.")
        if _kept(space, fraction) < 1:
            raise ValueError(
                f"`{kind}={fraction}` would remove every one of the {space.size} "
                f"{_NOUNS[kind]} of {_label(space)!r}; a block keeps at least one. Use a "
                f"fraction below {1 - 0.5 / space.size:.3g}.")


def _one_pass(plain, fractions, importance, data, batches):
    """`plain` (no wrappers) with `fractions` of its width groups removed,
    ranked by `importance`, shrunk."""
    graph = graph_lib.analyze(plain)
    spaces = graph.spaces
    dense = not hub_models.is_hub_model(plain)
    _check_spaces(plain, spaces, fractions, dense)
    if not any(fractions.values()):
        return plain
    if not dense and (importance in ("activation", "magnitude") or callable(importance)):
        new = _sliced(plain, graph, fractions, importance, data, batches)
        if new is not None:
            return new
    # The channel engine's masks, set once: its groups, scores and probes.
    # Undecorated: `prune_width` itself has said whether the model is frozen.
    pruned = prune.prune_low_magnitude.__wrapped__(plain, schedules.ConstantSparsity(0.0, 0),
                                       structure="channel")
    (group,) = engine.build_groups(wrapper_lib.collect_wrappers(pruned), pruned)
    kinds = [_kind(space, dense) for space in group.spaces]
    starts = np.cumsum([0] + [space.size for space in group.spaces])
    scores = _scores(pruned, group, kinds, importance, data, batches)
    counts = []
    for space, kind, start in zip(group.spaces, kinds, starts):
        fraction = fractions.get(kind, 0.0)
        counts.append(_kept(space, fraction))
        if callable(importance) and fraction > 0:
            mine = scores[start:start + space.size]
            scores[start:start + space.size] = np.asarray(
                importance(_label(space), kind, mine), np.float64)
    group.keep_counts(counts, scores)
    return shrink_lib.shrink(pruned)


def _sliced(model, graph, fractions, importance, data, batches):
    """The KerasHub `model` made again with `fractions` of its blocks' width
    groups removed, without wrapping or copying it first: the scores are
    read from `model` itself (activations streamed at the groups' probes,
    or the mean square of each channel's weights, as the channel engine
    computes them), and each block's kept slices (`shrink`'s own
    `width_slicers`) go straight into the smaller model. Peak memory:
    `model`, the smaller model, and one layer's weights at a time. Gives
    what the channel engine and `shrink` give; None where the model's class
    can't say the new widths."""
    kinds = {s.index: _kind(s, False) for s in graph.width_spaces()}
    spaces = [s for s in graph.width_spaces() if fractions.get(kinds[s.index])]
    groups = [s.width[1] for s in spaces]
    if importance == "activation":
        probes = [importance_lib.Probe.of(g.label, g.probe, g.size) for g in groups]
        means = importance_lib.mean_activations(model, probes, data, batches)
        scores = [np.asarray(means[g.label], np.float64) for g in groups]
    else:
        scores = [_mean_square(g) for g in groups]
        if callable(importance):
            scores = [np.asarray(importance(g.label, kinds[s.index], mine), np.float64)
                      for s, g, mine in zip(spaces, groups, scores)]
    keep = {s.index: np.sort(np.argsort(-score, kind="stable")[
        :_kept(s, fractions[kinds[s.index]])]) for s, score in zip(spaces, scores)}
    changes = {}
    for layer in {id(g.owner): g.owner for g in groups}.values():
        overrides, cut = shrink_lib.width_slicers(layer, graph.width_spaces(layer), keep)
        # Sliced when the new model's layer is filled, one at a time.
        changes[id(layer)] = (overrides, lambda layer=layer, cut=cut: _cut(layer, cut))
    return hub_models.shrunk(model, changes)  # None: its class can't say them


def _cut(layer, cut):
    """`layer`'s weights (in their own dtype) through the slice functions
    `cut` (`{id(variable): function}`)."""
    return [cut.get(id(w), np.asarray)(np.asarray(ops.convert_to_numpy(w)))
            for w in layer.weights]


def _mean_square(group):
    """Each channel's mean square over the weights its members cover."""
    sums, counts = np.zeros(group.size), np.zeros(group.size)
    for m in group.members:
        value = np.asarray(ops.convert_to_numpy(m.variable), np.float64)
        others = tuple(a for a in range(value.ndim) if a != m.axis)
        sums += m.per_channel(np.square(value).sum(axis=others), group.size)
        counts += m.per_channel(np.full(value.shape[m.axis], value.size // value.shape[
            m.axis]), group.size)
    return sums / np.maximum(counts, 1)


def _scores(pruned, group, kinds, importance, data, batches):
    """One score per channel of `group` (higher is kept): the engine's
    magnitude (also what a custom function is given), activations read at
    its probes, or a registered importance's."""
    if importance == "magnitude" or callable(importance):
        return np.asarray(group.magnitude_scores(), np.float64)
    if importance != "activation":
        group.importance = importance_lib.get(importance, data=data, batches=batches)
        return np.asarray(ops.convert_to_numpy(group.channel_scores()), np.float64)
    probes = [probe if kind else None for probe, kind in zip(group.probes, kinds)]
    for probe, kind, space in zip(group.probes, kinds, group.spaces):
        if kind and probe is None:
            raise ValueError(
                f"importance='activation' reads each block's channels where its rule "
                f"says, but the rule of {_label(space)!r} gives no `probe`. Give its "
                "WidthGroup a probe, or use importance='magnitude'.")
    means = importance_lib.mean_activations(pruned, [p for p in probes if p], data, batches)
    return np.concatenate([means[p.label] if p else np.zeros(space.size)
                           for p, space in zip(probes, group.spaces)]).astype(np.float64)
