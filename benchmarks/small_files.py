"""File sizes, LiteRT latency and quantized accuracy of pruned LeNets (real MNIST).

For LeNet-300-100 and LeNet-5: dense, 90/95/98% unstructured (global
progressive) and 2:4, each trained with the short recipe below; and
channel-shrunk models: 50% and 75% of the channels removed (progressive,
`structure="channel"`, layer scope, then `kp.shrink`), and shrunk +
unstructured (the shrunk model pruned again to 90% of its weights, global
progressive, for the same recipe: channels first, then weights). Each is
saved in every format a user ships:

- `.keras` (plain `model.save`), `.keras` compressed (`kp.save_model(...,
  include_optimizer=False)`), the SavedModel folder;
- `.tflite` float, sparse, sparse + dynamic int8 (`kp.export_litert`, the
  default `optimize_for="latency"`), and the same two with
  `optimize_for="size"`;
- Keras int8 (`quantize("int8")` then `kp.save_model`).

Test accuracy: the Keras float model, the sparse+int8 `.tflite` (LiteRT
interpreter) and the Keras int8 model. LiteRT latency: batch 1 and 32, median
of repeated runs, a row's files timed side by side with the dense model's
float `.tflite` (alternating, one process), so every speed-up is a ratio
from one run; XNNPACK on where it can prepare the file.

    python -m benchmarks.small_files            # ~25 min on 2 cores
    python -m benchmarks.small_files --quick    # 1 epoch, a smoke run
    python -m benchmarks.small_files --train_only   # cache the models (any load)
    python -m benchmarks.small_files --only=dense,ch50%   # remeasure some rows

Trained models are cached in /tmp/progprune_small_files, so a rerun only
measures. Results: benchmarks/results/small_files.json; BENCHMARKS.md is
regenerated at the end (not after `--quick`).
"""

import json
import os
import tempfile
import warnings

from absl import app
from absl import flags
import keras
import numpy as np

from benchmarks import common
import keras_progprune as kp
from keras_progprune import experiments
from keras_progprune import litert

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "1 epoch per model, for a smoke run.")
flags.DEFINE_string("cache", "/tmp/progprune_small_files", "Trained-model cache.")
flags.DEFINE_list("only", [], "Variants to measure (e.g. dense,ch50%); the other rows are "
                  "kept from the existing result file.")
flags.DEFINE_boolean("train_only", False, "Train and cache the models, measure nothing "
                     "(training needs no quiet machine; the latencies do).")
flags.DEFINE_string("data_dir", os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "data", "mnist"), "MNIST IDX folder.")

# Short recipes (this table is about size; accuracy rows say which recipe).
RECIPES = {"lenet_300_100": dict(epochs=6, batch_size=60, optimizer="adam", lr=1.2e-3,
                                 lr_schedule="cosine"),
           "lenet5": dict(epochs=4, batch_size=60, optimizer="adam", lr=1.2e-3,
                          lr_schedule="cosine")}
VARIANTS = [("dense", "dense", 0.0, "unstructured"),
            ("90%", "progressive", 0.9, "unstructured"),
            ("95%", "progressive", 0.95, "unstructured"),
            ("98%", "progressive", 0.98, "unstructured"),
            ("2:4", "progressive", 0.5, "2:4"),
            ("ch50%", "progressive", 0.5, "channel"),
            ("ch75%", "progressive", 0.75, "channel")]
# Shrunk, then pruned again: (label, the shrunk variant it starts from, sparsity).
THEN_WEIGHTS = [("ch50%+90%", "ch50%", 0.9), ("ch75%+90%", "ch75%", 0.9)]


def _cached(model_name, label):
    return os.path.join(FLAGS.cache, f"{model_name}_{label.replace(':', 'of')}"
                        f"{'_quick' if FLAGS.quick else ''}.keras")


def _recipe(model_name):
    recipe = dict(RECIPES[model_name])
    if FLAGS.quick:
        recipe["epochs"] = 1
    return recipe


def _keep(plain, path):
    os.makedirs(FLAGS.cache, exist_ok=True)
    kp.save_model(plain, path, include_optimizer=False)
    return keras.saving.load_model(path)


def _trained(model_name, label, method, sparsity, structure):
    path = _cached(model_name, label)
    if os.path.exists(path):
        return keras.saving.load_model(path)
    config = experiments.Config(
        model=model_name, method=method, target_sparsity=sparsity, structure=structure,
        scope="layer" if structure == "channel" else "global", data_dir=FLAGS.data_dir,
        verbose="0", seed=0, output_dir=os.path.join(FLAGS.cache, "run"),
        **_recipe(model_name))
    print(f"[small_files] training {model_name} {label}", flush=True)
    model, _, _, _ = experiments.train(config, log=False)
    plain = kp.shrink(model) if structure == "channel" else experiments.strip_if_pruned(model)
    return _keep(plain, path)


def _pruned_again(model_name, label, shrunk, sparsity):
    """`shrunk`, pruned to `sparsity` of its weights while trained again with
    the model's recipe (Adam, cosine learning rate, global progressive)."""
    path = _cached(model_name, label)
    if os.path.exists(path):
        return keras.saving.load_model(path)
    print(f"[small_files] training {model_name} {label}", flush=True)
    recipe = _recipe(model_name)
    train = kp.data.load("mnist", "train", recipe["batch_size"], data_dir=FLAGS.data_dir,
                         shuffle_seed=0)
    steps = recipe["epochs"] * kp.data.steps_per_epoch(train)
    model = kp.prune_low_magnitude(
        shrunk, kp.PolynomialDecay(0.0, sparsity, 0, int(steps * 0.75),
                                   frequency=max(1, steps // 100)), scope="global")
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        recipe["lr"], steps)), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train, epochs=recipe["epochs"], verbose=0,
              callbacks=[kp.ProgressivePruningCallback()])
    return _keep(kp.strip_pruning(model), path)


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _accuracy(predict, x, y):
    return float((np.asarray(predict(x)).argmax(-1) == y).mean())


def measure(model, x, y, tmp, reference=None):
    """Sizes, accuracy and latency of `model` in every format; `reference`:
    the dense model's float `.tflite`, timed beside this row's files so
    each speed-up is a ratio taken in one alternating run."""
    files = {
        "keras": os.path.join(tmp, "plain.keras"),
        "keras_compressed": os.path.join(tmp, "small.keras"),
        "saved_model": os.path.join(tmp, "saved_model"),
        "tflite_float": os.path.join(tmp, "float.tflite"),
        "tflite_sparse": os.path.join(tmp, "sparse.tflite"),
        "tflite_sparse_int8": os.path.join(tmp, "sparse_int8.tflite"),
        "tflite_size": os.path.join(tmp, "size.tflite"),
        "tflite_size_int8": os.path.join(tmp, "size_int8.tflite"),
        "keras_int8": os.path.join(tmp, "int8.keras"),
    }
    model.save(files["keras"])
    kp.save_model(model, files["keras_compressed"], include_optimizer=False)
    model.export(files["saved_model"], verbose=False)
    kp.export_litert(model, files["tflite_float"], sparse=False)
    kp.export_litert(model, files["tflite_sparse"])
    kp.export_litert(model, files["tflite_sparse_int8"], quantize="dynamic_int8")
    with warnings.catch_warnings():  # "size" warns that it is slow on x86: measured here
        warnings.simplefilter("ignore")
        kp.export_litert(model, files["tflite_size"], optimize_for="size")
        kp.export_litert(model, files["tflite_size_int8"], quantize="dynamic_int8",
                         optimize_for="size")
    row = {"sizes": {k: _size(p) for k, p in files.items() if k != "keras_int8"},
           "report": kp.sparsity_report(model)["total"]}
    row["accuracy"] = {
        "keras_float": _accuracy(lambda a: model.predict(a, batch_size=500, verbose=0), x, y),
        "tflite_sparse": _accuracy(lambda a: litert.predict(files["tflite_sparse"], a), x, y),
        "tflite_sparse_int8": _accuracy(
            lambda a: litert.predict(files["tflite_sparse_int8"], a), x, y),
    }
    np.testing.assert_allclose(litert.predict(files["tflite_sparse"], x[:64]),
                               model.predict(x[:64], verbose=0), atol=1e-4)
    quantized = keras.models.clone_model(model)
    quantized.set_weights(model.get_weights())
    quantized.quantize("int8")
    kp.save_model(quantized, files["keras_int8"], include_optimizer=False)
    reloaded = keras.saving.load_model(files["keras_int8"])
    row["sizes"]["keras_int8"] = _size(files["keras_int8"])
    row["accuracy"]["keras_int8"] = _accuracy(
        lambda a: reloaded.predict(a, batch_size=500, verbose=0), x, y)
    row["latency_ms"] = {}
    row["parameters"] = int(sum(np.prod(w.shape) for w in model.weights))
    timed = {name: files[name] for name in ("tflite_float", "tflite_sparse",
                                            "tflite_sparse_int8", "tflite_size",
                                            "tflite_size_int8")}
    if reference is not None:
        timed["reference"] = reference
    for batch in (1, 32):  # the row's files side by side, alternating
        latency, xnnpack = common.litert_latencies(timed, x, batch,
                                                   200 if batch == 1 else 50)
        for name, ms in latency.items():
            row["latency_ms"][f"{name}_b{batch}"] = ms
            row["latency_ms"][f"{name}_xnnpack"] = xnnpack[name]
    return row


def _holds(model):
    report = kp.check_m_by_n(model, 2, 4)
    return f"{sum(r['holds'] for r in report.values())}/{len(report)}"


def main(argv):
    del argv
    test = kp.data.load("mnist", "test", 10000, data_dir=FLAGS.data_dir)
    x, y = next(iter(test))
    x, y = x.numpy(), y.numpy()
    rows = {}

    result_name = "small_files_quick.json" if FLAGS.quick else "small_files.json"
    if FLAGS.only:
        with open(os.path.join(common.RESULTS_DIR, result_name)) as f:
            rows = json.load(f)["rows"]

    references = tempfile.TemporaryDirectory()

    def add(model_name, label, model, structure):
        if FLAGS.train_only:
            return
        reference = os.path.join(references.name, f"{model_name}.tflite")
        if not os.path.exists(reference):  # the dense float file, timed in every row
            keras.utils.set_random_seed(0)
            kp.export_litert(_trained(model_name, "dense", "dense", 0.0, "unstructured"),
                             reference, sparse=False)
        with tempfile.TemporaryDirectory() as tmp:
            rows[f"{model_name}/{label}"] = {
                "model": model_name, "variant": label,
                "m_by_n_holds": _holds(model) if structure == "2:4" else None,
                **measure(model, x, y, tmp, reference)}
        print(f"[small_files] {model_name} {label}: {rows[f'{model_name}/{label}']['sizes']}",
              flush=True)

    for model_name in RECIPES:
        trained = {}
        for label, method, sparsity, structure in VARIANTS:
            if FLAGS.only and label not in FLAGS.only and not any(
                    start == label and then in FLAGS.only for then, start, _ in THEN_WEIGHTS):
                continue
            keras.utils.set_random_seed(0)
            trained[label] = _trained(model_name, label, method, sparsity, structure)
            if not FLAGS.only or label in FLAGS.only:
                add(model_name, label, trained[label], structure)
        for label, start, sparsity in THEN_WEIGHTS:
            if FLAGS.only and label not in FLAGS.only:
                continue
            keras.utils.set_random_seed(0)
            add(model_name, label, _pruned_again(model_name, label, trained[start], sparsity),
                "unstructured")
    if FLAGS.train_only:
        return
    # BENCHMARKS.md section 3 is regenerated (not after --quick).
    common.finish(result_name, {
        "provenance": common.provenance(common.command_line()),
        "recipes": RECIPES, "quick": FLAGS.quick, "then_weights": THEN_WEIGHTS, "rows": rows},
        report=not FLAGS.quick)


if __name__ == "__main__":
    app.run(main)
