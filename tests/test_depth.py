"""`prune_depth`: whole blocks out of KerasHub language models (tiny
random-init configs, no downloads)."""

import numpy as np
import pytest

import keras
import keras_progprune as kp
from keras_progprune import depth as depth_lib
from keras_progprune import importance as importance_lib
from keras_progprune.rules import keras_hub as hub_rules
from conftest import assert_close
from conftest import to_numpy

keras_hub = pytest.importorskip("keras_hub")

from hub_families import FAMILIES  # noqa: E402
from hub_families import causal_lm  # noqa: E402
from hub_families import token_batch  # noqa: E402


def _skipping(model, removed):
    """`model`'s outputs with blocks `removed` passing their input on."""
    blocks = model.backbone.transformer_layers
    return importance_lib.replaced_calls(
        [(blocks[i], lambda call: lambda *a, **k: depth_lib.block_input(call, a, k))
         for i in removed])


@pytest.mark.parametrize("family", [f if f in ("Llama3", "Gemma") else
                                    pytest.param(f, marks=pytest.mark.slow)
                                    for f in FAMILIES])
def test_a_task_loses_half_its_blocks_and_keeps_its_class(family):
    task = causal_lm(family, num_layers=4)
    x = token_batch(task)
    shallow = kp.prune_depth(task, 0.5, data=[x])
    assert type(shallow) is type(task) and shallow.preprocessor is task.preprocessor
    assert shallow.backbone.num_layers == 2 == len(shallow.backbone.transformer_layers)
    kept = [b.name for b in shallow.backbone.transformer_layers]
    scores = depth_lib.block_influence(task, [x])
    removed = sorted(np.argsort(scores, kind="stable")[:2])
    with _skipping(task, removed):
        want = to_numpy(task(x, training=False))
    assert_close(shallow.predict(x, verbose=0), want, atol=1e-5)
    assert kept == [task.backbone.transformer_layers[i].name for i in range(2)]


def test_block_influence_removes_the_block_that_changes_nothing():
    task = causal_lm("Llama3", num_layers=4)
    block = task.backbone.transformer_layers[2]
    # With both output projections zero, block 2 passes its input on.
    for dense in (block._self_attention_layer._output_dense,  # noqa: SLF001
                  block._feedforward_output_dense):  # noqa: SLF001
        dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
    x = token_batch(task)
    scores = depth_lib.block_influence(task, [x, x], batches=1)
    assert scores[2] == pytest.approx(0.0, abs=1e-6) and (np.delete(scores, 2) > 1e-4).all()
    shallow = kp.prune_depth(task, 1, data=[x])
    assert_close(shallow.predict(x, verbose=0), task.predict(x, verbose=0), atol=1e-5)
    # The kept blocks are 0, 1 and 3, renamed 0, 1 and 2: block 3's weights
    # are now the third block's.
    np.testing.assert_array_equal(
        to_numpy(shallow.backbone.transformer_layers[2].weights[0]),
        to_numpy(task.backbone.transformer_layers[3].weights[0]))


def test_a_callable_ranks_the_blocks_and_generate_and_presets_work(tmp_path):
    task = causal_lm("Gemma", num_layers=4)
    shallow = kp.prune_depth(task, 2, importance=lambda model, data: [4, 1, 3, 2])
    with _skipping(task, [1, 3]):
        want = to_numpy(task(token_batch(task), training=False))
    assert_close(shallow(token_batch(task), training=False), want, atol=1e-5)
    shallow.compile(sampler="greedy")
    prompt = {"token_ids": token_batch(task)["token_ids"],
              "padding_mask": np.array([[1] * 3 + [0] * 5] * 2, "int32")}
    assert to_numpy(shallow.generate(prompt, stop_token_ids=None)["token_ids"]).shape == (2, 8)
    shallow.backbone.save_to_preset(str(tmp_path / "preset"))
    again = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    assert type(again) is type(task.backbone) and again.num_layers == 2
    x = token_batch(task)
    assert_close(again(x), shallow.backbone(x), atol=1e-6)


def test_per_block_config_lists_keep_the_kept_blocks_entries():
    task = causal_lm("SmolLM3", num_layers=4)  # RoPE off in block 3 only
    shallow = kp.prune_depth(task, 2, importance=lambda model, data: [1, 4, 2, 3])
    assert shallow.backbone.get_config()["rope_layer_enabled_list"] == [True, False]


def test_a_backbone_alone_works_too():
    backbone = causal_lm("Qwen3", num_layers=3).backbone
    shallow = kp.prune_depth(backbone, 1, data=[token_batch(backbone)])
    assert type(shallow) is type(backbone) and shallow.num_layers == 2


def test_blocks_that_change_kind_at_their_new_index_are_refused():
    task = causal_lm("Gemma", num_layers=4, use_sliding_window_attention=True)
    # Even blocks use a sliding window: keeping block 1 as block 0 would not.
    with pytest.raises(ValueError, match=r"GemmaBackbone makes its blocks by their index "
                                         r"\(sliding-window attention in every even block\), "
                                         r"so keeping block 1 as block 0 would change what "
                                         r"it computes"):
        kp.prune_depth(task, 2, importance=lambda model, data: [0, 3, 1, 2])
    kept = kp.prune_depth(task, 2, importance=lambda model, data: [3, 2, 1, 0])
    assert kept.backbone.num_layers == 2  # blocks 0 and 1 stay where they were


def test_a_result_that_does_not_skip_exactly_is_refused(monkeypatch):
    task = causal_lm("Gemma", num_layers=4, use_sliding_window_attention=True,
                     sliding_window_size=2)
    monkeypatch.setitem(hub_rules._DEPTH, "GemmaBackbone", hub_rules.DepthRule())  # noqa: SLF001
    with pytest.raises(ValueError, match=r"The GemmaBackbone without blocks "
                                         r"\['decoder_block_0'\] doesn't compute what the "
                                         r"original computes with those blocks skipped "
                                         r"\(largest difference .*\).*Your model is unchanged"):
        kp.prune_depth(task, 1, importance=lambda model, data: [0, 1, 2, 3])


@pytest.mark.parametrize("blocks,detail", [
    (4, r"blocks=4\."), (0, r"blocks=0\."), (0.1, r"blocks=0\.1, 0 of 4\."),
    (-1, r"blocks=-1\."), ("2", r"blocks='2'\."),
    (True, r"blocks=True\.")])
def test_bad_blocks_are_refused(blocks, detail):
    task = causal_lm("Llama3", num_layers=4)
    with pytest.raises(ValueError, match=r"`blocks` is how many of the model's 4 blocks to "
                                         r"remove: a count from 1 to 3, or a fraction in "
                                         r"\(0, 1\) that rounds to one\. Received: " + detail):
        kp.prune_depth(task, blocks, importance=lambda model, data: [1, 2, 3, 4])


def test_bad_importance_data_and_batches_are_refused():
    task = causal_lm("Llama3", num_layers=4)
    x = token_batch(task)
    with pytest.raises(ValueError, match=r"importance='block_influence' compares each "
                                         r"block's input and output.*Received: data=None"):
        kp.prune_depth(task, 1)
    with pytest.raises(ValueError, match=r"`importance` must be 'block_influence' or a "
                                         r"callable.*Received: importance='magnitude'"):
        kp.prune_depth(task, 1, data=[x], importance="magnitude")
    with pytest.raises(ValueError, match=r"`importance` must return one score per block "
                                         r"\(4\)\. Received scores of shape \(3,\)"):
        kp.prune_depth(task, 1, importance=lambda model, data: [1, 2, 3])
    with pytest.raises(ValueError, match=r"`batches` must be a positive int or None"):
        kp.prune_depth(task, 1, data=[x], batches=0)
    with pytest.raises(ValueError, match=r"`data` gave no batch: block influence"):
        kp.prune_depth(task, 1, data=[])


def test_models_it_cannot_take_are_refused_with_the_fix():
    task = causal_lm("Llama3", num_layers=2)
    with pytest.raises(ValueError, match=r"`prune_depth` removes blocks of a KerasHub task "
                                         r"or backbone.*Received: model of class Functional"):
        kp.prune_depth(keras.Model(task.backbone.input, task.backbone.output), 1)
    wrapped = kp.prune_low_magnitude(task)
    with pytest.raises(ValueError, match=r"`prune_depth` takes a model without pruning "
                                         r"wrappers.*Call `kp\.strip_pruning\(model\)` first"):
        kp.prune_depth(wrapped, 1, importance=lambda model, data: [1, 2])
