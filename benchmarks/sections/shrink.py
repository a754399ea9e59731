"""Shrink latency (`benchmarks/shrink.py`)."""

from benchmarks import goals
from benchmarks.sections import shared

TITLE = "## 5. Channel pruning: smaller and faster models"


def shrink_section():
    found = shared.load("shrink.json")
    if not found:
        return [TITLE, "", "Not measured: run `python -m benchmarks.shrink`.", ""]
    r = found[0]
    provs = {}
    for name, m in r["models"].items():
        prov = m.get("provenance", r["provenance"])
        provs.setdefault((prov["command"], prov["date"]), (prov, []))[1].append(name)
    lines = [TITLE, ""]
    for prov, names in provs.values():
        lines += [f"{', '.join(names)}: " + shared.prov_line(prov), ""]
    lines += ["`python -m benchmarks.shrink`: channel masks at 0/25/50/75% of every coupled "
             "channel group (`scope=\"layer\"`), chosen by magnitude on a random "
             "initialization (speed doesn't depend on the values), then `kp.shrink`. Each "
             "shrunk model is checked against its masked model before timing. Latency: CPU, "
             "`model(x)` in a `tf.function`, every variant of a model timed in one process in "
             f"alternating order, median of {r['repeats']['1']} (batch 1) and "
             f"{r['repeats']['32']} (batch 32) runs. Speed-up = dense latency / shrunk "
             "latency; the MAC ratio beside it is the ideal.", "",
             "| model | input | channels removed | parameters | MACs / example | .keras | "
             "batch 1 (ms) | batch 32 (ms) | speed-up b1 | speed-up b32 | MAC ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    verdicts = []
    for name, m in r["models"].items():
        shape = "x".join(str(d) for d in m["input_shape"])
        for label, row in m["rows"].items():
            lines.append(
                f"| {name} | {shape} | {label} | {row['parameters']:,} | {row['macs']:,} | "
                f"{row['keras_bytes'] / 1e6:.1f} MB | {row['latency_ms_b1']:.1f} | "
                f"{row['latency_ms_b32']:.1f} | {row['speedup_b1']:.2f}x | "
                f"{row['speedup_b32']:.2f}x | {row['mac_ratio']:.2f}x |")
        need = goals.SHRINK_SPEEDUP_AT_HALF.get(name)
        if need and "50%" in m["rows"]:
            got = m["rows"]["50%"]["speedup_b32"]
            verdicts.append(f"| {name}: at 50% of channels, >= {need:.1f}x faster at batch 32 | "
                            f"{got:.2f}x | {'yes' if got >= need else 'no'} |")
    lines += ["", "| target | measured | met? |", "| --- | --- | --- |"] + verdicts
    lines += ["", "GPU latency (resnet18, vgg19, dense against 50%): not measured; "
              "`python -m benchmarks.shrink` times whatever device Keras runs on, so the "
              "same command on a GPU machine measures it.", ""]
    return lines
