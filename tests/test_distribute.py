"""tf.distribute: MirroredStrategy on 2 logical CPUs, and 2 local workers
under MultiWorkerMirroredStrategy. Both run in subprocesses (devices and
TF_CONFIG must be set before TensorFlow starts)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_equal, free_port, run_together

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
# tf.distribute is TensorFlow's; `keras.distribution` (JAX) has its own tests.
pytestmark = pytest.mark.backends("tensorflow")


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_mirrored_masks_identical_on_replicas_and_match_one_device(scope):
    proc = subprocess.run([sys.executable, os.path.join(HERE, "scripts", "mirrored.py"), scope],
                          capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["replicas"] == 2
    assert result["masks_identical"] and result["pruned_zero"]
    assert all(steps == [8, 8] for steps in result["steps"])  # every replica, every wrapper
    assert result["max_mask_diff_vs_single"] <= 0.01
    assert result["sparsity"] == pytest.approx(0.8, abs=0.01)


def test_multi_worker_two_local_workers(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    script = os.path.join(HERE, "scripts", "multiworker.py")
    run_together([[sys.executable, script, str(tmp_path)]] * 2, [
        dict(ENV, TF_CONFIG=json.dumps({"cluster": cluster,
                                        "task": {"type": "worker", "index": index}}))
        for index in range(2)], timeout=240)
    a, b = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert int(a["step"]) == int(b["step"]) == 6
    assert float(a["sparsity"]) == pytest.approx(0.75, abs=1e-3)
    assert float(b["sparsity"]) == pytest.approx(0.75, abs=1e-3)
    masks = [k for k in a.files if k.startswith("mask")]
    assert masks
    for k in masks:
        assert_equal(a[k], b[k])
