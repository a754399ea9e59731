"""keras.applications (`benchmarks/applications.py`)."""

import os

from benchmarks.sections import shared

TITLE = "## 4. keras.applications, every family"


def applications_section():
    rows = shared.load(os.path.join("applications", "*.json"))
    if not rows:
        return [TITLE, "", "Not measured: run `python -m benchmarks.applications`.", ""]
    lines = [TITLE, "", shared.prov_line(rows[0]["provenance"]), "",
             "`python -m benchmarks.applications`: one model per family, `weights=None`, the "
             "smallest input, 10 classes; global PolynomialDecay to 50% -> 2 training steps -> "
             "strip -> `.keras` round trip -> SavedModel `serve`. `ok` = ran and outputs "
             "equal the pruned model's (max abs diff <= 1e-4 of the output scale).", "",
             "| model | input | parameters | pruned fraction | prune | train | strip | "
             ".keras round trip | serve | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    passed = 0
    for r in sorted(rows, key=lambda r: r["model"]):
        checks = [r[k] for k in ("prune", "train", "strip", "keras_round_trip", "serve")]
        passed += all(c == "ok" for c in checks)
        frac = f"{r['pruned_fraction']:.1%}" if "pruned_fraction" in r else "-"
        lines.append(f"| {r['model']} | {r['input']} | {r['parameters']:,} | {frac} | "
                     + " | ".join(c.replace("|", "/") for c in checks)
                     + f" | {r['seconds']:.0f} |")
    lines += ["", f"Goal: every row passes. {passed} of {len(rows)} pass "
              f"({'met' if passed == len(rows) else 'not met'}).", ""]
    return lines
