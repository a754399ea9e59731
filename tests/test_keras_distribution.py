"""`keras.distribution` (JAX): DataParallel and ModelParallel on 2 and 4
host CPU devices, and two processes on localhost. Each case runs
`scripts/keras_distribution.py` in a subprocess (the device count must be
set before JAX starts), which checks the distributed run against a
single-device run of the same program."""

import json
import os
import subprocess
import sys

import pytest
from conftest import free_port, run_together

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "scripts", "keras_distribution.py")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="jax")
ENV.pop("XLA_FLAGS", None)  # the script sets the device count
# keras.distribution lays out variables on JAX only.
pytestmark = pytest.mark.backends("jax")


def _result(output):
    line = next((l for l in output.splitlines() if l.startswith("RESULT ")), None)
    assert line is not None, output[-3000:]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module", params=[2, 4], ids=["2-devices", "4-devices"])
def checks(request):
    proc = subprocess.run([sys.executable, SCRIPT, "checks", str(request.param)],
                          capture_output=True, text=True, timeout=420, env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = _result(proc.stdout)
    assert result["devices"] == request.param
    return result


@pytest.mark.parametrize("case", ["global/unstructured", "layer/unstructured", "global/2:4",
                                  "layer/channel"])
def test_data_parallel_masks_equal_one_device(checks, case):
    result = checks[f"data_parallel/{case}"]
    assert result["masks_equal"]
    assert result["exact"] is not False  # None: channels, checked by equality
    assert result["max_weight_diff"] < 1e-5


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_model_parallel_masks_are_sharded_like_their_weights(checks, scope):
    result = checks[f"model_parallel/{scope}"]
    assert result["masks_equal"] and result["exact"]
    for path in ("big/kernel", "emb/embeddings"):
        weight, mask = result["specs"][path]
        assert weight == mask == "P(None, 'model')"
    assert result["specs"]["head/kernel"] == ["P(None, None)", "P(None, None)"]


def test_saved_under_a_distribution_loads_on_one_device(checks):
    assert checks["saved_dp_max_diff"] < 1e-6
    assert checks["saved_mp_max_diff"] < 1e-6


def test_backup_and_restore_resumes_exactly_under_data_parallel(checks):
    result = checks["backup_and_restore"]
    assert result["masks_equal"] and result["exact"] and result["step"] == 24
    assert result["max_weight_diff"] < 1e-5


def test_fit_shrinking_under_data_parallel_matches_one_device(checks):
    result = checks["fit_shrinking"]
    assert result["parameters"] == result["reference_parameters"]
    assert result["parameters"][-1] < result["parameters"][0]
    assert result["max_weight_diff"] < 1e-5
    assert result["devices_per_variable"] == [checks["devices"]]  # re-created replicated


def test_fit_shrinking_under_model_parallel_names_the_alternative(checks):
    assert "then `kp.shrink` once at the end" in checks["model_parallel_fit_shrinking_error"]


def test_two_processes_end_with_identical_masks():
    port = free_port()
    outputs = run_together([[sys.executable, SCRIPT, "process", str(i), "2", str(port)]
                            for i in range(2)], [ENV, ENV], timeout=240)
    results = [_result(out) for out in outputs]
    assert [r["process"] for r in results] == [0, 1]
    assert all(r["devices"] == 4 for r in results)  # 2 processes x 2 host devices
    assert results[0]["digest"] == results[1]["digest"]
    assert all(r["masks_equal"] and r["exact"] for r in results)  # = one device, one process


HUB_SCRIPT = os.path.join(HERE, "scripts", "hub_distribution.py")


@pytest.fixture(scope="module", params=[2, 4], ids=["2-devices", "4-devices"])
def hub_checks(request):
    pytest.importorskip("keras_hub")
    proc = subprocess.run([sys.executable, HUB_SCRIPT, str(request.param)],
                          capture_output=True, text=True, timeout=420, env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = _result(proc.stdout)
    assert result["devices"] == request.param
    return result


def test_a_kerashub_task_under_its_backbone_layout_map_prunes_as_on_one_device(hub_checks):
    # prune_width's calibration and ranking, and the progressive channel
    # groups, give what one device gives...
    assert hub_checks["width_max_diff"] < 1e-5
    assert hub_checks["masks_equal"]
    assert hub_checks["shrunk_max_diff"] < 1e-5
    # ...and the smaller models come back laid out by the same map.
    for specs in (hub_checks["width_specs"], hub_checks["shrunk_specs"]):
        assert specs["token_embedding/embeddings"] == "P('model', 'batch')"
        assert specs["transformer_layer_0/feedforward_gate_dense/kernel"] == (
            "P('batch', 'model')")
        assert specs["transformer_layer_0/self_attention/query/kernel"] == (
            "P('model', 'batch', None)")
