"""The LLM job (`keras_progprune.experiments.llm`, `keras-progprune-train
--text=...`) and the pinned corpus it and the benchmark read. Tiny
configs, a few steps, slices of the real corpus."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_progprune.experiments import llm
from keras_progprune.experiments import text

pytest.importorskip("keras_hub")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "slice.py"
    path.write_bytes(text.load_corpus("heldout")[:6000].tobytes())
    return str(path)


def _config(text_file, tmp_path, **overrides):
    values = dict(text=(text_file,), family="llama3", size="tiny", teacher_steps=2, steps=4,
                  batch_size=2, sequence_length=16, calibration_batches=2,
                  output_dir=str(tmp_path / "out"), verbose="0")
    values.update(overrides)
    return llm.LLMConfig(**values)


def test_corpus_is_pinned_and_split_by_module():
    train, heldout = text.load_corpus("train"), text.load_corpus("heldout")
    assert (len(train), len(heldout)) == (4287946, 413857)
    assert heldout[:22].tobytes() == b"# file: _py_abc.py\nfro"
    assert b"# file: _py_abc.py" not in train[:200000].tobytes()
    x, y = text.windows(train, 8, 3, seed=0)
    assert x.shape == y.shape == (3, 8) and x.dtype == "int32"
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    tx, ty = text.tiled(heldout[:100], 16)
    assert tx.shape == (6, 16)
    np.testing.assert_array_equal(tx.ravel()[1:], ty.ravel()[:-1])
    assert text.bits_per_byte(np.log(2.0)) == pytest.approx(1.0)


def test_corpus_errors(tmp_path):
    with pytest.raises(ValueError, match=r"`split` must be one of \('train', 'heldout'\)\. "
                                         r"Received: split='test'\."):
        text.load_corpus("test")
    with pytest.raises(FileNotFoundError, match="SHA256SUMS is missing"):
        text.load_corpus("train", data_dir=str(tmp_path))
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  train.txt.gz\n")
    (tmp_path / "train.txt.gz").write_bytes(b"not it")
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        text.load_corpus("train", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="too few for windows of length=8"):
        text.windows(np.zeros(5), 8, 1, 0)
    with pytest.raises(ValueError, match="too few for one window of length=8"):
        text.tiled(np.zeros(5), 8)


@pytest.mark.parametrize("method,overrides,cls", [
    ("progressive", {}, "HeadSizedLlama3CausalLM"),
    ("one_shot", dict(heads=0.0, hidden=0.25), "HeadSizedLlama3CausalLM"),  # head size kept
    ("iterative", {}, "HeadSizedLlama3CausalLM"),
    ("depth", dict(blocks=0.5), "Llama3CausalLM"),
])
def test_each_method_writes_a_preset_results_and_a_card(text_file, tmp_path, method,
                                                         overrides, cls):
    import keras_hub

    keras.utils.set_random_seed(0)
    config = _config(text_file, tmp_path, method=method, **overrides)
    results = llm.run(config, command="keras-progprune-train --text=slice.py")
    teacher, student = results["rows"]
    assert student["class"] == cls
    assert student["block_parameters"] < teacher["block_parameters"]
    if method == "depth":
        assert (teacher["num_layers"], student["num_layers"]) == (2, 1)
    if method == "one_shot":
        assert student["hidden_dim"] == 24
    assert np.isfinite(student["bits_per_byte"]) and student["perplexity"] > 1
    out = config.output_dir
    loaded = keras_hub.models.CausalLM.from_preset(os.path.join(out, "model"))
    assert type(loaded).__name__ == cls
    assert loaded.count_params() == student["parameters"]
    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f)["config"]["method"] == method
    with open(os.path.join(out, "README.md")) as f:
        card = f.read()
    assert "keras-progprune-train --text=slice.py" in card and "| student |" in card


def _gpt2_preset(path):
    """A tiny GPT-2 preset with a real byte-level BPE tokenizer (every byte
    a token, one merge), saved as a user's own model would be."""
    import keras_hub
    from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

    vocabulary = {c: i for i, c in enumerate(bytes_to_unicode()[1])}
    vocabulary["\u0120r"] = len(vocabulary)
    vocabulary["<|endoftext|>"] = len(vocabulary)
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=["\u0120 r"])
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=64)
    keras_hub.models.GPT2CausalLM(
        backbone=backbone,
        preprocessor=keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=16),
    ).save_to_preset(path)
    return path


@pytest.mark.backends("tensorflow")
@pytest.mark.parametrize("family,size", [("mistral", "tiny"), ("qwen3", "tiny"),
                                         ("gemma", "small")])
def test_every_family_and_key_value_groups_one_shot(text_file, tmp_path, family, size):
    keras.utils.set_random_seed(0)
    config = _config(text_file, tmp_path, family=family, size=size, method="one_shot",
                     ffn=0.5, heads=0.0, kv_heads=0.5)
    teacher, student = llm.run(config)["rows"]
    assert student["class"] == teacher["class"] == llm.FAMILIES[family][0] + "CausalLM"
    assert student["block_parameters"] < teacher["block_parameters"]
    assert teacher["hidden_dim"] == llm.SIZES[size]["hidden_dim"]
    assert os.path.isdir(os.path.join(config.output_dir, "model"))


@pytest.mark.backends("tensorflow")
def test_a_users_preset_is_read_with_its_tokenizer_and_written_with_it(text_file, tmp_path):
    import keras_hub

    keras.utils.set_random_seed(0)
    preset = _gpt2_preset(str(tmp_path / "gpt2"))
    config = _config(text_file, tmp_path, family="", hub_preset=preset, method="one_shot",
                     heads=0.0)
    teacher, student = llm.run(config)["rows"]
    assert student["class"] == "GPT2CausalLM" and student["bits_per_byte"] is None
    assert student["block_parameters"] < teacher["block_parameters"]
    loaded = keras_hub.models.CausalLM.from_preset(os.path.join(config.output_dir, "model"))
    assert isinstance(loaded.preprocessor, keras_hub.models.GPT2CausalLMPreprocessor)
    assert loaded.count_params() == student["parameters"]
    # GPT-2's blocks derive the head size: fewer heads can't be a GPT2CausalLM.
    with pytest.raises(ValueError, match=r"can't be written as a KerasHub preset\. Keep "
                                         r"its heads: pass --width_heads=0"):
        llm.run(_config(text_file, tmp_path, family="", hub_preset=preset,
                        method="one_shot"))


@pytest.mark.parametrize("overrides,message", [
    (dict(text=()), r"Pass the text to train and measure on: --text=FILE"),
    (dict(text=("missing.txt",)), r"Text file not found: 'missing.txt'"),
    (dict(family=""), r"Pass exactly one teacher: --hub_preset=DIR"),
    (dict(family="llama9"), r"Unknown --family='llama9'\. Use one of \['gemma', 'llama3'"),
    (dict(family="", hub_preset="nowhere"), r"--hub_preset='nowhere' is not a KerasHub "
                                            r"preset directory"),
    (dict(size="huge"), r"--llm_size must be one of \['small', 'tiny'\]"),
    (dict(method="magic"), r"--llm_method must be one of \('progressive'"),
    (dict(ffn=1.5), r"`ffn` must be in \[0, 1\)\. Received: ffn=1\.5\."),
    (dict(hidden=-0.1), r"`hidden` must be in \[0, 1\)\. Received: hidden=-0\.1\."),
    (dict(method="depth"), r"--llm_method=depth removes blocks: pass --depth_blocks"),
    (dict(heads=0.25), r"share one fraction\. Received: ffn=0\.5, heads=0\.25"),
    (dict(kv_heads=0.5), r"doesn't take --width_kv_heads yet"),
    (dict(steps=0), r"`steps` must be at least 1\. Received: steps=0\."),
])
def test_bad_input_is_refused_with_the_fix(text_file, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        llm.validate(_config(text_file, tmp_path, **overrides))


def test_empty_or_short_text_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"are empty"):
        llm.run(_config(str(empty), tmp_path))
    short = tmp_path / "short.txt"
    short.write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match=r"too few to hold out a tenth"):
        llm.run(_config(str(short), tmp_path))


@pytest.mark.backends("tensorflow")
def test_the_training_script_runs_the_llm_job_and_says_bad_input(text_file, tmp_path):
    script = os.path.join(REPO, "examples", "train.py")
    args = [sys.executable, script, f"--text={text_file}", "--family=llama3",
            "--llm_size=tiny", "--teacher_steps=2", "--llm_steps=4", "--batch_size=2",
            "--sequence_length=16", "--calibration_batches=2", "--verbose=0",
            f"--output_dir={tmp_path / 'run'}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for stage in ("training the teacher", "calibration: 2 batches", "distilling: 4 steps",
                  "evaluating on the held-out tenth"):
        assert stage in done.stdout
    assert os.path.isdir(tmp_path / "run" / "model")
    bad = subprocess.run(args[:3] + ["--family=llama9"], capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode != 0
    assert "Unknown --family='llama9'" in bad.stderr
