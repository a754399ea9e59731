"""What a finished run writes: served accuracy, plots, tables."""

import csv
import os

import numpy as np
import tensorflow as tf


def served_accuracy(export_dir, test_ds):
    """Test accuracy through the exported SavedModel's `serve` endpoint."""
    served = tf.saved_model.load(export_dir)
    correct = total = 0
    for images, labels in test_ds:
        logits = served.serve(images)
        correct += int(tf.reduce_sum(tf.cast(
            tf.argmax(logits, -1, output_type=tf.int32) == labels, tf.int32)))
        total += int(labels.shape[0])
    return correct / max(total, 1)


def plot_history(csv_path, png_path, title):
    """PNG of train/validation accuracy and sparsity against epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    epochs = list(range(1, len(rows) + 1))  # cumulative over lottery rounds
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("accuracy", "train accuracy"), ("val_accuracy", "validation accuracy")):
        if key in rows[0]:
            ax.plot(epochs, [float(r[key]) for r in rows], label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    if "sparsity" in rows[0]:
        ax2 = ax.twinx()
        ax2.plot(epochs, [float(r["sparsity"]) for r in rows], "k--", label="sparsity")
        ax2.set_ylabel("sparsity")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="center right")
    ax.legend(loc="lower left")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def plot_sparsity(report, png_path):
    """PNG of a `SparsityReport` (per-layer sparsity, or channels kept)."""
    import matplotlib.pyplot as plt

    plt.close(report.plot(png_path))
    return png_path


def _tree_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)


def file_sizes(output_dir, dense_dir):
    """Bytes of the run's model files, and of a dense model's for scale.

    `dense_dir` holds the dense reference (the same architecture, untrained:
    size doesn't depend on the values) as `dense.keras` (plain
    `model.save`) and `dense.tflite` (float).
    """
    sizes = {name: _tree_bytes(os.path.join(output_dir, name))
             for name in ("model.keras", "model.tflite", "saved_model")}
    for name in ("dense.keras", "dense.tflite"):
        sizes[name] = _tree_bytes(os.path.join(dense_dir, name))
    return sizes


def _removed_row(results):
    width, channels = results.get("width"), results.get("channels")
    if width:
        return ("width removed", f"ffn {width['ffn']:.0%}, heads {width['heads']:.0%}")
    if channels:
        return ("channels removed", f"{channels['removed_fraction']:.2%}")
    return ("sparsity (prunable weights)", f"{results['sparsity']['total']['sparsity']:.2%}")


def summary_table(results):
    """The short table `make demo` ends with."""
    channels = results.get("channels")
    rows = [
        ("dense-equivalent parameters", f"{results['dense_parameters']:,}"),
        ("remaining parameters", f"{results['remaining_parameters']:,}"),
        _removed_row(results),
        ("test accuracy (final epoch)", f"{results['test_accuracy']:.2%}"),
        ("test accuracy (SavedModel)", f"{results['served_test_accuracy']:.2%}"),
    ]
    if channels:
        for label, key, fmt in (("parameters", "parameters", "{:,.0f}"),
                                ("MACs per example", "macs", "{:,.0f}"),
                                ("CPU latency, batch 32", "latency_ms_batch32_cpu",
                                 "{:.2f} ms")):
            pair = channels[key]
            dense, after = pair["dense"], pair["shrunk"]
            rows.append((f"{label} (dense: {fmt.format(dense)})",
                         f"{fmt.format(after)} ({dense / after:.2f}x)"))
    files = results.get("file_bytes")
    if files:
        for name, dense in (("model.keras", "dense.keras"), ("model.tflite", "dense.tflite")):
            rows.append((f"{name} (dense: {files[dense] / 1e3:,.0f} KB)",
                         f"{files[name] / 1e3:,.0f} KB ({files[dense] / files[name]:.1f}x)"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{k:<{width}}  {v:>12}" for k, v in rows)


_ROUND_COLUMNS = ("round", "sparsity", "test_accuracy", "val_accuracy", "steps")


def write_rounds(path, rounds):
    """The lottery per-round table as CSV."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_ROUND_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rounds)


def rounds_table(rounds):
    lines = ["round  sparsity  test acc  val acc   steps (cumulative)"]
    total = 0
    for r in rounds:
        total += r["steps"]
        val = f"{r['val_accuracy']:.4f}" if r.get("val_accuracy") is not None else "   -  "
        lines.append(f"{r['round']:>5}  {r['sparsity']:>8.4f}  {r['test_accuracy']:>8.4f}  "
                     f"{val}  {r['steps']:>7} ({total})")
    return "\n".join(lines)


def final_value(history, key):
    if not history or key not in history or not history[key]:
        return None
    return float(history[key][-1])


def jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)
