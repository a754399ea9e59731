"""`prune_depth`: removes whole blocks of a KerasHub language model.

ShortGPT (Men et al., 2024) ranks the blocks of a trained transformer by
their Block Influence, one minus the mean cosine similarity of a block's
input and output hidden states over calibration data, and removes the
blocks that change their input least. Minitron (Muralidharan et al., 2024)
prunes depth the same way before it distills.

The result is the task's or backbone's own class with a smaller
`num_layers`: it computes what the original computes with the removed
blocks skipped (each passes its residual stream on unchanged). That is
checked on a short batch before the model is returned. A backbone whose
blocks differ by their index (Gemma's local and global attention) keeps
each kept block's kind at its new index, or the removal is refused
(`rules.DepthRule`). Recover the accuracy with `keras.distillation`.
"""

import inspect

import numpy as np

import keras

from keras_progprune import hub_models
from keras_progprune import importance as importance_lib
from keras_progprune import rules
from keras_progprune import walk
from keras_progprune.wrapper import collect_wrappers


def removed_count(blocks, depth):
    """How many of `depth` blocks `blocks` (a count, or a fraction in (0,
    1)) removes; a ValueError naming `blocks` unless it is 1 to depth - 1."""
    if isinstance(blocks, bool) or not isinstance(blocks, (int, float)):
        count = None
    elif isinstance(blocks, int) or float(blocks).is_integer() and blocks >= 1:
        count = int(blocks)
    elif 0.0 < blocks < 1.0:
        count = int(round(blocks * depth))
    else:
        count = None
    if count is None or not 1 <= count < depth:
        raise ValueError(
            f"`blocks` is how many of the model's {depth} blocks to remove: a count "
            f"from 1 to {depth - 1}, or a fraction in (0, 1) that rounds to one. "
            f"Received: blocks={blocks!r}"
            + (f", {count} of {depth}." if isinstance(blocks, float) else "."))
    return count


def block_influence(model, data, batches=None):
    """Block Influence (ShortGPT) of every block of a KerasHub model: one
    minus the mean cosine similarity of the block's input and output
    hidden states, over every position of up to `batches` batches of
    `data` (padding included). Streamed: no hidden state is kept.

    Returns:
        A NumPy vector, one score per block (higher: more important).
    """
    backbone = hub_models.backbone_of(model)
    blocks = rules.depth_rule(backbone).blocks(backbone)
    sums = np.zeros(len(blocks))
    counts = np.zeros(len(blocks))

    def recording(i):
        def make(call):
            def recorded(*args, **kwargs):
                out = call(*args, **kwargs)
                y = out[0] if isinstance(out, (tuple, list)) else out
                x = _flat(block_input(call, args, kwargs))
                y = _flat(y)
                norms = np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)
                cosines = (x * y).sum(-1) / np.maximum(norms, 1e-12)
                sums[i] += cosines.sum()
                counts[i] += cosines.size
                return out
            return recorded
        return make

    with importance_lib.replaced_calls([(b, recording(i)) for i, b in enumerate(blocks)]):
        seen = importance_lib.run_batches(backbone, data, batches)
    if seen == 0:
        raise ValueError("`data` gave no batch: block influence needs at least one "
                         "calibration batch.")
    return 1.0 - sums / np.maximum(counts, 1)


def block_input(call, args, kwargs):
    """The hidden states a block was called with: its first argument,
    given by position or (Falcon's `inputs=`) by name."""
    if args:
        return args[0]
    first = next(iter(inspect.signature(call).parameters))
    return kwargs[first]


def _flat(hidden):
    array = np.asarray(keras.ops.convert_to_numpy(hidden), np.float64)
    return array.reshape(-1, array.shape[-1])


@walk.keeps_frozen("prune_depth")
def prune_depth(model, blocks, data=None, importance="block_influence", batches=None):
    """Removes whole blocks of a KerasHub task or backbone.

    Args:
        model: a KerasHub task (`Llama3CausalLM`, ...) or backbone, not
            wrapped (strip it first). It is not changed.
        blocks: how many blocks to remove: a count, or a fraction of the
            model's blocks (rounded), leaving at least one.
        data: calibration batches for Block Influence: a `tf.data.Dataset`
            or an iterable of backbone inputs (`{"token_ids": ...,
            "padding_mask": ...}`) or of `(inputs, y)` pairs.
        importance: `"block_influence"` (ShortGPT: the blocks that change
            their input least go first), or a callable `(model, data)`
            returning one score per block (the lowest go first).
        batches: how many batches of `data` to read (None: all).

    Returns:
        A new model of `model`'s class with `num_layers` reduced: the
        kept blocks' weights, and every other layer's, copied unchanged.

    Raises:
        ValueError: for a model that isn't a KerasHub task or backbone with
            `transformer_layers`, a wrapped one, a bad `blocks`, `batches`
            or `importance`, no `data` for Block Influence, a removal that
            would change what a kept block computes, or a result that
            doesn't compute what the model computes without those blocks.

    Examples:
        >>> import keras_hub, keras_progprune as kp
        >>> backbone = keras_hub.models.Llama3Backbone(
        ...     vocabulary_size=32, num_layers=4, num_query_heads=2,
        ...     num_key_value_heads=1, hidden_dim=8, intermediate_dim=16)
        >>> shallow = kp.prune_depth(backbone, 2, importance=lambda m, d: [3, 1, 2, 4])
        >>> shallow.num_layers, type(shallow).__name__
        (2, 'Llama3Backbone')
    """
    rule = _check_model(model)
    backbone = hub_models.backbone_of(model)
    old_blocks = rule.blocks(backbone)
    depth = len(old_blocks)
    count = removed_count(blocks, depth)
    scores = _scores(model, importance, data, batches, depth)
    removed = sorted(int(i) for i in np.argsort(scores, kind="stable")[:count])
    kept = [i for i in range(depth) if i not in removed]
    rule.check(backbone, kept)

    def renames(new):
        new_blocks = rule.blocks(hub_models.backbone_of(new))
        names = {old_blocks[i].name: None for i in removed}
        names.update({old_blocks[i].name: new_blocks[k].name for k, i in enumerate(kept)})
        return names

    new, _ = hub_models.copied(model, backbone_config=rule.config(backbone, kept),
                               renames=renames)
    _check_exact(backbone, hub_models.backbone_of(new), [old_blocks[i] for i in removed],
                 data)
    return new


def _check_model(model):
    backbone = hub_models.backbone_of(model) if hub_models.is_hub_model(model) else None
    rule = rules.depth_rule(backbone) if backbone is not None else None
    if rule is None:
        raise ValueError(
            "`prune_depth` removes blocks of a KerasHub task or backbone whose blocks "
            "are its `transformer_layers` (Llama, Gemma, Qwen, Mistral, Phi-3, GPT-2, "
            f"...). Received: model of class {type(model).__name__}. For a KerasHub "
            "task, pass the task or its `backbone`.")
    wrapped = collect_wrappers(model)
    if wrapped:
        raise ValueError(
            f"`prune_depth` takes a model without pruning wrappers; {model.name!r} holds "
            f"{len(wrapped)} (e.g. {wrapped[0].name!r}). Call "
            "`kp.strip_pruning(model)` first.")
    return rule


def _scores(model, importance, data, batches, depth):
    if callable(importance):
        scores = np.asarray(importance(model, data), np.float64)
        if scores.shape != (depth,):
            raise ValueError(
                f"`importance` must return one score per block ({depth}). Received "
                f"scores of shape {scores.shape}.")
        return scores
    if importance != "block_influence":
        raise ValueError(
            "`importance` must be 'block_influence' or a callable (model, data) -> one "
            f"score per block. Received: importance={importance!r}.")
    importance_lib.check_batches(batches)
    if data is None:
        raise ValueError(
            "importance='block_influence' compares each block's input and output over "
            "calibration batches: pass `data` (a tf.data.Dataset or a list of token "
            "batches), or an `importance` callable. Received: data=None.")
    return block_influence(model, data, batches)


def _check_exact(backbone, new_backbone, removed, data):
    """Raises unless `new_backbone` computes what `backbone` computes with
    the `removed` blocks passing their input on, on one short batch."""
    batch = _probe_batch(backbone, data)
    with importance_lib.replaced_calls(
            [(b, lambda call: lambda *args, **kwargs: block_input(call, args, kwargs))
             for b in removed]):
        want = keras.tree.flatten(backbone(batch, training=False))
    got = keras.tree.flatten(new_backbone(batch, training=False))
    for a, b in zip(want, got):
        a = np.asarray(keras.ops.convert_to_numpy(a), np.float64)
        b = np.asarray(keras.ops.convert_to_numpy(b), np.float64)
        gap = float(np.abs(a - b).max())
        if gap > 1e-5 * max(1.0, float(np.abs(a).max())):
            raise ValueError(
                f"The {type(backbone).__name__} without blocks "
                f"{[b.name for b in removed]} doesn't compute what the original "
                f"computes with those blocks skipped (largest difference {gap:.3g}): "
                "its blocks depend on their index in a way `prune_depth` doesn't know "
                "(`rules.DepthRule`). Your model is unchanged.")


def _probe_batch(backbone, data):
    """One short batch for `_check_exact`: the first of `data`, or token
    ids, a full padding mask and positions made up for the inputs a
    KerasHub decoder takes."""
    if data is not None:
        for batch in data:
            return keras.tree.map_structure(np.asarray, importance_lib.inputs_of(batch))
    length = 8
    made = {"token_ids": (np.arange(length, dtype="int32") % 7 + 1)[None],
            "padding_mask": np.ones((1, length), "int32"),
            "position_ids": np.arange(length, dtype="int32")[None]}
    names = list(backbone.input) if isinstance(backbone.input, dict) else [None]
    missing = sorted(str(name) for name in set(names) - set(made))
    if missing:
        raise ValueError(
            f"{type(backbone).__name__} takes inputs {missing}, which `prune_depth` "
            "can't make up to check its result: pass `data` (batches of the backbone's "
            "inputs).")
    return {name: made[name] for name in names}
