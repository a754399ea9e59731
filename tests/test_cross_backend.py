"""A `.keras` file written on one backend loads on every other.

Masks, schedule and step included: users train on JAX and serve on
TensorFlow. Each backend runs in its own process (Keras picks its backend
at import), so this test runs once, in the TensorFlow pass of the suite,
and drives all three. A backend whose package is not installed is left
out, and the test says so.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "cross_backend.py")
PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def _run(backend, verb, folder):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, SCRIPT, verb, folder], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{backend} {verb} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.backends("tensorflow")
def test_keras_files_load_on_every_other_backend(tmp_path):
    backends = [b for b, p in PACKAGES.items() if importlib.util.find_spec(p)]
    assert len(backends) >= 2, f"only {backends} installed"
    for backend in backends:
        _run(backend, "write", str(tmp_path))
    lines = []
    for backend in backends:
        lines += _run(backend, "read", str(tmp_path)).splitlines()
    expected = {(a, b) for a in backends for b in backends if a != b}
    seen = {(line.split()[0], line.split(" written on ")[1].split(":")[0])
            for line in lines if " written on " in line}
    assert seen == expected, lines
