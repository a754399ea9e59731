"""Pruning under `keras.distribution` on host CPU devices (JAX), checked
against a single-device run of the same program in the same process.

    python keras_distribution.py checks N       # one process, N devices
    python keras_distribution.py process I P PORT
                                                # process I of P on localhost

`XLA_FLAGS=--xla_force_host_platform_device_count=N` is set here, before
JAX starts. Each run prints one line, `RESULT {json}`, for the test.
"""

import hashlib
import json
import os
import sys
import tempfile

MODE = sys.argv[1]
DEVICES = int(sys.argv[2]) if MODE == "checks" else 2
os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES}"

import keras  # noqa: E402
import numpy as np  # noqa: E402

if MODE == "process":
    PROCESS, PROCESSES, PORT = (int(a) for a in sys.argv[2:5])
    keras.distribution.initialize(job_addresses=f"127.0.0.1:{PORT}",
                                  num_processes=PROCESSES, process_id=PROCESS)

import keras_progprune as kp  # noqa: E402
from keras_progprune import wrapper as wrapper_lib  # noqa: E402
from keras_progprune import thresholds  # noqa: E402

BATCH, STEPS = 16, 8
SCHEDULE = dict(initial_sparsity=0.0, final_sparsity=0.75, begin_step=0, end_step=12,
                frequency=2)


def data(n=BATCH * STEPS, features=16, classes=4):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, features)).astype("float32"),
            rng.integers(0, classes, n).astype("int32"))


def mlp():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16,))
    x = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="middle")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))


def embedding_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,), dtype="int32")
    x = keras.layers.Embedding(32, 8, name="emb")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu", name="big")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))


def pruned(build, scope, structure="unstructured"):
    model = kp.prune_low_magnitude(build(), kp.PolynomialDecay(**SCHEDULE), scope=scope,
                                   structure=structure)
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def fit(model, x, y, epochs=2, callbacks=(), batch_size=BATCH):
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False,
              callbacks=[kp.ProgressivePruningCallback(), *callbacks])
    return model


def masks(model):
    return [np.asarray(m.numpy()) for w in wrapper_lib.collect_wrappers(model) for m in w.masks]


def digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def exact(model, scope, structure):
    """Whether the masks keep exactly the schedule's final count (None for
    channels, whose count is in channels, checked by equality)."""
    found = masks(model)
    if structure == "2:4":
        return all(int(m.sum()) * 2 == m.size for m in found)
    if structure != "unstructured":
        return None
    final = SCHEDULE["final_sparsity"]
    if scope == "global":
        return int(sum(m.sum() for m in found)) == thresholds.keep_count(
            sum(m.size for m in found), final)
    return all(int(m.sum()) == thresholds.keep_count(m.size, final) for m in found)


def _largest_difference(p, q):
    """The largest |p - q| of two variables (masks are bool: read as 0/1)."""
    return float(np.max(np.abs(np.asarray(p.numpy(), np.float64)
                               - np.asarray(q.numpy(), np.float64))))


def compare(reference, model, scope="global", structure="unstructured"):
    a, b = masks(reference), masks(model)
    return {"masks_equal": len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b)),
            "exact": exact(model, scope, structure),
            "max_weight_diff": max(_largest_difference(p, q)
                                   for p, q in zip(reference.weights, model.weights))}


def specs(model):
    """`{weight path: (weight spec, mask spec)}` for the wrapped weights."""
    out = {}
    for wrapper in wrapper_lib.collect_wrappers(model):
        for w, m in zip(wrapper.pruned_weights, wrapper.masks):
            out[w.path] = (str(w.value.sharding.spec), str(m.value.sharding.spec))
    return out


def model_parallel(devices):
    mesh = keras.distribution.DeviceMesh((max(1, devices // 2), 2) if devices > 1 else (1, 1),
                                         ["batch", "model"], keras.distribution.list_devices())
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map["big/kernel"] = (None, "model")
    layout_map["emb/embeddings"] = (None, "model")
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")


def shrink_fit(x, y):
    model = pruned(mlp, "layer", "channel")
    return kp.fit_shrinking(model, x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0)


class Crash(keras.callbacks.Callback):
    def __init__(self, at_step):
        super().__init__()
        self.at_step, self.seen = at_step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at_step:
            raise RuntimeError("simulated preemption")


def checks():
    x, y = data()
    ids = np.random.default_rng(2).integers(0, 32, (BATCH * STEPS, 4)).astype("int32")
    results = {"devices": len(keras.distribution.list_devices())}
    cases = [("global", "unstructured"), ("layer", "unstructured"), ("global", "2:4"),
             ("layer", "channel")]
    reference = {case: fit(pruned(mlp, *case), x, y) for case in cases}
    ref_embedding = {scope: fit(pruned(embedding_model, scope), ids, y)
                     for scope in ("global", "layer")}
    ref_straight = fit(pruned(mlp, "global"), x, y, epochs=3)
    ref_shrunk = shrink_fit(x, y)
    tmp = tempfile.mkdtemp()

    with keras.distribution.DataParallel(devices=keras.distribution.list_devices()).scope():
        for case in cases:
            results[f"data_parallel/{case[0]}/{case[1]}"] = compare(
                reference[case], fit(pruned(mlp, *case), x, y), *case)
        model = fit(pruned(mlp, "global"), x, y)
        distributed_out = np.asarray(model.predict(x, batch_size=BATCH, verbose=0))
        kp.save_model(model, os.path.join(tmp, "dp.keras"))
        # Resume: crash in epoch 2, a fresh model resumes from the backup.
        backup = os.path.join(tmp, "backup")
        try:
            fit(pruned(mlp, "global"), x, y, epochs=3,
                callbacks=[keras.callbacks.BackupAndRestore(backup), Crash(STEPS + 3)])
        except RuntimeError:
            pass
        resumed = fit(pruned(mlp, "global"), x, y, epochs=3,
                      callbacks=[keras.callbacks.BackupAndRestore(backup)])
        results["backup_and_restore"] = compare(ref_straight, resumed)
        results["backup_and_restore"]["step"] = int(
            wrapper_lib.collect_wrappers(resumed)[0].pruning_step.numpy())
        shrunk = shrink_fit(x, y)
        results["fit_shrinking"] = {
            "parameters": [p["parameters"] for p in shrunk.phases],
            "reference_parameters": [p["parameters"] for p in ref_shrunk.phases],
            "max_weight_diff": max(_largest_difference(p, q)
                                   for p, q in zip(ref_shrunk.model.weights,
                                                   shrunk.model.weights)),
            "devices_per_variable": sorted({len(w.value.sharding.device_set)
                                            for w in shrunk.model.weights})}

    with model_parallel(results["devices"]).scope():
        for scope in ("global", "layer"):
            model = fit(pruned(embedding_model, scope), ids, y)
            entry = compare(ref_embedding[scope], model, scope)
            entry["specs"] = specs(model)
            results[f"model_parallel/{scope}"] = entry
        kp.save_model(model, os.path.join(tmp, "mp.keras"))
        try:
            shrink_fit(x, y)
        except ValueError as e:
            results["model_parallel_fit_shrinking_error"] = str(e)
        mp_out = np.asarray(model.predict(ids, batch_size=BATCH, verbose=0))

    # On one device, no distribution: the files load and give equal outputs.
    loaded = kp.load_model(os.path.join(tmp, "dp.keras"))
    results["saved_dp_max_diff"] = float(np.max(np.abs(
        np.asarray(loaded.predict(x, batch_size=BATCH, verbose=0)) - distributed_out)))
    loaded = kp.load_model(os.path.join(tmp, "mp.keras"))
    results["saved_mp_max_diff"] = float(np.max(np.abs(
        np.asarray(loaded.predict(ids, batch_size=BATCH, verbose=0)) - mp_out)))
    return results


def process():
    """Process PROCESS of PROCESSES: one DataParallel `fit` over every
    process's devices; each process feeds its own slice of every batch."""
    x, y = data()
    reference = fit(pruned(mlp, "global"), x, y)  # this process alone, one device
    local = BATCH // PROCESSES
    rows = np.arange(len(x)).reshape(STEPS, BATCH)[:, PROCESS * local:(PROCESS + 1) * local]
    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices(), auto_shard_dataset=False)
    with distribution.scope():
        model = fit(pruned(mlp, "global"), x[rows.ravel()], y[rows.ravel()], batch_size=local)
    result = compare(reference, model)
    result.update(process=PROCESS, devices=len(keras.distribution.list_devices()),
                  digest=digest(masks(model)))
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(checks() if MODE == "checks" else process()), flush=True)
