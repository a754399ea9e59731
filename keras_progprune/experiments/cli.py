"""The training script: absl flags -> `Config` -> `run` (`keras-progprune-train`).

    keras-progprune-train                          # LeNet-300-100, MNIST, 95%
    keras-progprune-train --preset=resnet18_cifar10 --data_dir=/data/cifar10
    keras-progprune-train --method=snip --target_sparsity=0.98
    keras-progprune-train --backend=jax            # or KERAS_BACKEND=jax / torch
    keras-progprune-train --text=a.txt --family=llama3       # an LLM, made smaller
    keras-progprune-train --text=a.txt --hub_preset=/models/my_llama --llm_method=one_shot

Flags override a --preset's values. Outputs go to --output_dir (default:
runs/<model>-<dataset>-<method>-s<sparsity>-<config hash>). Seeds: --seed
seeds Python, NumPy, TensorFlow and the data shuffling; TensorFlow's own
kernels may still be nondeterministic (multi-threaded reductions), so
reruns agree to about 0.1% accuracy, not bit for bit.

The console command enters through the top-level `keras_progprune_cli`
module, which sets the backend before Keras is imported.
"""

import dataclasses

from absl import app
from absl import flags
from absl import logging
import keras

import keras_progprune_cli
from keras_progprune import experiments as experiment
from keras_progprune.experiments import llm
from keras_progprune import importance as importance_lib
from keras_progprune import methods
from keras_progprune import schedules

_DEFAULTS = experiment.Config()

flags.DEFINE_enum("backend", keras.backend.backend(), list(keras_progprune_cli.BACKENDS),
                  "Keras backend: tensorflow, jax or torch (or set KERAS_BACKEND).")
flags.DEFINE_string("preset", None, f"A named recipe: {sorted(experiment.PRESETS)}.")
flags.DEFINE_string("model", _DEFAULTS.model, "Model name (keras_progprune.models).")
flags.DEFINE_string("dataset", _DEFAULTS.dataset, "mnist, fashion_mnist, cifar10, cifar100.")
flags.DEFINE_string("method", _DEFAULTS.method, "Pruning method, one of "
                    f"{methods.available_methods()}.")
flags.DEFINE_float("target_sparsity", _DEFAULTS.target_sparsity, "Final sparsity in [0, 1).")
flags.DEFINE_enum("scope", "", ["", "layer", "global"],
                  "layer or global; empty = the method's default (global).")
flags.DEFINE_enum("schedule", _DEFAULTS.schedule, list(schedules.SCHEDULE_NAMES),
                  "Sparsity schedule of the progressive method.")
flags.DEFINE_string("structure", _DEFAULTS.structure,
                    "Mask shape of the progressive method: unstructured, channel "
                    "(whole channels; the saved model is shrunk), or n:m such "
                    "as 2:4 (n kept in every m input channels).")
flags.DEFINE_integer("shrink_every", _DEFAULTS.shrink_every,
                     "With --structure=channel: shrink the model between phases of this "
                     "many epochs, so training gets faster as it prunes; 0 = off.")
flags.DEFINE_enum("importance", _DEFAULTS.importance, importance_lib.names(),
                  "Progressive: what ranks the masks at each update (kp.importance). "
                  "magnitude (default); activation: mean |activation| per channel over "
                  "--calibration_batches training batches (needs --structure=channel); "
                  "taylor (or snip): |w * dL/dw| over them (gradual SNIP); grasp, synflow, "
                  "random: the at-initialization baselines' scores, recomputed at each "
                  "update.")
flags.DEFINE_float("width_ffn", _DEFAULTS.width_ffn,
                   "One-shot width pruning after a dense run: the fraction of every "
                   "block's feed-forward neurons removed, ranked by activations.")
flags.DEFINE_float("width_heads", _DEFAULTS.width_heads,
                   "One-shot width pruning: the fraction of every attention layer's heads "
                   "removed.")
flags.DEFINE_enum("width_recovery", _DEFAULTS.width_recovery, ["distill", "finetune", "none"],
                  "After one-shot width pruning: distill from the dense model, fine-tune, "
                  "or nothing.")
flags.DEFINE_integer("recovery_epochs", _DEFAULTS.recovery_epochs,
                     "Epochs of distillation or fine-tuning after one-shot width pruning.")
flags.DEFINE_integer("calibration_batches", _DEFAULTS.calibration_batches,
                     "Training batches whose activations rank the neurons and heads.")
flags.DEFINE_integer("prune_start", _DEFAULTS.prune_start, "First pruning epoch.")
flags.DEFINE_integer("prune_end", _DEFAULTS.prune_end,
                     "Epoch at whose start the target is reached; -1 = 2/3 of training.")
flags.DEFINE_integer("frequency", _DEFAULTS.frequency,
                     "Steps between mask updates (polynomial schedule).")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Training epochs (per round for lottery).")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Batch size.")
flags.DEFINE_enum("optimizer", _DEFAULTS.optimizer, ["sgd", "adam", "adamw"], "Optimizer.")
flags.DEFINE_float("lr", _DEFAULTS.lr, "Peak learning rate.")
flags.DEFINE_enum("lr_schedule", _DEFAULTS.lr_schedule, list(experiment.LR_SCHEDULES),
                  "Learning-rate schedule. cosine: decay to 0; hold_cosine: held until "
                  "the pruning target (--prune_end), then cosine to 0; step: /10 at 50% "
                  "and 75% of training; auto: hold_cosine for progressive, else cosine.")
flags.DEFINE_float("momentum", _DEFAULTS.momentum, "SGD momentum.")
flags.DEFINE_float("weight_decay", _DEFAULTS.weight_decay, "Weight decay.")
flags.DEFINE_float("label_smoothing", _DEFAULTS.label_smoothing, "Label smoothing.")
flags.DEFINE_boolean("augment", _DEFAULTS.augment, "Crop and flip (CIFAR only).")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed.")
flags.DEFINE_string("data_dir", None,
                    "Folder with the official raw files, or tfds's data dir (default: "
                    "tfds's own; examples/train.py defaults to the repository's MNIST).")
flags.DEFINE_integer("validation_size", _DEFAULTS.validation_size,
                     "Training examples held out for validation.")
flags.DEFINE_integer("train_examples", 0, "Use only this many training examples (0: all).")
flags.DEFINE_integer("eval_examples", 0, "Use only this many val/test examples (0: all).")
flags.DEFINE_string("output_dir", "", "Where outputs go (default under runs/).")
flags.DEFINE_boolean("overwrite", False, "Replace a finished run in --output_dir.")
flags.DEFINE_string("verbose", "auto", "Keras fit verbosity: auto, 0, 1 or 2.")
flags.DEFINE_multi_string("method_option", [],
                          "key=value option for the method, e.g. rounds_rate=0.2.")
# The LLM job (`keras_progprune.experiments.llm`): --text switches to it.
flags.DEFINE_list("text", [], "LLM job: text files to prune, distill and measure on "
                  "(the last tenth is held out).")
flags.DEFINE_string("hub_preset", "", "LLM job: the teacher, a KerasHub preset directory.")
flags.DEFINE_string("family", "", "LLM job: the teacher, a small config of this family "
                    "trained here on the text first.")
flags.DEFINE_string("llm_size", "small", "LLM job: the --family config's size, small or tiny.")
flags.DEFINE_string("llm_method", "progressive", "LLM job: progressive (during "
                    "distillation), one_shot, iterative or depth.")
flags.DEFINE_float("width_kv_heads", 0.0, "LLM job: fraction of key/value groups removed.")
flags.DEFINE_float("width_hidden", 0.0, "LLM job: fraction of hidden channels removed.")
flags.DEFINE_float("depth_blocks", 0.0, "LLM job: fraction of blocks removed.")
flags.DEFINE_integer("teacher_steps", 600, "LLM job: training steps of a --family teacher.")
flags.DEFINE_integer("llm_steps", 300, "LLM job: distillation steps.")
flags.DEFINE_integer("sequence_length", 64, "LLM job: tokens per training window.")

FLAGS = flags.FLAGS
_FLAG_NAMES = [f.name for f in FLAGS.get_flags_for_module(__name__)]


def _parse_option(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise app.UsageError(f"--method_option must be key=value. Received: {text!r}.")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def build_config():
    names = [f.name for f in dataclasses.fields(experiment.Config)]
    chosen = {n: FLAGS[n].value for n in names if n in FLAGS and FLAGS[n].present}
    chosen["method_options"] = dict(_parse_option(o) for o in FLAGS.method_option)
    if "data_dir" not in chosen:
        chosen["data_dir"] = FLAGS.data_dir
    if FLAGS.preset:
        return experiment.apply_preset(FLAGS.preset, chosen)
    values = {n: FLAGS[n].value for n in names if n in FLAGS}
    values.update(chosen)
    return experiment.Config(**values)


# LLM job field -> flag, where the names differ.
_LLM_FLAGS = {"size": "llm_size", "method": "llm_method", "ffn": "width_ffn",
              "heads": "width_heads", "kv_heads": "width_kv_heads", "hidden": "width_hidden",
              "blocks": "depth_blocks", "steps": "llm_steps"}


def build_llm_config():
    """The `LLMConfig` of the flags: each field from its flag when given."""
    values = {}
    for field in dataclasses.fields(llm.LLMConfig):
        flag = _LLM_FLAGS.get(field.name, field.name)
        if flag in FLAGS and (FLAGS[flag].present or flag in (
                "text", "hub_preset", "family")):
            values[field.name] = FLAGS[flag].value
    values["text"] = tuple(values.get("text", ()))
    return llm.LLMConfig(**values)


def _run_llm():
    config = build_llm_config()
    try:
        llm.validate(config)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    llm.run(config)


def _run(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.backend != keras.backend.backend():
        raise app.UsageError(
            f"--backend={FLAGS.backend} can't take effect: Keras was already imported "
            f"with the {keras.backend.backend()!r} backend. Run the command directly, or "
            f"set KERAS_BACKEND={FLAGS.backend} before Python starts.")
    logging.set_verbosity(logging.WARNING)  # TF's export chatter
    if FLAGS.text or FLAGS.hub_preset or FLAGS.family:
        return _run_llm()
    config = build_config()
    if FLAGS.preset:
        preset = experiment.PRESETS[FLAGS.preset]
        print(f"preset {FLAGS.preset}: expected {preset['expected']} ({preset['source']})")
    results = experiment.run(config, overwrite=FLAGS.overwrite)
    print()
    print(experiment.summary_table(results))
    print(f"\noutputs: {results['config']['output_dir']}")


def main(argv, data_dir=None):
    """Parses the flags in `argv` (program name first) and runs the experiment.

    Call it through `keras_progprune_cli.main`, which sets the backend and
    quiets TensorFlow before Keras is imported.

    Args:
        argv: the command line.
        data_dir: the default of `--data_dir`.
    """
    if data_dir is not None:
        FLAGS.set_default("data_dir", data_dir)
    # `--help` lists the flags of the program's own module: make these its
    # flags (they are defined here, not in the console script).
    for name in _FLAG_NAMES:
        FLAGS.register_key_flag_for_module(argv[0], FLAGS[name])
    return app.run(_run, argv=argv)
