"""sparsity_report: per-layer counts, the two labelled totals, the plot."""

import sys

import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import report_plot
from keras_progprune import wrapper as wrapper_lib
from conftest import data, mlp


def test_sparsity_report_counts_and_prints_a_table():
    pruned = kp.prune_low_magnitude(mlp(units=(4,)))
    wrapper = wrapper_lib.collect_wrappers(pruned)[0]
    k = wrapper.pruned_weights[0]
    values = keras.ops.convert_to_numpy(k)
    values[:2] = 0.0  # 2 rows of 4 -> 8 zeros of 20
    k.assign(values)
    report = kp.sparsity_report(pruned)
    assert report["layers"]["fc0"] == {"weights": 20, "zeros": 8, "sparsity": 0.4,
                                       "pruned": True, "structure": "unstructured",
                                       "channels": {"kept": 4, "total": 4}}
    assert report["layers"]["head"]["channels"]["left_whole"] == "reaches a model output"
    assert report["pruned"]["weights"] == 20 + 12
    assert report["total"] is report["pruned"]  # the older name
    # The whole model: both kernels and both biases (4 + 3), no masks or steps.
    assert report["model"] == {"weights": 20 + 12 + 4 + 3, "zeros": 8 + 4 + 3,
                               "sparsity": pytest.approx(15 / 39)}
    # Zeroed input rows remove no output channel; MACs count fc0 (5*4) + out (4*3).
    assert report["macs"] == {"dense": 32, "shrunk": 32}
    text = str(report)
    assert "fc0" in text and "40.00%" in text and "4/4" in text
    assert "TOTAL over pruned layers" in text and "TOTAL over the whole model" in text
    assert "MACs per example: 32 as built, 32 after shrink" in text
    assert isinstance(report, dict)


def test_excluded_layers_count_in_the_model_total_only():
    # As a ViT with its patching layer excluded: 80% of the wrapped weights
    # must read as 80%, not as a blend with the dense excluded layer.
    model = mlp(units=(20,), inputs=10, classes=10)
    pruned = kp.prune_low_magnitude(model, kp.ConstantSparsity(0.8, 0, frequency=1),
                                    scope="global", exclude=["head"])
    pruned.compile("sgd", "mse")
    x, _ = data(16, inputs=10)
    pruned.fit(x, np.zeros((16, 10)), verbose=0, callbacks=[kp.ProgressivePruningCallback()])
    report = kp.sparsity_report(pruned)
    assert report["pruned"]["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert report["layers"]["head"]["pruned"] is False
    assert "structure" not in report["layers"]["head"]
    dense_head = 20 * 10
    assert report["model"]["weights"] == 10 * 20 + 20 + dense_head + 10
    assert report["model"]["sparsity"] < 0.6
    assert "head (not pruned)" in str(report)
    # A stripped model has no wrappers: every prunable layer counts.
    plain = kp.sparsity_report(kp.strip_pruning(pruned))
    assert all(r["pruned"] for r in plain["layers"].values())
    assert plain["pruned"]["weights"] == 10 * 20 + dense_head


@pytest.fixture
def matplotlib_agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_plot_draws_sparsity_per_layer(tmp_path, matplotlib_agg):
    pruned = kp.prune_low_magnitude(mlp(units=(4,)), exclude=["head"])
    report = kp.sparsity_report(pruned)
    path = tmp_path / "sparsity.png"
    fig = report.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fc0", "head"]
    assert "over pruned layers" in ax.get_title() and "over the model" in ax.get_title()
    assert report_plot.chosen_kind(report, "auto") == "sparsity"
    assert report.plot(kind="sparsity", title="mine").axes[0].get_title() == "mine"


def test_plot_draws_channels_for_channel_pruning(matplotlib_agg):
    pruned = kp.prune_low_magnitude(mlp(units=(8, 6)), kp.ConstantSparsity(0.5, 0),
                                    structure="channel")
    report = kp.sparsity_report(pruned)
    assert report_plot.chosen_kind(report, "auto") == "channels"
    fig = report.plot()
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert 8 in heights and 6 in heights  # each layer's channel total is drawn


def test_plot_errors(monkeypatch):
    report = kp.sparsity_report(kp.prune_low_magnitude(mlp()))
    with pytest.raises(ValueError, match=r"`kind` must be one of \('auto', 'sparsity', "
                                         r"'channels'\)\. Received: kind='bars'"):
        report.plot(kind="bars")
    layer_report = kp.sparsity_report(keras.layers.Dense(3))
    with pytest.raises(ValueError, match=r"kind='channels' needs output-channel counts.*"
                                         r"Use kind='sparsity'"):
        layer_report.plot(kind="channels")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"SparsityReport\.plot needs matplotlib: "
                                          r"pip install matplotlib"):
        report.plot()
