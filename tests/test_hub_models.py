"""KerasHub tasks and backbones keep their class, their generate() and their
shared weights through pruning (tiny random-init configs, no downloads)."""

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import rules
from keras_progprune import hub_models
from keras_progprune import walk
from keras_progprune import wrapper as wrapper_lib
from conftest import assert_close
from conftest import to_numpy

pytest.importorskip("keras_hub")

from hub_families import FAMILIES  # noqa: E402
from hub_families import causal_lm  # noqa: E402
from hub_families import token_batch  # noqa: E402

SCHEDULE = kp.ConstantSparsity(0.5, 0, frequency=1)
# Every family once, on TensorFlow; three kinds on every backend: GQA with an
# untied output head (Llama 3), a tied embedding (Gemma), and a token
# embedding inside an embedding layer that the task reads again (OPT).
FAST = ("Llama3", "Gemma", "OPT")
# Llama, Qwen 2.5 and Phi-3 derive their head size; Mistral's config says it.
DERIVED = {"Llama": "Llama", "Llama3": "Llama3", "Qwen": "Qwen", "Qwen2": "Qwen",
           "Phi3": "Phi3"}


def _params(fast=FAST):
    return [f if f in fast else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES]


def _fit(model, x, epochs=1):
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, x["token_ids"], epochs=epochs, verbose=0,
              callbacks=[kp.ProgressivePruningCallback()])


@pytest.mark.parametrize("family", _params())
@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_a_causal_lm_stays_its_class_through_prune_fit_and_strip(family, structure):
    task = causal_lm(family)
    x = token_batch(task)
    before = to_numpy(task.predict(x, verbose=0))
    weights = [v.numpy() for v in task.weights]

    pruned = kp.prune_low_magnitude(task, SCHEDULE, structure=structure)
    assert type(pruned) is type(task) and type(pruned.backbone) is type(task.backbone)
    assert pruned.preprocessor is task.preprocessor
    # An identity until the first mask update.
    np.testing.assert_array_equal(to_numpy(pruned.predict(x, verbose=0)), before)
    _fit(pruned, x)
    wrappers = wrapper_lib.collect_wrappers(pruned)
    masked = [v for w in wrappers for v in w.pruned_weights]
    # The attention kernels are masked (KerasHub names the query "query",
    # or "q_proj" in SmolLM3).
    assert any(k in v.path for v in masked for k in ("query", "q_proj")), [
        v.path for v in masked]
    kept = sum(int(np.count_nonzero(m.numpy())) for w in wrappers for m in w.masks)
    assert kept / sum(int(np.prod(v.shape)) for v in masked) == pytest.approx(0.5, abs=0.02)

    plain = kp.strip_pruning(pruned)
    assert type(plain) is type(task) and type(plain.backbone) is type(task.backbone)
    assert not wrapper_lib.collect_wrappers(plain)
    assert plain.count_params() == task.count_params()
    assert_close(plain.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)
    # The user's model is untouched.
    for v, w in zip(task.weights, weights):
        np.testing.assert_array_equal(v.numpy(), w)


@pytest.mark.parametrize("family", ["Llama3", "Gemma"])
def test_generate_runs_on_the_wrapped_and_the_stripped_task(family):
    task = causal_lm(family)
    prompt = {"token_ids": token_batch(task)["token_ids"],
              "padding_mask": np.array([[1] * 3 + [0] * 5] * 2, "int32")}
    pruned = kp.prune_low_magnitude(task, SCHEDULE)
    _fit(pruned, token_batch(task))
    plain = kp.strip_pruning(pruned)
    for model in (pruned, plain):
        model.compile(sampler="greedy")
    wrapped_out = pruned.generate(prompt, stop_token_ids=None)
    plain_out = plain.generate(prompt, stop_token_ids=None)
    assert to_numpy(plain_out["token_ids"]).shape == (2, 8)
    np.testing.assert_array_equal(to_numpy(wrapped_out["token_ids"]),
                                  to_numpy(plain_out["token_ids"]))


def test_a_tied_embedding_stays_one_layer_with_one_mask():
    task = causal_lm("Gemma")  # ties its output head to the token table
    pruned = kp.prune_low_magnitude(task, SCHEDULE)
    embedding = pruned.backbone.token_embedding
    assert isinstance(embedding, kp.PruningWrapper)
    # The task's own graph calls the same wrapper, reversed, for the logits.
    assert any(layer is embedding for layer in pruned.layers)
    assert [w.name for w in embedding.masks] == ["pruning_mask_0"]
    assert sum(isinstance(w.layer, keras.layers.ReversibleEmbedding)
               for w in wrapper_lib.collect_wrappers(pruned)) == 1
    # The one mask acts on the inputs and the logits alike: the stripped
    # model, with the mask baked into its one table, computes the same.
    x = token_batch(task)
    keep = np.random.default_rng(0).random(embedding.masks[0].shape) < 0.5
    embedding.masks[0].assign(keep.astype("float32"))
    logits = to_numpy(pruned.predict(x, verbose=0))
    assert np.abs(logits - to_numpy(task.predict(x, verbose=0))).max() > 1e-3
    plain = kp.strip_pruning(pruned)
    assert plain.count_params() == task.count_params()
    assert_close(plain.predict(x, verbose=0), logits, atol=1e-5)


def test_n_by_m_groups_run_along_each_kernel_input_axis():
    task = causal_lm("Llama3")
    pruned = kp.prune_low_magnitude(task, SCHEDULE, structure="2:4")
    _fit(pruned, token_batch(task))
    block = pruned.backbone.transformer_layers[0]
    axes = {v.path.split("/")[-2]: a for v, a in zip(block.pruned_weights, block.input_axes)}
    # q/k/v kernels [hidden, heads, head_dim] reduce over hidden (axis 0);
    # the output kernel [heads, head_dim, hidden] over head_dim (axis 1).
    assert axes["query"] == 0 and axes["key"] == 0 and axes["attention_output"] == 1
    for v, mask, axis in zip(block.pruned_weights, block.masks, block.input_axes):
        groups = np.moveaxis(to_numpy(mask), axis, -1).reshape(-1, 4)
        assert (groups.sum(-1) == 2).all(), v.path
    head = pruned.backbone.token_embedding  # untied: table and output head
    assert [v.name for v in head.pruned_weights] == ["embeddings", "reverse_embeddings"]
    assert head.input_axes == [1, 0]


def test_a_backbone_alone_stays_its_class():
    backbone = causal_lm("Qwen3").backbone
    x = token_batch(backbone)
    pruned = kp.prune_low_magnitude(backbone, SCHEDULE)
    assert type(pruned) is type(backbone)
    assert pruned.get_config() == backbone.get_config()
    assert_close(pruned.predict(x, verbose=0), backbone.predict(x, verbose=0), atol=0)
    plain = kp.strip_pruning(pruned)
    assert type(plain) is type(backbone)


def test_exclude_leaves_a_layer_of_the_task_dense():
    task = causal_lm("Llama3")
    pruned = kp.prune_low_magnitude(task, exclude=["token_embedding"])
    assert not isinstance(pruned.backbone.token_embedding, kp.PruningWrapper)
    names = {w.layer.name for w in wrapper_lib.collect_wrappers(pruned)}
    assert names == {"transformer_layer_0", "transformer_layer_1"}


def test_a_layer_renamed_after_construction_is_refused_with_the_fix():
    task = causal_lm("Llama3")
    task.backbone.transformer_layers[0].name = "renamed"
    with pytest.raises(ValueError, match=r"Layer 'renamed' of Llama3CausalLM "
                                         r".*has no layer of that name in a "
                                         r"Llama3CausalLM made from its config.*"
                                         r"prune a model made by its constructor"):
        kp.prune_low_magnitude(task)


def test_a_weight_that_no_pair_reaches_is_refused(monkeypatch):
    task = causal_lm("Llama3")
    found = hub_models.pairs
    monkeypatch.setattr(hub_models, "pairs", lambda model, new, renames=None: found(
        model, new, renames)[1:])
    with pytest.raises(ValueError, match=r"left weights that no layer of its graphs "
                                         r"holds: \[.*\]\. Only layers that its task"):
        kp.prune_low_magnitude(task)


def test_a_weight_count_mismatch_is_refused(monkeypatch):
    task = causal_lm("Llama3")
    monkeypatch.setattr(hub_models, "plain_weights", lambda layer, weights_of: [])
    with pytest.raises(ValueError, match=r"Layer '.*' holds \d+ weights, but its "
                                         r"original holds 0\."):
        kp.prune_low_magnitude(task)


def test_is_hub_model_tells_tasks_and_backbones_from_plain_models():
    task = causal_lm("Gemma")
    assert hub_models.is_hub_model(task) and hub_models.is_task(task)
    assert hub_models.is_hub_model(task.backbone) and not hub_models.is_task(task.backbone)
    plain = keras.Model(task.backbone.input, task.backbone.output)
    assert not hub_models.is_hub_model(plain)


def test_replace_everywhere_moves_every_call_and_attribute():
    task = causal_lm("Gemma")
    old = task.backbone.token_embedding
    new = kp.PruningWrapper(old, SCHEDULE)
    new.build(None)
    walk.replace_everywhere(task, old, new)
    assert task.backbone.token_embedding is new
    assert not any(layer is old for layer in task.layers + task.backbone.layers)
    assert sum(layer is new for layer in task.layers + task.backbone.layers) == 2
    assert any(layer is new for layer in walk.sublayers(task))
    x = token_batch(task)
    assert to_numpy(task.predict(x, verbose=0)).shape == (2, 8, 64)


# -- width: gated feed-forward neurons, the class kept --------------------
GATED = ("Gemma", "Gemma3", "Gemma4", "Llama", "Llama3", "Mistral", "Qwen", "Qwen2", "Qwen3",
         "Phi3", "SmolLM3")


@pytest.mark.parametrize("family", [f if f in ("Llama3", "Gemma") else
                                    pytest.param(f, marks=pytest.mark.slow) for f in GATED])
def test_progressive_channel_pruning_shrinks_gated_neurons_into_the_same_class(family):
    task = causal_lm(family)
    x = token_batch(task)
    pruned = kp.prune_low_magnitude(task, SCHEDULE, structure="channel")
    _fit(pruned, x)
    small = kp.shrink(pruned)
    # Half the query heads go too: a family that derives its head size comes
    # back as its HeadSized subclass.
    assert (type(small) is type(task) if family not in DERIVED else
            type(small).__name__ == f"HeadSized{DERIVED[family]}CausalLM")
    assert isinstance(small, type(task)) and small.preprocessor is task.preprocessor
    # Half of each block's neurons; Gemma's intermediate_dim counts both branches.
    assert small.backbone.get_config()["intermediate_dim"] == 16
    assert small.count_params() < task.count_params()
    masked = to_numpy(kp.strip_pruning(pruned).predict(x, verbose=0))
    assert_close(small.predict(x, verbose=0), masked, atol=1e-5 * np.abs(masked).max())


def test_neurons_alone_keep_a_family_that_derives_its_head_size_its_own_class(monkeypatch):
    # Both routes: the direct slices and the channel engine's shrink. Heads
    # all kept say nothing, so no HeadSized subclass is needed.
    from keras_progprune import width  # noqa: PLC0415

    task = causal_lm("Llama3")
    x = token_batch(task)
    assert type(kp.prune_width(task, ffn=0.5, data=[x])) is type(task)
    monkeypatch.setattr(width, "_sliced", lambda *args: None)
    assert type(kp.prune_width(task, ffn=0.5, data=[x])) is type(task)


def test_prune_width_keeps_the_most_active_gated_neurons_and_the_class(tmp_path):
    task = causal_lm("Llama3")
    x = token_batch(task)
    block = task.backbone.transformer_layers[1]
    down = block._feedforward_output_dense  # noqa: SLF001
    seen = []

    def recording(call):
        def recorded(inputs, *args, **kwargs):
            seen.append(np.abs(to_numpy(inputs)).reshape(-1, inputs.shape[-1]))
            return call(inputs, *args, **kwargs)
        return recorded

    with kp.importance.replaced_calls([(down, recording)]):
        task(x, training=False)
    kept = np.sort(np.argsort(-np.concatenate(seen).mean(0), kind="stable")[:16])
    small = kp.prune_width(task, ffn=0.5, data=[x])
    assert type(small) is type(task)
    gate = small.backbone.transformer_layers[1]._feedforward_gate_dense  # noqa: SLF001
    np.testing.assert_array_equal(
        to_numpy(gate.kernel), to_numpy(block._feedforward_gate_dense.kernel)[:, kept])  # noqa: SLF001
    small.compile(sampler="greedy")
    prompt = {"token_ids": x["token_ids"], "padding_mask": np.array([[1] * 3 + [0] * 5] * 2)}
    assert to_numpy(small.generate(prompt, stop_token_ids=None)["token_ids"]).shape == (2, 8)
    small.backbone.save_to_preset(str(tmp_path / "preset"))
    again = pytest.importorskip("keras_hub").models.Backbone.from_preset(
        str(tmp_path / "preset"))
    assert type(again) is type(task.backbone)
    assert again.get_config()["intermediate_dim"] == 16
    assert_close(again(x), small.backbone(x), atol=1e-6)


def test_blocks_of_different_widths_are_refused_by_a_backbone_with_one_width():
    task = causal_lm("Llama3")
    blocks = task.backbone.transformer_layers
    changes = {id(blocks[0]): ({"intermediate_dim": 16}, None),
               id(blocks[1]): ({"intermediate_dim": 8}, None)}
    with pytest.raises(ValueError, match=r"Llama3Backbone holds one `intermediate_dim` for "
                                         r"all its blocks, but the pruned blocks keep "
                                         r"different ones \(\{'transformer_layer_0': 16, "
                                         r"'transformer_layer_1': 8\}\)\. Prune with "
                                         r"scope='layer'"):
        hub_models.shrunk(task, changes)


def test_heads_that_the_config_cannot_say_give_a_plain_model_with_a_warning():
    task = causal_lm("GPT2")  # its blocks derive the head size from num_heads
    x = token_batch(task)
    pruned = kp.prune_low_magnitude(task, SCHEDULE, structure="channel")
    _fit(pruned, x)
    with pytest.warns(UserWarning, match=r"GPT2CausalLM's config can't say the new shape "
                                          r"\(fewer heads of the same size\), so `shrink` "
                                          r"returns a plain keras.Model of its graph"):
        small = kp.shrink(pruned)
    assert type(small) is keras.Model or type(small).__name__ == "Functional"
    masked = to_numpy(kp.strip_pruning(pruned).predict(x, verbose=0))
    assert_close(small.predict(x, verbose=0), masked, atol=1e-5 * np.abs(masked).max())


# -- width: query heads inside key/value groups ---------------------------
@pytest.mark.parametrize("family", ["Gemma", pytest.param("Qwen3", marks=pytest.mark.slow),
                                    pytest.param("Gemma3", marks=pytest.mark.slow),
                                    pytest.param("Gemma4", marks=pytest.mark.slow)])
def test_query_heads_go_evenly_from_every_key_value_group(family):
    task = causal_lm(family, num_query_heads=8, num_key_value_heads=2)
    x = token_batch(task)
    small = kp.prune_width(task, ffn=0.5, heads=0.5, data=[x])
    config = small.backbone.get_config()
    assert type(small) is type(task)
    assert (config["num_query_heads"], config["num_key_value_heads"]) == (4, 2)
    # Slot j is the j-th query head of each group (4 per group): the kept
    # heads are the same slots in both groups, in order.
    attention = "attention" if family.startswith("Gemma") else "_self_attention_layer"
    query = "query_dense" if family.startswith("Gemma") else "_query_dense"
    axis = 0 if family.startswith("Gemma") else 1

    def kernel(model):
        block = model.backbone.transformer_layers[0]
        return to_numpy(getattr(getattr(block, attention), query).kernel)

    before, after = kernel(task), kernel(small)
    heads = [h for h in range(8) if any(
        np.array_equal(np.take(after, [k], axis), np.take(before, [h], axis)) for k in range(4))]
    assert len(heads) == 4 and sorted(h % 4 for h in heads[:2]) == sorted(h % 4 for h in heads[2:])
    assert [h // 4 for h in heads] == [0, 0, 1, 1]
    # Progressive: channel masks over slots, then shrink, exact.
    pruned = kp.prune_low_magnitude(task, SCHEDULE, structure="channel")
    _fit(pruned, x)
    shrunk = kp.shrink(pruned)
    assert shrunk.backbone.get_config()["num_query_heads"] == 4
    masked = to_numpy(kp.strip_pruning(pruned).predict(x, verbose=0))
    assert_close(shrunk.predict(x, verbose=0), masked, atol=1e-5 * np.abs(masked).max())


def test_gemma4_heads_with_fewer_global_groups_and_shared_key_values():
    # Global blocks with one key/value group (not two), the last two blocks
    # reading an earlier block's keys and values: query heads still go
    # evenly, exactly; whole groups can't (the config has one count).
    task = causal_lm("Gemma4", num_layers=6, num_query_heads=8, num_global_key_value_heads=1,
                     num_kv_shared_layers=2)
    x = token_batch(task)
    pruned = kp.prune_low_magnitude(task, SCHEDULE, structure="channel")
    _fit(pruned, x)
    small = kp.shrink(pruned)
    assert type(small) is type(task) and small.backbone.num_query_heads == 4
    masked = to_numpy(kp.strip_pruning(pruned).predict(x, verbose=0))
    assert_close(small.predict(x, verbose=0), masked, atol=1e-5 * np.abs(masked).max())
    assert kp.prune_width(task, heads=0.5, data=[x]).backbone.num_query_heads == 4
    with pytest.raises(ValueError, match=r"`kv_heads=0\.5` can't be removed from model "
                                         r"'gemma4_causal_lm.*': its config sets one count of "
                                         r"key/value groups \(with their query heads\) for "
                                         r"every block, but in 'decoder_block_4/kv_heads' its "
                                         r"key/value projections are shared \(with another "
                                         r"block, or keys with values\)\. Pass kv_heads=0\."):
        kp.prune_width(task, kv_heads=0.5, data=[x])


def _masked_and_shrunk(task, x, units):
    """Progressive channel pruning of `task` with attention `units`, then
    shrink: `(the shrunk model, the masked model's logits)`."""
    with kp.attention_units(units):
        pruned = kp.prune_low_magnitude(task, SCHEDULE, structure="channel")
        _fit(pruned, x)
        small = kp.shrink(pruned)
    return small, to_numpy(kp.strip_pruning(pruned).predict(x, verbose=0))




@pytest.mark.parametrize("family", ["Llama3", *[pytest.param(f, marks=pytest.mark.slow)
                                                for f in ("Llama", "Qwen2", "Phi3",
                                                          "Mistral")]])
def test_heads_of_a_family_that_derives_its_head_size_keep_their_size(family, tmp_path):
    task = causal_lm(family, num_query_heads=8, num_key_value_heads=2)
    x = token_batch(task)
    small, masked = _masked_and_shrunk(task, x, "heads")
    config = small.backbone.get_config()
    assert (config["num_query_heads"], config["num_key_value_heads"], config["head_dim"]) == (
        4, 2, 2)
    if family in DERIVED:  # the smallest subclass that says head_dim
        assert type(small).__name__ == f"HeadSized{DERIVED[family]}CausalLM"
        assert isinstance(small, type(task))
    else:
        assert type(small) is type(task)
    assert_close(small.predict(x, verbose=0), masked, atol=1e-5 * np.abs(masked).max())
    prompt = {"token_ids": x["token_ids"], "padding_mask": np.array([[1] * 3 + [0] * 5] * 2)}
    small.compile(sampler="greedy")
    assert to_numpy(small.generate(prompt, stop_token_ids=None)["token_ids"]).shape == (2, 8)
    path = str(tmp_path / "small.keras")
    small.save(path)
    again = kp.load_model(path)
    assert type(again) is type(small) and again.backbone.head_dim == 2
    assert_close(again.predict(x, verbose=0), small.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("family", ["Gemma", "Llama3",
                                    *[pytest.param(f, marks=pytest.mark.slow)
                                      for f in ("Qwen3", "Qwen2", "Phi3", "Mistral",
                                                "Gemma4")]])
def test_kv_heads_remove_whole_key_value_groups_with_their_query_heads(family):
    task = causal_lm(family, num_query_heads=8, num_key_value_heads=4)
    x = token_batch(task)
    small = kp.prune_width(task, kv_heads=0.5, data=[x])
    config = small.backbone.get_config()
    assert (config["num_query_heads"], config["num_key_value_heads"]) == (4, 2)
    assert isinstance(small, type(task))
    # Group g owns query heads 2g and 2g+1: the kept query heads come in
    # whole groups, matching the kept key heads.
    rule = rules.rule_for(task.backbone.transformer_layers[0])
    axis = rule.heads_axis

    def kernels(model, part):
        return to_numpy(rule.parts(model.backbone.transformer_layers[0])[part].kernel)

    def found(before, after, count):
        return [h for h in range(count) if any(np.array_equal(
            np.take(after, [k], axis), np.take(before, [h], axis))
            for k in range(after.shape[axis]))]

    keys = found(kernels(task, "key"), kernels(small, "key"), 4)
    queries = found(kernels(task, "query"), kernels(small, "query"), 8)
    assert len(keys) == 2 and queries == [q for g in keys for q in (2 * g, 2 * g + 1)]
    shrunk, masked = _masked_and_shrunk(task, x, "kv_heads")
    assert shrunk.backbone.get_config()["num_key_value_heads"] == 2
    assert_close(shrunk.predict(x, verbose=0), masked, atol=1e-5 * np.abs(masked).max())


def test_kv_heads_and_heads_together_and_the_units_switch():
    task = causal_lm("Gemma", num_query_heads=8, num_key_value_heads=4)
    x = token_batch(task)
    small = kp.prune_width(task, ffn=0.5, heads=0.5, kv_heads=0.5, data=[x])
    config = small.backbone.get_config()
    assert (config["num_query_heads"], config["num_key_value_heads"],
            config["intermediate_dim"]) == (2, 2, 16)
    groups = rules.width_groups(task.backbone.transformer_layers[0])
    assert [(g.name, bool(g.fixed)) for g in groups] == [
        ("ffn", False), ("heads", False), ("kv_heads", True)]
    assert "kp.prune_width(kv_heads=...)" in groups[2].fixed
    with kp.attention_units("kv_heads"):
        groups = rules.width_groups(task.backbone.transformer_layers[0])
        assert [bool(g.fixed) for g in groups] == [False, True, False]
    with pytest.raises(ValueError, match=r"`units` must be one of \['heads', 'kv_heads'\]\. "
                                         r"Received: units='groups'"):
        with kp.attention_units("groups"):
            pass


@pytest.mark.parametrize("kwargs, message", [
    (dict(heads=0.3), r"`heads=0\.3` would remove 1\.2 of the 4 query heads of each "
                      r"key/value group of 'decoder_block_0/heads'; only a whole number can "
                      r"go\. Use a multiple of 1/4: 0\.25, 0\.5, 0\.75"),
    (dict(kv_heads=0.4), r"`kv_heads=0\.4` would remove 0\.8 of the 2 key/value groups "
                         r"of 'decoder_block_0/kv_heads'.*Use a multiple of 1/2: 0\.5"),
    (dict(heads=1.0), r"`heads` is the fraction of each block's attention heads to remove "
                      r"and must be in \[0, 1\)\. Received: heads=1\.0"),
    (dict(kv_heads=1), r"`kv_heads` is the fraction of each block's key/value groups"),
])
def test_fractions_that_do_not_split_evenly_are_refused(kwargs, message):
    task = causal_lm("Gemma", num_query_heads=8, num_key_value_heads=2)
    before = [to_numpy(w) for w in task.weights]
    with pytest.raises(ValueError, match=message):
        kp.prune_width(task, importance="magnitude", **kwargs)
    # Nothing is half-pruned: the user's model is as it was.
    for w, value in zip(task.weights, before):
        np.testing.assert_array_equal(to_numpy(w), value)


# -- hidden (embedding) channels --------------------------------------------
@pytest.mark.parametrize("family", ["Llama3", "Gemma",
                                    *[pytest.param(f, marks=pytest.mark.slow)
                                      for f in ("Qwen3", "Mistral", "Phi3", "Qwen2")]])
def test_hidden_channels_go_from_the_embedding_norms_blocks_and_head(family):
    task = causal_lm(family)
    x = token_batch(task)
    small = kp.prune_width(task, hidden=0.25, data=[x])
    assert isinstance(small, type(task)) and small.backbone.hidden_dim == 12
    # Ranked by the summed normalization outputs, as Minitron does.
    from keras_progprune import hidden as hidden_lib  # noqa: PLC0415

    scores = hidden_lib.hidden_scores(task, "activation", [x], None)
    kept = np.sort(np.argsort(-scores, kind="stable")[:12])
    table = to_numpy(task.backbone.token_embedding.embeddings)
    np.testing.assert_array_equal(to_numpy(small.backbone.token_embedding.embeddings),
                                  table[:, kept])
    # Every weight keeps its other sizes (the heads keep their size).
    old_block, new_block = (m.backbone.transformer_layers[0] for m in (task, small))
    for old, new in zip(old_block.weights, new_block.weights):
        assert [n for o, n in zip(old.shape, new.shape) if o != n] in ([], [12], [12, 12])
    # A tied head stays tied: one table.
    assert small.count_params() < task.count_params()
    logits = to_numpy(small.predict(x, verbose=0))
    assert logits.shape == (2, 8, 64) and np.isfinite(logits).all()


def test_hidden_is_refused_where_it_cannot_be_rebuilt():
    with pytest.raises(ValueError, match=r"`hidden=0\.25` removes channels of a residual "
                                         r"stream, which prune_width rebuilds only in a "
                                         r"KerasHub decoder.*Received: model 'plain' of type "
                                         r"Functional\. Pass hidden=0"):
        inputs = keras.Input((4,))
        kp.prune_width(keras.Model(inputs, keras.layers.Dense(2)(inputs), name="plain"),
                       hidden=0.25, importance="magnitude")
    with pytest.raises(ValueError, match=r"GPT2Backbone can't keep its other sizes with a "
                                         r"smaller `hidden_dim`: .* would go from"):
        kp.prune_width(causal_lm("GPT2"), hidden=0.25, importance="magnitude")
    with pytest.raises(ValueError, match=r"Hidden channels are ranked by "
                                         r"importance='activation'.*Received: "
                                         r"importance='snip' with hidden=0\.5"):
        kp.prune_width(causal_lm("Gemma"), hidden=0.5, importance="snip", data=[{}])


# -- the other tasks, and fit_shrinking -------------------------------------
def test_fit_shrinking_keeps_a_causal_lm_its_class_and_generate():
    task = causal_lm("Llama3", num_query_heads=4, num_key_value_heads=2)
    x = token_batch(task, batch=4)
    pruned = kp.prune_low_magnitude(task, kp.PolynomialDecay(0.0, 0.5, 0, 2, frequency=1),
                                    structure="channel")
    pruned.compile(optimizer="adam",
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    result = kp.fit_shrinking(pruned, x, x["token_ids"], epochs=3, verbose=0)
    small = kp.strip_pruning(result.model)
    assert isinstance(small, type(task)) and small.backbone.intermediate_dim == 16
    assert small.backbone.num_query_heads == 2  # one query head left in each group
    masked = to_numpy(small.predict(x, verbose=0))
    assert np.isfinite(masked).all()
    prompt = {"token_ids": x["token_ids"], "padding_mask": np.array([[1] * 3 + [0] * 5] * 4)}
    assert to_numpy(small.generate(prompt, stop_token_ids=None)["token_ids"]).shape == (4, 8)


def test_text_and_image_classifiers_keep_their_class():
    keras_hub = pytest.importorskip("keras_hub")
    models = keras_hub.models
    text = models.BertTextClassifier(
        backbone=models.BertBackbone(vocabulary_size=64, num_layers=2, num_heads=2,
                                     hidden_dim=16, intermediate_dim=32,
                                     max_sequence_length=16),
        num_classes=3, preprocessor=None)
    image = models.ResNetImageClassifier(
        backbone=models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[3],
            stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
            stackwise_num_strides=[1, 2], block_type="basic_block",
            use_pre_activation=False),
        num_classes=3, preprocessor=None)
    for task in (text, image):
        pruned = kp.prune_low_magnitude(task, SCHEDULE)
        assert type(pruned) is type(task) and type(kp.strip_pruning(pruned)) is type(task)
        assert kp.strip_pruning(pruned).count_params() == task.count_params()
    small = kp.prune_width(text, ffn=0.5, importance="magnitude")
    assert type(small) is type(text) and small.backbone.intermediate_dim == 16


@pytest.mark.parametrize("importance", ["activation", "magnitude"])
@pytest.mark.parametrize("family", ["Llama3", "Gemma"])
def test_prune_width_slices_a_kerashub_model_as_the_channel_engine_would(
        family, importance, monkeypatch):
    # The direct route (no wrapped copy, for memory) keeps the same channels
    # as the channel engine and `shrink`.
    from keras_progprune import width  # noqa: PLC0415

    task = causal_lm(family, num_query_heads=8, num_key_value_heads=4)
    x = token_batch(task)
    kwargs = dict(ffn=0.5, heads=0.5, kv_heads=0.5, data=[x], importance=importance)
    direct = kp.prune_width(task, **kwargs)
    monkeypatch.setattr(width, "_sliced", lambda *args: None)
    engine = kp.prune_width(task, **kwargs)
    assert type(direct) is type(engine)
    for a, b in zip(direct.weights, engine.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_a_block_left_whole_beside_a_smaller_one_is_refused_not_cut():
    task = causal_lm("Llama3")
    blocks = task.backbone.transformer_layers
    changes = {id(blocks[0]): ({"intermediate_dim": 32}, None),  # unchanged
               id(blocks[1]): ({"intermediate_dim": 16}, None)}
    with pytest.raises(ValueError, match=r"holds one `intermediate_dim` for all its blocks, "
                                         r"but the pruned blocks keep different ones"):
        hub_models.shrunk(task, changes)
