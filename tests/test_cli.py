"""The `keras-progprune-train` launcher: backend choice and quiet start-up."""

import os
import subprocess
import sys

import pytest

import keras_progprune_cli as cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = ("cudart_stub", "cuInit", "cpu_feature_guard", "absl::InitializeLog")


def test_backend_from_argv():
    assert cli.backend_from_argv(["--backend=jax", "--epochs=1"]) == "jax"
    assert cli.backend_from_argv(["--epochs=1", "--backend", "torch"]) == "torch"
    assert cli.backend_from_argv(["--epochs=1"]) is None
    assert cli.backend_from_argv(["--backend"]) is None


def test_choose_backend_sets_keras_backend(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    cli.choose_backend(["--backend=jax"])
    assert os.environ["KERAS_BACKEND"] == "jax"
    cli.choose_backend([])  # no flag: left as it is
    assert os.environ["KERAS_BACKEND"] == "jax"
    with pytest.raises(SystemExit, match=r"--backend must be one of tensorflow, jax, torch\. "
                                         r"Received: --backend='mxnet'\."):
        cli.choose_backend(["--backend=mxnet"])


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(extra)
    return env


SCRIPT = ("import keras_progprune_cli as c, sys\n"
          "with c.quiet_tensorflow():\n"
          "    import tensorflow as tf\n"
          "tf.config.list_physical_devices()\n"
          "print('level', c.os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
          "print('still here', file=sys.stderr)\n")


@pytest.mark.backends("tensorflow")
def test_quiet_tensorflow_hides_start_up_lines():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "level 3" in proc.stdout
    assert "still here" in proc.stderr  # stderr is back after the imports
    assert not any(word in proc.stderr for word in NOISE), proc.stderr


@pytest.mark.backends("tensorflow")
def test_quiet_tensorflow_respects_the_users_level():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=_env(TF_CPP_MIN_LOG_LEVEL="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "level 1" in proc.stdout


def test_a_python_error_inside_is_still_shown():
    code = ("import keras_progprune_cli as c\n"
            "with c.quiet_tensorflow():\n"
            "    import no_such_module_here\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert proc.returncode != 0
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in proc.stderr


def test_script_help_and_bad_backend():
    script = os.path.join(REPO, "examples", "train.py")
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True,
                            text=True, env=_env(), timeout=300)
    # absl prints the flags and exits (with status 1, absl's convention).
    assert "--target_sparsity" in helped.stdout and "--backend" in helped.stdout, (
        helped.stderr[-2000:])
    assert not any(word in helped.stderr for word in NOISE), helped.stderr[-2000:]
    bad = subprocess.run([sys.executable, script, "--backend=mxnet"], capture_output=True,
                         text=True, env=_env(), timeout=60)
    assert bad.returncode != 0
    assert "--backend must be one of tensorflow, jax, torch. Received: --backend='mxnet'." in (
        bad.stderr)
