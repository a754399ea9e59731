"""The package installs like a released one: a wheel and an sdist build, the
wheel installs into a fresh virtualenv with the core dependencies only and
works there, and the version comes from one place."""

import json
import re
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

import keras_progprune as kp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_version_is_set_in_one_place():
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        pyproject = f.read()
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    assert 'dynamic = ["version"]' in project and "\nversion" not in project
    assert 'version = { attr = "keras_progprune.__version__" }' in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+", kp.__version__)
    with open(os.path.join(REPO, "CHANGELOG.md")) as f:
        assert f"## {kp.__version__}" in f.read()


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: build with this environment's setuptools (no download).
    _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation",
          "--outdir", str(out), REPO])
    return out


@pytest.mark.slow
def test_wheel_and_sdist_hold_the_package(dist):
    wheel, = dist.glob(f"keras_progprune-{kp.__version__}-py3-none-any.whl")
    sdist, = dist.glob(f"keras_progprune-{kp.__version__}.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "keras_progprune/backend/jax.py" in names
    assert "keras_progprune/experiments/runner.py" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    entry_points = zipfile.ZipFile(wheel).read(
        f"keras_progprune-{kp.__version__}.dist-info/entry_points.txt").decode()
    assert "keras-progprune-train = keras_progprune_cli:main" in entry_points
    assert "keras_progprune_cli.py" in names  # the launcher, outside the package
    with tarfile.open(sdist) as tar:
        assert any(n.endswith("keras_progprune/__init__.py") for n in tar.getnames())


@pytest.mark.slow
def test_wheel_installs_and_works_with_core_dependencies_only(dist, tmp_path):
    wheel, = dist.glob("*.whl")
    env_dir = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(env_dir)])
    python = str(env_dir / "bin" / "python")
    # Core dependencies come from pip's usual index (its cache, here), the
    # same versions as this environment's so that nothing is downloaded twice.
    pins = _run([sys.executable, "-m", "pip", "freeze"]).stdout
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(
        line for line in pins.splitlines()
        if "==" in line and not line.lower().startswith(("keras-progprune", "keras_progprune"))))
    _run([python, "-m", "pip", "install", "--quiet", "-c", str(constraints), str(wheel)])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KERAS_BACKEND"] = "tensorflow"
    result = _run([python, os.path.join(REPO, "tests", "scripts", "wheel_smoke.py")],
                  cwd=str(tmp_path), env=env)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["version"] == kp.__version__
    assert found["module"].startswith(str(env_dir))  # the wheel, not the checkout
    assert found["extras_present"] == []
    assert found["sparsity"] == pytest.approx(0.75, abs=0.01)
    assert found["max_diff"] < 1e-5
    # The console command is installed and answers --help.
    helped = subprocess.run([str(env_dir / "bin" / "keras-progprune-train"), "--help"],
                            env=env, cwd=str(tmp_path), capture_output=True, text=True)
    assert "--target_sparsity" in helped.stdout, helped.stderr[-3000:]
