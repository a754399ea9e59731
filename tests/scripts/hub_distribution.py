"""`prune_width` and progressive channel groups on a KerasHub task laid out
by its backbone's own `get_layout_map` (ModelParallel, JAX host devices),
checked against the same program on one device.

    python hub_distribution.py N      # N host devices

Prints one line, `RESULT {json}`, for the test.
"""

import json
import os
import sys

DEVICES = int(sys.argv[1])
os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES}"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import keras_progprune as kp  # noqa: E402
from keras_progprune import wrapper as wrapper_lib  # noqa: E402
from hub_families import causal_lm  # noqa: E402
from hub_families import token_batch  # noqa: E402

SIZES = dict(num_query_heads=8, num_key_value_heads=2)
PATHS = ("token_embedding/embeddings",
         "transformer_layer_0/feedforward_gate_dense/kernel",
         "transformer_layer_0/self_attention/attention_output/kernel",
         "transformer_layer_0/self_attention/query/kernel")


def run(weights, x):
    """`(prune_width's logits, its specs, the progressive masks, the shrunk
    model's logits, its specs)` for the task with `weights`."""
    task = causal_lm("Llama3", **SIZES)
    task.set_weights(weights)
    small = kp.prune_width(task, ffn=0.5, heads=0.5, data=[x])
    pruned = kp.prune_low_magnitude(task, kp.ConstantSparsity(0.5, 0, frequency=1),
                                    structure="channel")
    pruned.compile(optimizer="sgd",
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, x["token_ids"], epochs=1, verbose=0,
               callbacks=[kp.ProgressivePruningCallback()])
    masks = [np.asarray(keras.ops.convert_to_numpy(m)) for w in wrapper_lib.collect_wrappers(
        pruned) for m in w.masks]
    shrunk = kp.shrink(pruned)
    return (np.asarray(small.predict(x, verbose=0)), specs(small), masks,
            np.asarray(shrunk.predict(x, verbose=0)), specs(shrunk))


def specs(model):
    by_path = {v.path: v for v in model.backbone.weights}
    return {p: str(getattr(by_path[p].value.sharding, "spec", None)) for p in PATHS}


def main():
    task = causal_lm("Llama3", **SIZES)
    weights = [np.asarray(keras.ops.convert_to_numpy(w)) for w in task.weights]
    x = token_batch(task, batch=4)
    one = run(weights, x)
    mesh = keras.distribution.DeviceMesh((1, DEVICES), ["batch", "model"],
                                         devices=keras.distribution.list_devices())
    layout = keras_hub.models.Llama3Backbone.get_layout_map(mesh)
    with keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch").scope():
        many = run(weights, x)
    result = {
        "devices": len(keras.distribution.list_devices()),
        "width_max_diff": float(np.abs(one[0] - many[0]).max() / np.abs(one[0]).max()),
        "width_specs": many[1],
        "masks_equal": all(np.array_equal(a, b) for a, b in zip(one[2], many[2])),
        "shrunk_max_diff": float(np.abs(one[3] - many[3]).max() / np.abs(one[3]).max()),
        "shrunk_specs": many[4],
        "one_device_specs": one[1],
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
