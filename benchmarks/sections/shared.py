"""What every section uses: results files, provenance lines, cell statistics."""

import collections
import glob
import json
import os

import numpy as np

from benchmarks import common
from keras_progprune_cli import BACKENDS


ORDER = ["dense", "progressive_global", "progressive_layer", "progressive_2of4", "lottery",
         "snip", "grasp", "synflow", "random"]


CHANNEL_METHODS = ("progressive_channel", "scratch_channel",
                   "progressive_channel_shrinking")  # their own sections


def load(pattern):
    out = []
    for path in sorted(glob.glob(os.path.join(common.RESULTS_DIR, pattern))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def prov_line(prov):
    v = prov["versions"]
    backend = v.get("backend")
    extra = "".join(f", {name} {v[key]}" for name, key in (("JAX", "jax"), ("PyTorch", "torch"))
                    if v.get(key) and backend == key)
    return (f"Command: `{prov['command']}`; date {prov['date']}; CPU {prov['cpu']} "
            f"({prov['cores']} cores); GPU {prov['gpu'] or 'none'}; "
            + (f"backend {backend}; " if backend else "")
            + f"TensorFlow {v['tensorflow']}, Keras {v['keras']}{extra}, NumPy {v['numpy']}, "
            f"Python {v['python']}; git {prov['git']}.")


def cells(grid):
    cells = load(os.path.join("grid" if grid == "full" else "grid_quick", "*.json"))
    cells = [c for c in cells if "method" in c]  # not the saved architectures
    table = collections.defaultdict(list)
    for c in cells:
        table[(c["model"], c["method"], c["sparsity"])].append(c)
    return cells, table


def mean_std(values):
    """(mean, sample std), the std 0 for a single value."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def stats(cells):
    mean, std = mean_std([c["test_accuracy"] for c in cells])
    return {
        "mean": mean, "std": std,
        "n": len(cells), "steps": float(np.mean([c["steps"] for c in cells])),
        "wall": float(np.mean([c["wall_time_s"] for c in cells])),
    }


def by_backend(prefix):
    """`{backend: result}` from `<prefix>_<backend>.json`."""
    found = {}
    for backend in BACKENDS:
        rows = load(f"{prefix}_{backend}.json")
        if rows:
            found[backend] = rows[0]
    return found


def backend_section(prefix, title):
    """(results by backend, the section's first lines): a title, plus a note
    when nothing has been measured yet."""
    found = by_backend(prefix)
    lines = [title, ""]
    if not found:
        lines += ["Not measured yet: run `make bench-backends`.", ""]
    return found, lines


def provenances(found):
    """One provenance line per backend's result."""
    return [f"- {backend}: " + prov_line(r["provenance"]) for backend, r in found.items()] + [""]


def met(ok):
    return "met" if ok else "NOT met"
