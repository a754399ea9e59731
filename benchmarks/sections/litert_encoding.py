"""LiteRT encodings (`benchmarks/litert_encoding.py`), inside small files."""

from benchmarks.sections import shared


def litert_encoding_lines():
    found = shared.load("litert_encoding.json")
    lines = ["### LiteRT encodings: `optimize_for=\"latency\"` (default) and `\"size\"`", ""]
    if not found:
        return lines + ["Not measured yet: run `python -m benchmarks.litert_encoding`.", ""]
    r = found[0]
    lines += [shared.prov_line(r["provenance"]), "",
              f"Pruned to {r['sparsity']:.0%} (global progressive, {r['steps']} steps of real "
              "MNIST, for trained-like weights). Every file timed side by side, alternating, "
              f"in one process: LiteRT interpreter (ai-edge-litert), 2 threads, median of "
              f"{r['repeats']} `invoke()` calls; `*` = XNNPACK could not prepare the file and "
              "LiteRT's builtin kernels ran it. `x smaller`: against the dense float file; latency ratios: against the dense float file (int8 rows: "
              "against the dense int8 file). Goals for the default: latency <= 1.1x dense at "
              "batch 1 and 32, and >= 10x smaller at 95%.", "",
              "| model | file | KB | x smaller | batch 1 ms | x dense | batch 32 ms | x dense |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    goals = []
    for model, row in r["rows"].items():
        for variant in ("dense", "latency", "size", "dense_int8", "latency_int8", "size_int8"):
            base = "dense_int8" if variant.endswith("int8") else "dense"
            size = row["bytes"][variant]
            lat = row["latency_ms"]
            b1, b32 = lat[f"{variant}_b1"], lat[f"{variant}_b32"]
            star = "" if row["xnnpack"][variant] else "*"
            lines.append(
                f"| {model} | {variant}{star} | {size / 1e3:,.1f} | "
                f"{row['bytes']['dense'] / size:.1f}x | {b1:.4f} | {b1 / lat[base + '_b1']:.2f}x "
                f"| {b32:.4f} | {b32 / lat[base + '_b32']:.2f}x |")
        lat = row["latency_ms"]
        r1 = lat["latency_b1"] / lat["dense_b1"]
        r32 = lat["latency_b32"] / lat["dense_b32"]
        smaller = row["bytes"]["dense"] / row["bytes"]["latency"]
        goals += [f"| {model}: default latency <= 1.1x dense (b1, b32) | {r1:.2f}x, {r32:.2f}x | "
                  f"{'met' if max(r1, r32) <= 1.1 else 'NOT met'} |",
                  f"| {model}: default >= 10x smaller than dense | {smaller:.1f}x | "
                  f"{'met' if smaller >= 10 else 'NOT met'} |"]
    lines += ["", "| goal | measured | met? |", "| --- | --- | --- |"] + goals + [
        "", "Cause of the slow sparse files (BUILD_NOTES.md): XNNPACK runs the converter's "
        "own encodings (1x4-block FullyConnected weights, CSR convolutions) at dense speed, "
        "but not the plain-CSR FullyConnected weights that the `size` encoding writes behind "
        "a DENSIFY op: those layers fall back to LiteRT's builtin kernels (the `size` rows "
        "time like the builtin kernels on the dense file), and sparse + dynamic int8 can't "
        "be prepared at all. `latency` keeps the converter's encoding and, with int8, dense "
        "int8 weights.", ""]
    return lines
