"""Every keras.applications family through the whole pipeline.

For one model of each family (`weights=None`, the smallest allowed input,
10 classes): prune (global PolynomialDecay to 50%) -> 2 training steps ->
strip -> `.keras` round trip (`kp.save_model`) -> SavedModel export ->
`serve`. Each check records "ok" or the error; outputs are compared in
inference mode (max abs difference <= 1e-4 relative to the output scale).

    python -m benchmarks.applications            # ~15 min on 2 cores
    python -m benchmarks.applications --only=MobileNetV3Small,ConvNeXtTiny

Cells are cached in benchmarks/results/applications/ (resumable; delete a
file to rerun it).
"""

import json
import os
import tempfile
import time
import traceback

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from benchmarks import common
import keras_progprune as kp

FLAGS = flags.FLAGS
flags.DEFINE_list("only", [], "Run only these models.")

# One model per module of keras.applications (Keras 3.15 has no RegNet),
# with its smallest allowed input side.
MODELS = [
    ("ConvNeXtTiny", 32), ("DenseNet121", 32), ("EfficientNetB0", 32),
    ("EfficientNetV2B0", 32), ("InceptionResNetV2", 75), ("InceptionV3", 75),
    ("MobileNet", 32), ("MobileNetV2", 32), ("MobileNetV3Small", 32),
    ("NASNetMobile", 32), ("ResNet50", 32), ("ResNet50V2", 32),
    ("VGG16", 32), ("VGG19", 32), ("Xception", 71),
]
TOLERANCE = 1e-4


def _close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if not np.isfinite(b).all():
        return False
    scale = max(1.0, float(np.abs(b).max()))
    return float(np.abs(a - b).max()) / scale <= TOLERANCE


def run_one(name, side):
    row = {"model": name, "input": side}
    start = time.time()
    keras.utils.set_random_seed(0)
    kwargs = dict(weights=None, input_shape=(side, side, 3), classes=10)
    if name.startswith("MobileNetV3"):
        kwargs["include_preprocessing"] = False
    model = getattr(keras.applications, name)(**kwargs)
    row["parameters"] = int(model.count_params())
    # 2 steps of batch 4 (with batches of 2, BatchNorm statistics over a 1x1
    # feature map turn some dense models' outputs to NaN, pruned or not).
    x = np.random.default_rng(0).uniform(0, 1, (8, side, side, 3)).astype("float32")
    y = np.arange(8) % 10
    steps = ["prune", "train", "strip", "keras_round_trip", "serve"]
    row.update({s: "not run" for s in steps})
    try:
        schedule = kp.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=1, frequency=1)
        pruned = kp.prune_low_magnitude(model, schedule, scope="global")
        row["prune"] = "ok"
        pruned.compile(keras.optimizers.SGD(1e-3),
                       keras.losses.SparseCategoricalCrossentropy())
        pruned.fit(x, y, batch_size=4, epochs=1, verbose=0,
                   callbacks=[kp.ProgressivePruningCallback()])
        row["train"] = "ok"
        row["pruned_fraction"] = kp.sparsity_report(pruned)["total"]["sparsity"]
        expected = pruned.predict(x, verbose=0)
        if not np.isfinite(expected).all():
            raise ValueError("the pruned model's outputs are not finite")
        plain = kp.strip_pruning(pruned)
        row["strip"] = "ok" if _close(plain.predict(x, verbose=0), expected) else "outputs differ"
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.keras")
            kp.save_model(plain, path, include_optimizer=False)
            again = keras.saving.load_model(path)
            row["keras_round_trip"] = ("ok" if _close(again.predict(x, verbose=0), expected)
                                       else "outputs differ")
            export = os.path.join(tmp, "saved_model")
            plain.export(export, verbose=False)
            loaded = tf.saved_model.load(export)  # keep it alive while serving
            served = loaded.serve(tf.constant(x))
            row["serve"] = "ok" if _close(served, expected) else "outputs differ"
    except Exception as e:  # recorded, not hidden: the table shows it
        failed = next(s for s in steps if row[s] == "not run")
        row[failed] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        row["traceback"] = traceback.format_exc()[-2000:]
    row["seconds"] = time.time() - start
    return row


def main(argv):
    del argv
    folder = os.path.join(common.RESULTS_DIR, "applications")
    os.makedirs(folder, exist_ok=True)
    prov = common.provenance(common.command_line())
    for name, side in MODELS:
        if FLAGS.only and name not in FLAGS.only:
            continue
        path = os.path.join(folder, f"{name}.json")
        if os.path.exists(path):
            continue
        print(f"[applications] {name}", flush=True)
        row = run_one(name, side)
        row["provenance"] = prov
        print(f"[applications] {name}: " + ", ".join(
            f"{k}={row[k]}" for k in ("prune", "train", "strip", "keras_round_trip", "serve")),
            flush=True)
        common.write_result(os.path.join("applications", f"{name}.json"), row)


if __name__ == "__main__":
    app.run(main)
