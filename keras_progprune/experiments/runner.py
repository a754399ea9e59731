"""One training run, end to end: config -> data -> method -> outputs.

`examples/train.py` is a thin absl-flags front end to `run(Config(...))`.
Every method trains through `Trainer.fit`, so all methods share one recipe
(optimizer, learning-rate schedule, batch size, epochs) and write the same
output files.
"""

import collections
import dataclasses
import json
import os
import tempfile
import time
import warnings

import keras

from keras_progprune.experiments import data as data_lib
from keras_progprune import prune as prune_lib
from keras_progprune import report as report_lib
from keras_progprune import saving
from keras_progprune import structures
from keras_progprune import width as width_lib
from keras_progprune import tensorflow_export
from keras_progprune import wrapper as wrapper_lib
from keras_progprune.channels import graph as graph_lib
from keras_progprune.channels import macs as macs_lib
from keras_progprune.channels import shrink as shrink_lib
from keras_progprune.experiments import outputs
from keras_progprune.experiments import timing
from keras_progprune.experiments.config import make_method
from keras_progprune.experiments.config import validate
from keras_progprune.experiments.trainer import Trainer


def default_output_dir(config):
    return os.path.join(
        "runs",
        f"{config.model}-{config.dataset}-{config.method}-"
        f"s{config.target_sparsity:g}-{config.digest()}",
    )


def _prepare_output_dir(path, overwrite):
    if os.path.exists(os.path.join(path, "results.json")) and not overwrite:
        raise ValueError(
            f"`output_dir` already holds a finished run: {path!r}. Pass "
            "--overwrite to replace it, or choose another --output_dir."
        )
    os.makedirs(path, exist_ok=True)


class TrainedRun(collections.namedtuple(
        "TrainedRun", ["model", "extras", "trainer", "wall_time_s"])):
    """What `train` returns: the trained model (wrapped, if pruned), the
    method's extra results, the trainer (data, recipe, step count) and the
    training wall time."""


def train(config, log=True):
    """Trains one model with `config.method`; writes nothing but logs.

    Args:
        config: a validated-on-call `Config`.
        log: bool, write CSV/TensorBoard logs to `config.output_dir`.

    Returns:
        A `TrainedRun`.
    """
    validate(config)
    keras.utils.set_random_seed(config.seed)
    trainer = Trainer(config, log=log)
    method = make_method(config)
    start = time.time()
    model, extras = method.train(trainer)
    return TrainedRun(model, extras, trainer, time.time() - start)


def width_one_shot(config, model, trainer):
    """`kp.prune_width` of the trained dense `model` (ranked by activations
    over `calibration_batches` training batches), then `recovery_epochs`
    of distillation from it (`keras.distillation.Distiller`, logits,
    temperature 2) or of plain fine-tuning, with the run's recipe.

    Returns:
        `(the shrunk, recovered model, what to record in results.json)`.
    """
    dense_accuracy = trainer.evaluate(model)  # reported, never selected on
    student = width_lib.prune_width(
        model, ffn=config.width_ffn, heads=config.width_heads,
        data=trainer.train_ds.take(config.calibration_batches))
    record = {"ffn": config.width_ffn, "heads": config.width_heads,
              "recovery": config.width_recovery, "recovery_epochs": config.recovery_epochs,
              "dense_test_accuracy": dense_accuracy,
              "parameters": {"dense": int(model.count_params()),
                             "shrunk": int(student.count_params())},
              "test_accuracy_before_recovery": trainer.evaluate(student)}
    if config.width_recovery != "none" and config.recovery_epochs:
        trained = student
        if config.width_recovery == "distill":
            trained = keras.distillation.Distiller(
                teacher=model, student=student,
                distillation_losses=keras.distillation.LogitsDistillation(
                    temperature=2.0, loss=keras.losses.KLDivergence()),
                student_loss_weight=0.5)
        record["recovery_history"] = trainer.fit(trained, [], epochs=config.recovery_epochs)
    return student, record


def strip_if_pruned(model):
    """`strip_pruning(model)` if it holds wrappers, else `model` itself."""
    return prune_lib.strip_pruning(model) if wrapper_lib.collect_wrappers(model) else model


def run(config, overwrite=False):
    """Trains one model with `config.method` and writes every output file.

    Writes to `config.output_dir`: `config.json`, `history.csv`,
    `results.json`, `tensorboard/`, `history.png`, `sparsity.png` (the
    report's bar chart), `model.keras` (stripped,
    compressed, no optimizer state), `model.tflite` (sparse LiteRT) and
    `saved_model/` (stripped, SavedModel). `results.json` records their
    sizes beside a dense model's of the same architecture. With
    `structure="channel"` the three files hold the shrunk model, and
    `results.json["channels"]` gives parameters, MACs per example and
    batch-32 CPU latency, dense against shrunk. With `width_ffn` or
    `width_heads` (method "dense"), the trained model is width-pruned and
    recovered (`width_one_shot`), the files hold that model, and
    `results.json["width"]` records the accuracy before and after.

    Returns:
        The results dict (also in `results.json`).
    """
    validate(config)
    if not config.output_dir:
        config = dataclasses.replace(config, output_dir=default_output_dir(config))
    _prepare_output_dir(config.output_dir, overwrite)
    with open(os.path.join(config.output_dir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2, sort_keys=True)

    model, extras, trainer, wall = train(config)
    one_shot = bool(config.width_ffn or config.width_heads)
    if one_shot:
        model, extras["width"] = width_one_shot(config, model, trainer)
    test_accuracy = trainer.evaluate(model)
    channel = structures.get(config.structure).shrinks or one_shot
    if channel:
        # The deployed model is the shrunk one; the report reads the masks.
        report = report_lib.sparsity_report(model)
        with warnings.catch_warnings():
            # After `shrink_every` phases the model may have nothing left to remove.
            warnings.filterwarnings("ignore", "shrink found no channel")
            plain = shrink_lib.shrink(model)
    else:
        plain = strip_if_pruned(model)
        report = report_lib.sparsity_report(plain)
    # The deployment copies: compressed, no optimizer state; sparse LiteRT;
    # a SavedModel; and a dense model's files for scale. The exports need
    # TensorFlow: on JAX and PyTorch they run in one TensorFlow process.
    saving.save_model(plain, os.path.join(config.output_dir, "model.keras"),
                      include_optimizer=False)
    export_dir = os.path.join(config.output_dir, "saved_model")
    with tempfile.TemporaryDirectory() as dense_dir:
        reference = trainer.build_model()
        reference.save(os.path.join(dense_dir, "dense.keras"))
        tensorflow_export.run_many([
            (plain, "litert", os.path.join(config.output_dir, "model.tflite"), {}),
            (plain, "saved_model", export_dir, {}),
            (reference, "litert", os.path.join(dense_dir, "dense.tflite"), {"sparse": False})])
        files = outputs.file_sizes(config.output_dir, dense_dir)
    served = outputs.served_accuracy(export_dir, trainer.test_ds)

    dense_model = trainer.build_model()
    dense_params = int(dense_model.count_params())
    zeros = report["total"]["zeros"]
    results = {
        "config": dataclasses.asdict(config),
        "backend": keras.backend.backend(),
        "method": config.method,
        "test_accuracy": test_accuracy,
        "served_test_accuracy": served,
        "final_val_accuracy": outputs.final_value(extras.get("history"), "val_accuracy"),
        "sparsity": dict(report),
        "dense_parameters": dense_params,
        "remaining_parameters": (int(plain.count_params()) if channel
                                 else dense_params - zeros),
        "wall_time_s": wall,
        "epoch_wall_times_s": trainer.epoch_times,
        "steps": trainer.steps_trained,
        "steps_per_epoch": trainer.steps_per_epoch,
        "file_bytes": files,
        **{k: v for k, v in extras.items() if k != "history"},
    }
    if channel:
        latency = timing.latency_ms({"dense": dense_model, "shrunk": plain},
                                    data_lib.info(config.dataset)[0], batch_size=32)
        results["channels"] = {
            "removed_fraction": extras.get("channel_sparsity"),
            "parameters": {"dense": dense_params, "shrunk": int(plain.count_params())},
            "macs": {"dense": macs_lib.count(graph_lib.analyze(dense_model)),
                     "shrunk": macs_lib.count(graph_lib.analyze(plain))},
            "latency_ms_batch32_cpu": latency,
        }
    if "rounds" in results:
        outputs.write_rounds(os.path.join(config.output_dir, "rounds.csv"),
                             results["rounds"])
        print(outputs.rounds_table(results["rounds"]))
    with open(os.path.join(config.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True, default=outputs.jsonable)
    csv_path = os.path.join(config.output_dir, "history.csv")
    if os.path.exists(csv_path):
        outputs.plot_history(csv_path, os.path.join(config.output_dir, "history.png"),
                             f"{config.model} / {config.dataset} / {config.method}")
    # Per-layer sparsity, or channels kept per layer for channel pruning.
    outputs.plot_sparsity(report, os.path.join(config.output_dir, "sparsity.png"))
    return results
