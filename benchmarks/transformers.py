"""CPU latency of width-pruned transformers: dense against half the
feed-forward neurons and half the heads (`kp.prune_width`).

Two KerasHub backbones at random init (speed doesn't depend on the
values, so `importance="magnitude"`, no data): a BERT-base-shaped encoder
and a GPT-2-shaped decoder, both hidden 768, 12 heads of 64, feed-forward
3072, sequence 128, batch 8. Fewer layers than the originals (4, not 12)
and a 1,000-token vocabulary, so a run fits these 2 cores; every block is
the same, so the per-block ratio is the model's. (That the shrink is
exact is tested in tests/test_width.py.)

Dense and pruned are timed alternately in one process (compiled like
Keras's predict step), the median of the runs for each, wall time and CPU
time (`time.process_time`, all threads) side by side. The MAC ratio of
the transformer blocks (attention and feed-forward, counted by the width
rules) is the ideal speed-up.

    python -m benchmarks.transformers              # ~5 min on 2 cores, nothing else running
    python -m benchmarks.transformers --quick      # tiny shapes: a smoke run

Results: benchmarks/results/transformers.json (`--quick`:
transformers_quick.json); BENCHMARKS.md is regenerated (not after --quick).
"""

import time

from absl import app
from absl import flags
import keras
import numpy as np

from benchmarks import common
import keras_progprune as kp
from keras_progprune import backend

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "Tiny shapes and 2 repeats: a smoke run.")
flags.DEFINE_integer("repeats", 10, "Timed calls per model.")
flags.DEFINE_integer("layers", 4, "Transformer blocks per model.")

SHAPE = dict(hidden_dim=768, num_heads=12, intermediate_dim=3072)
QUICK = dict(hidden_dim=32, num_heads=4, intermediate_dim=64)


def _inputs(kind, batch, length, vocabulary):
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, vocabulary, (batch, length)).astype("int32"),
         "padding_mask": np.ones((batch, length), "int32")}
    if kind == "bert":
        x["segment_ids"] = np.zeros((batch, length), "int32")
    return x


def build(kind, shape, layers, length, vocabulary=1000):
    import keras_hub  # noqa: PLC0415

    common_args = dict(vocabulary_size=vocabulary, num_layers=layers,
                       max_sequence_length=length, **shape)
    if kind == "bert":
        return keras_hub.models.BertBackbone(**common_args)
    return keras_hub.models.GPT2Backbone(**common_args)


def _sequence(outputs):
    """BERT's backbone returns a dict; GPT-2's the sequence itself."""
    return outputs["sequence_output"] if isinstance(outputs, dict) else outputs


def time_pair(models, x, repeats, warmup=2):
    """Median wall and CPU milliseconds per call of each model, alternating."""
    tensors = keras.tree.map_structure(keras.ops.convert_to_tensor, x)
    calls = {name: backend.compile(lambda t, m=model: _sequence(m(t, training=False)))
             for name, model in models.items()}
    for call in calls.values():
        for _ in range(warmup):
            np.asarray(call(tensors))
    wall = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    names = list(calls)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            w, c = time.perf_counter(), time.process_time()
            np.asarray(calls[name](tensors))
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    return ({n: float(np.median(t) * 1e3) for n, t in wall.items()},
            {n: float(np.median(t) * 1e3) for n, t in cpu.items()})


def measure(kind, quick):
    shape, length, batch = (QUICK, 16, 2) if quick else (SHAPE, 128, 8)
    keras.utils.set_random_seed(0)
    dense = build(kind, shape, 2 if quick else FLAGS.layers, length)
    x = _inputs(kind, batch, length, 1000)
    pruned = kp.prune_width(dense, ffn=0.5, heads=0.5, importance="magnitude")
    wall, cpu = time_pair({"dense": dense, "pruned": pruned}, x,
                          2 if quick else FLAGS.repeats)
    macs = {"dense": common.block_macs(dense, length), "pruned": common.block_macs(pruned, length)}
    row = {"layers": 2 if quick else FLAGS.layers, "sequence": length, "batch": batch,
           **shape, "parameters": {"dense": int(dense.count_params()),
                                   "pruned": int(pruned.count_params())},
           "block_macs": macs, "mac_ratio": macs["dense"] / macs["pruned"],
           "wall_ms": wall, "cpu_ms": cpu,
           "speedup_wall": wall["dense"] / wall["pruned"],
           "speedup_cpu": cpu["dense"] / cpu["pruned"]}
    print(f"[transformers] {kind}: {row['speedup_wall']:.2f}x wall, "
          f"{row['speedup_cpu']:.2f}x CPU (MACs {row['mac_ratio']:.2f}x)", flush=True)
    return row


def main(argv):
    del argv
    rows = {kind: measure(kind, FLAGS.quick) for kind in ("bert", "gpt2")}
    common.finish("transformers_quick.json" if FLAGS.quick else "transformers.json", {
        "provenance": common.provenance(common.command_line()), "backend":
        keras.backend.backend(), "rows": rows}, report=not FLAGS.quick)


if __name__ == "__main__":
    app.run(main)
