import json
import os
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from keras_progprune import experiment
from conftest import make_mnist_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(tmp_path, **kw):
    values = dict(model="lenet_300_100", dataset="mnist", epochs=2, batch_size=8,
                  data_dir=make_mnist_dir(tmp_path / "mnist", train=48, test=16),
                  validation_size=8, output_dir=str(tmp_path / "out"), verbose="0",
                  frequency=1, prune_end=1)
    values.update(kw)
    return experiment.Config(**values)


def test_run_writes_every_output(tmp_path):
    config = _tiny(tmp_path, target_sparsity=0.9, lr_schedule="step", optimizer="sgd",
                   weight_decay=1e-4, label_smoothing=0.1)
    results = experiment.run(config)
    out = config.output_dir
    for name in ("config.json", "history.csv", "results.json", "history.png", "sparsity.png",
                 "model.keras", "saved_model/saved_model.pb"):
        assert os.path.exists(os.path.join(out, name)), name
    assert os.listdir(os.path.join(out, "tensorboard"))
    with open(os.path.join(out, "history.csv")) as f:
        header = f.readline().strip().split(",")
    for column in ("loss", "accuracy", "val_accuracy", "sparsity", "learning_rate"):
        assert column in header
    saved = json.load(open(os.path.join(out, "results.json")))
    assert saved["steps"] == 2 * 5 and saved["steps_per_epoch"] == 5
    assert saved["sparsity"]["total"]["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert saved["served_test_accuracy"] == pytest.approx(saved["test_accuracy"], abs=1e-6)
    assert results["remaining_parameters"] < results["dense_parameters"]
    assert json.load(open(os.path.join(out, "config.json")))["lr_schedule"] == "step"


@pytest.mark.slow
def test_finished_run_is_not_overwritten_silently(tmp_path):
    config = _tiny(tmp_path, epochs=1, prune_end=0)
    experiment.run(config)
    with pytest.raises(ValueError, match=r"`output_dir` already holds a finished run: .* Pass "
                       r"--overwrite"):
        experiment.run(config)
    experiment.run(config, overwrite=True)


@pytest.mark.parametrize("schedule,scope", [("linear", "global"), ("constant", "layer"),
                                            ("polynomial", "layer")])
@pytest.mark.slow
def test_schedules_and_scopes_reach_the_target(tmp_path, schedule, scope):
    results = experiment.run(_tiny(tmp_path, schedule=schedule, scope=scope,
                                   target_sparsity=0.8, optimizer="adamw", weight_decay=1e-3))
    layers = results["sparsity"]["layers"]
    if scope == "layer":
        for r in layers.values():
            assert r["sparsity"] == pytest.approx(0.8, abs=1.0 / r["weights"] + 1e-9)
    assert results["sparsity"]["total"]["sparsity"] == pytest.approx(0.8, abs=1e-3)


@pytest.mark.slow
def test_default_output_dir_is_named_by_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _tiny(tmp_path, output_dir="", epochs=1, prune_end=0)
    results = experiment.run(config)
    assert results["config"]["output_dir"] == experiment.default_output_dir(config)
    assert config.digest() in results["config"]["output_dir"]


def test_bad_config_values():
    with pytest.raises(ValueError, match=r"`optimizer` must be one of \('sgd', 'adam', 'adamw'\)\. "
                       r"Received: optimizer='lamb'"):
        experiment.validate(experiment.Config(optimizer="lamb"))
    with pytest.raises(ValueError, match=r"`lr_schedule` must be one of .* Received: lr_schedule='poly'"):
        experiment.validate(experiment.Config(lr_schedule="poly"))
    with pytest.raises(ValueError, match=r"Unknown preset\. Received: preset='x'\. Valid presets"):
        experiment.apply_preset("x", {})
    with pytest.raises(ValueError, match=r"Need 0 <= prune_start <= prune_end < epochs\. Received: "
                       r"prune_start=3, prune_end=1, epochs=2"):
        from keras_progprune import methods
        methods.Progressive(0.5, prune_start=3, prune_end=1).make_schedule(2, 10)


@pytest.mark.slow
def test_auto_learning_rate_is_held_while_progressive_prunes(tmp_path):
    config = _tiny(tmp_path, epochs=3, prune_end=-1)  # target at epoch 2 of 3
    assert config.lr_schedule == "auto"
    assert experiment.lr_schedule_of(config) == "hold_cosine"
    assert experiment.lr_schedule_of(_tiny(tmp_path, method="snip")) == "cosine"
    assert experiment.lr_schedule_of(_tiny(tmp_path, lr_schedule="step")) == "step"
    assert experiment.prune_end_epoch(config) == 2
    assert experiment.prune_end_epoch(_tiny(tmp_path, prune_end=1, epochs=3)) == 1
    assert experiment.prune_end_epoch(_tiny(tmp_path, method_options={"prune_end": 0})) == 0
    trainer = experiment.Trainer(config, log=False)
    steps = trainer.steps_per_epoch  # 40 examples / 8 = 5
    lr = trainer.make_optimizer().learning_rate
    schedule = trainer._learning_rate()
    rates = [float(schedule(step)) for step in (0, 2 * steps - 1, 2 * steps, 2.5 * steps, 3 * steps)]
    assert rates[:3] == pytest.approx([config.lr] * 3)
    assert rates[3] == pytest.approx(config.lr / 2, rel=1e-5)
    assert rates[4] == pytest.approx(0.0, abs=1e-9)
    assert float(lr) == pytest.approx(config.lr)
    cosine = experiment.Trainer(_tiny(tmp_path, epochs=3, method="dense"), log=False)
    assert float(cosine._learning_rate()(2 * steps)) < config.lr / 2


@pytest.mark.parametrize("preset", [
    p if p.startswith("lenet") else pytest.param(p, marks=pytest.mark.slow)
    for p in sorted(experiment.PRESETS)])
def test_every_preset_runs_two_steps_on_mock_data(tmp_path, preset):
    overrides = dict(epochs=1, batch_size=4, train_examples=8, eval_examples=4,
                     validation_size=4, output_dir=str(tmp_path / preset), verbose="0",
                     data_dir="", prune_end=0)
    config = experiment.apply_preset(preset, overrides)
    assert experiment.PRESETS[preset]["expected"] and experiment.PRESETS[preset]["source"]
    with tfds.testing.mock_data(num_examples=8):
        results = experiment.run(config)
    assert results["steps"] == 2
    assert results["sparsity"]["total"]["sparsity"] == pytest.approx(
        config.target_sparsity, abs=1e-4)


def test_script_flags_end_to_end(tmp_path):
    data_dir = make_mnist_dir(tmp_path / "mnist", train=48, test=16)
    out = tmp_path / "script"
    cmd = [sys.executable, os.path.join(REPO, "examples", "train.py"),
           "--preset=lenet_300_100_mnist", f"--data_dir={data_dir}", "--epochs=1",
           "--batch_size=8", "--validation_size=8", f"--output_dir={out}", "--verbose=0",
           "--target_sparsity=0.5", "--prune_end=0", "--frequency=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test accuracy (SavedModel)" in proc.stdout
    assert "preset lenet_300_100_mnist: expected" in proc.stdout
    config = json.load(open(out / "config.json"))
    assert config["target_sparsity"] == 0.5 and config["optimizer"] == "adam"
    bad = subprocess.run(cmd[:2] + ["--method=bogus", f"--output_dir={out}2"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "Unknown pruning method. Received: method='bogus'" in bad.stderr


@pytest.mark.slow
def test_run_with_a_2_4_structure_writes_small_files(tmp_path):
    import keras

    import keras_progprune as kp

    results = experiment.run(_tiny(tmp_path, structure="2:4", target_sparsity=0.5))
    out = results["config"]["output_dir"]
    files = results["file_bytes"]
    assert files["model.keras"] < files["dense.keras"]
    assert os.path.exists(os.path.join(out, "model.tflite"))
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert not model.compiled  # saved without optimizer state
    report = kp.check_m_by_n(model, 2, 4)
    assert report["fc1/kernel"]["holds"] and report["fc2/kernel"]["holds"]
    assert "(dense: " in experiment.summary_table(results)


def test_structure_is_validated(tmp_path):
    with pytest.raises(ValueError, match=r"Received: structure='4:2'"):
        experiment.validate(experiment.Config(structure="4:2"))
    with pytest.raises(ValueError, match=r"`structure` applies to the progressive method "
                                         r"only\. Received: structure='2:4' with method='snip'"):
        experiment.validate(experiment.Config(structure="2:4", method="snip"))


@pytest.mark.parametrize("shrink_every", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_channel_run_exports_the_shrunk_model(tmp_path, shrink_every):
    import keras
    import numpy as np

    results = experiment.run(_tiny(tmp_path, model="lenet5", structure="channel", scope="layer",
                                   target_sparsity=0.5, shrink_every=shrink_every))
    out = results["config"]["output_dir"]
    channels = results["channels"]
    assert channels["removed_fraction"] == pytest.approx(0.5, abs=0.01)
    assert channels["parameters"]["shrunk"] < channels["parameters"]["dense"] / 2
    assert channels["macs"]["shrunk"] < channels["macs"]["dense"] / 2
    assert set(channels["latency_ms_batch32_cpu"]) == {"dense", "shrunk"}
    assert results["remaining_parameters"] == channels["parameters"]["shrunk"]
    assert results["served_test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)
    assert len(results["epoch_wall_times_s"]) == 2
    small = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert small.count_params() == channels["parameters"]["shrunk"]
    assert small.get_layer("conv1").filters == 10
    table = experiment.summary_table(results)
    assert "channels removed" in table and "MACs per example (dense: 2,293,000)" in table
    assert np.isfinite(results["test_accuracy"])


def test_activation_importance_run_prunes_channels_by_activation(tmp_path):
    results = experiment.run(_tiny(tmp_path, model="lenet_300_100", structure="channel",
                                   scope="layer", target_sparsity=0.5,
                                   importance="activation", calibration_batches=2))
    assert results["config"]["importance"] == "activation"
    assert results["channels"]["removed_fraction"] == pytest.approx(0.5, abs=0.01)
    assert results["served_test_accuracy"] == pytest.approx(results["test_accuracy"],
                                                            abs=1e-6)


def test_importance_is_validated_and_keeps_old_digests():
    plain = experiment.Config()
    assert experiment.Config(calibration_batches=3).digest() == plain.digest()
    assert experiment.Config(importance="taylor").digest() != plain.digest()
    with pytest.raises(ValueError, match=r"`importance` must be one of \('activation', "
                                         r"'grasp', 'magnitude', 'random', 'snip', "
                                         r"'synflow', 'taylor'\)\. Received: "
                                         r"importance='tailor'"):
        experiment.validate(experiment.Config(importance="tailor"))
    with pytest.raises(ValueError, match=r"ranks the masks of the progressive method\. "
                                         r"Received: importance='taylor' with "
                                         r"method='lottery'"):
        experiment.validate(experiment.Config(importance="taylor", method="lottery"))
    with pytest.raises(ValueError, match=r"importance='activation' ranks whole channels .* "
                                         r"structure='unstructured'\. Use structure='channel'"):
        experiment.validate(experiment.Config(importance="activation"))
    from keras_progprune import methods

    with pytest.raises(ValueError, match=r"`importance` must be one of \['activation', "
                                         r"'grasp', 'magnitude', .*\]\. Received: "
                                         r"importance='x'"):
        methods.make("progressive", 0.5, options={"importance": "x"})


def test_shrink_every_and_architecture_are_validated(tmp_path):
    with pytest.raises(ValueError, match=r"`shrink_every` .* must be 0 \(off\) or a positive "
                                         r"number with structure='channel'.*Received: "
                                         r"shrink_every=2, structure='unstructured'"):
        experiment.validate(experiment.Config(shrink_every=2))
    from keras_progprune import methods

    with pytest.raises(ValueError, match=r"`architecture` must be the path of a Keras model "
                                         r"JSON file .* Received: architecture='nope.json'"):
        methods.make("dense", 0.0, options={"architecture": "nope.json"})


@pytest.mark.parametrize("model,recovery", [
    ("lenet_300_100", "distill"),
    pytest.param("vit_tiny", "finetune", marks=pytest.mark.slow)])
def test_one_shot_width_run_recovers_and_exports_the_shrunk_model(tmp_path, model, recovery):
    import keras

    heads = 0.5 if model == "vit_tiny" else 0.0
    results = experiment.run(_tiny(tmp_path, model=model, method="dense", width_ffn=0.5,
                                   width_heads=heads, width_recovery=recovery,
                                   recovery_epochs=1, calibration_batches=2))
    width = results["width"]
    assert width["parameters"]["shrunk"] < 0.7 * width["parameters"]["dense"]
    assert set(width) >= {"dense_test_accuracy", "test_accuracy_before_recovery",
                          "recovery_history"}
    assert len(width["recovery_history"]["loss"]) == 1
    assert results["remaining_parameters"] == width["parameters"]["shrunk"]
    assert results["served_test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)
    small = keras.saving.load_model(os.path.join(results["config"]["output_dir"],
                                                 "model.keras"))
    assert small.count_params() == width["parameters"]["shrunk"]
    assert "width removed" in experiment.summary_table(results)


def test_width_flags_are_validated():
    with pytest.raises(ValueError, match=r"`width_ffn` is the fraction of each block's "
                                         r"feed-forward neurons to remove and must be in "
                                         r"\[0, 1\)\. Received: width_ffn=1\.5"):
        experiment.validate(experiment.Config(method="dense", width_ffn=1.5))
    with pytest.raises(ValueError, match=r"One-shot width pruning .* starts from a trained "
                                         r"dense model\. Received: method='progressive'"):
        experiment.validate(experiment.Config(width_heads=0.5))
    with pytest.raises(ValueError, match=r"`width_recovery` must be one of \('distill', "
                                         r"'finetune', 'none'\)\. Received: "
                                         r"width_recovery='kd'"):
        experiment.validate(experiment.Config(method="dense", width_recovery="kd"))
    with pytest.raises(ValueError, match=r"`calibration_batches` must be >= 1\. Received: "
                                         r"calibration_batches=0"):
        experiment.validate(experiment.Config(method="dense", width_ffn=0.5,
                                              calibration_batches=0))
    with pytest.raises(ValueError, match=r"`recovery_epochs` must be >= 0\. Received: "
                                         r"recovery_epochs=-1"):
        experiment.validate(experiment.Config(recovery_epochs=-1))
