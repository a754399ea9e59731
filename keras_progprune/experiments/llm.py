"""An LLM user's main job: a KerasHub causal LM made smaller on the user's
text, then distilled from the original, and written as a KerasHub preset.

    keras-progprune-train --text=a.txt,b.txt --family=llama3
    keras-progprune-train --text=corpus.txt --hub_preset=/models/my_llama \\
        --llm_method=one_shot --width_ffn=0.5 --width_hidden=0.25

The teacher is a KerasHub preset directory (its own tokenizer reads the
text), or a family with a small configuration trained here on the text
first (bytes as tokens). Text files may be gzipped (`.gz`). The last tenth
of the text is held out: the teacher and the student are measured on it
once, at the end. Methods:

- `progressive`: the student is the teacher wrapped with
  `structure="channel"`; its feed-forward neurons and query heads (one
  fraction for both) are masked more and more during the first half of the
  distillation, then `kp.shrink` removes them. Hidden channels and blocks,
  when asked for, are removed one-shot before (Minitron ranks them on the
  trained teacher; they have no gradual form here).
- `one_shot`: `kp.prune_width` (and `kp.prune_depth`), then distillation.
- `iterative`: half of the fraction, half the steps, then the rest.
- `depth`: `kp.prune_depth` only, then distillation.

Outputs in `output_dir`: `model/` (a KerasHub preset directory: load it with
`keras_hub.models.CausalLM.from_preset`), `results.json`, and `README.md`,
a short model card with the table of sizes, perplexity and speed and the
command that made it.
"""

import dataclasses
import gzip
import json
import math
import os
import shlex
import sys
import time

import keras
import numpy as np

import keras_progprune as kp
from keras_progprune.experiments import text as text_lib

METHODS = ("progressive", "one_shot", "iterative", "depth")
# Small configurations of the families `--family` takes (bytes as tokens).
_GQA = dict(vocabulary_size=text_lib.VOCABULARY_SIZE, num_query_heads=8,
            num_key_value_heads=2)
FAMILIES = {
    "llama3": ("Llama3", dict(_GQA)),
    "mistral": ("Mistral", dict(_GQA)),
    "qwen3": ("Qwen3", dict(_GQA, head_dim=16)),
    "gemma": ("Gemma", dict(_GQA, head_dim=16)),
}
SIZES = {
    "tiny": dict(num_layers=2, hidden_dim=32, intermediate_dim=64),
    "small": dict(num_layers=4, hidden_dim=128, intermediate_dim=512),
}


@dataclasses.dataclass
class LLMConfig:
    """What the LLM job does; see the module docstring."""

    text: tuple = ()
    hub_preset: str = ""
    family: str = ""
    size: str = "small"
    method: str = "progressive"
    ffn: float = 0.5
    heads: float = 0.5
    kv_heads: float = 0.0
    hidden: float = 0.0
    blocks: float = 0.0
    teacher_steps: int = 600
    steps: int = 300
    batch_size: int = 16
    sequence_length: int = 64
    lr: float = 1e-3
    calibration_batches: int = 8
    seed: int = 0
    output_dir: str = "runs/llm"
    verbose: str = "auto"


def _fraction(name, value, top=1.0):
    if not 0.0 <= value < top:
        raise ValueError(f"`{name}` must be in [0, {top:g}). Received: {name}={value!r}.")


def validate(config):
    """Raises a `ValueError` naming the first bad field and its fix."""
    if not config.text:
        raise ValueError("Pass the text to train and measure on: --text=FILE[,FILE...]. "
                         "Received: text=().")
    for path in config.text:
        if not os.path.isfile(path):
            raise ValueError(f"Text file not found: {path!r} (from --text). "
                             "Give existing files, comma-separated.")
    if bool(config.hub_preset) == bool(config.family):
        raise ValueError(
            "Pass exactly one teacher: --hub_preset=DIR (a KerasHub preset directory) or "
            f"--family=NAME, one of {sorted(FAMILIES)}. Received: "
            f"hub_preset={config.hub_preset!r}, family={config.family!r}.")
    if config.hub_preset and not os.path.isfile(os.path.join(config.hub_preset,
                                                             "config.json")):
        raise ValueError(
            f"--hub_preset={config.hub_preset!r} is not a KerasHub preset directory (it has "
            "no config.json). Save one with `causal_lm.save_to_preset(dir)`.")
    if config.family and config.family not in FAMILIES:
        raise ValueError(f"Unknown --family={config.family!r}. Use one of "
                         f"{sorted(FAMILIES)}, or --hub_preset for any other model.")
    if config.size not in SIZES:
        raise ValueError(f"--llm_size must be one of {sorted(SIZES)}. "
                         f"Received: size={config.size!r}.")
    if config.method not in METHODS:
        raise ValueError(f"--llm_method must be one of {METHODS}. "
                         f"Received: method={config.method!r}.")
    for name in ("ffn", "heads", "kv_heads", "hidden", "blocks"):
        _fraction(name, getattr(config, name))
    if config.method == "depth" and not config.blocks:
        raise ValueError("--llm_method=depth removes blocks: pass --depth_blocks in "
                         "(0, 1). Received: blocks=0.0.")
    if config.method == "progressive" and config.heads not in (0.0, config.ffn):
        raise ValueError(
            "--llm_method=progressive masks feed-forward neurons and query heads on one "
            f"schedule, so they share one fraction. Received: ffn={config.ffn}, "
            f"heads={config.heads}. Pass the same --width_heads as --width_ffn, or use "
            "--llm_method=one_shot for different fractions.")
    if config.method == "progressive" and config.kv_heads:
        raise ValueError("--llm_method=progressive doesn't take --width_kv_heads yet; use "
                         "--llm_method=one_shot. Received: kv_heads="
                         f"{config.kv_heads}.")
    for name in ("teacher_steps", "steps", "batch_size", "sequence_length",
                 "calibration_batches"):
        if getattr(config, name) < 1:
            raise ValueError(f"`{name}` must be at least 1. "
                             f"Received: {name}={getattr(config, name)!r}.")


def _say(message):
    print(f"[llm] {message}", flush=True)


def _teacher_and_tokens(config):
    """`(teacher CausalLM, token ids of the text, whether tokens are bytes,
    the preset's preprocessor or None)`. The teacher's preprocessor is
    detached: the job feeds token ids."""
    import keras_hub  # noqa: PLC0415 (the LLM job needs KerasHub; the rest doesn't)

    raw = b"".join(_read(path) for path in config.text)
    if config.hub_preset:
        _say(f"loading {config.hub_preset}")
        model = keras_hub.models.CausalLM.from_preset(config.hub_preset)
        tokenizer = getattr(model.preprocessor, "tokenizer", None)
        if tokenizer is None:
            raise ValueError(f"The preset {config.hub_preset!r} has no tokenizer to read the "
                             "text with. Save it with its preprocessor.")
        tokens = np.asarray(keras.ops.convert_to_numpy(
            tokenizer(raw.decode("utf-8", errors="replace")))).astype("int32").ravel()
        preprocessor, model.preprocessor = model.preprocessor, None
        return model, tokens, False, preprocessor
    family, base = FAMILIES[config.family]
    backbone = getattr(keras_hub.models, f"{family}Backbone")(**base, **SIZES[config.size])
    model = getattr(keras_hub.models, f"{family}CausalLM")(backbone=backbone,
                                                          preprocessor=None)
    return model, np.frombuffer(raw, np.uint8).astype("int32"), True, None


def _read(path):
    """A text file's bytes; a `.gz` file is decompressed."""
    with open(path, "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if path.endswith(".gz") else raw


def _split(tokens, length):
    cut = int(len(tokens) * 0.9)
    if cut <= length + 1 or len(tokens) - cut <= length + 1:
        raise ValueError(
            f"The text has {len(tokens)} tokens: too few to hold out a tenth in windows "
            f"of --sequence_length={length}. Give more text or a shorter length.")
    return tokens[:cut], tokens[cut:]


def _inputs(ids):
    return {"token_ids": ids, "padding_mask": np.ones_like(ids)}


_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def nats_per_token(model, heldout, length, limit=256):
    """A causal LM's mean cross-entropy (nats per token) on `limit` evenly
    spaced windows of `length` tokens of `heldout` (all of them when there
    are fewer): the held-out measure of the job and of the benchmark."""
    x, y = text_lib.tiled(heldout, length)
    pick = np.linspace(0, len(x) - 1, min(limit, len(x))).astype(int)
    x, y = x[pick], y[pick]
    total = 0.0
    for i in range(0, len(x), 32):
        logits = model(_inputs(x[i:i + 32]), training=False)
        total += float(keras.ops.convert_to_numpy(_LOSS(y[i:i + 32], logits))) * len(x[i:i + 32])
    return total / len(x)


def _optimizer(lr, steps):
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, max(steps, 1)))


def _verbose(config):
    return config.verbose if config.verbose == "auto" else int(config.verbose)


def _train_teacher(config, model, train):
    _say(f"training the teacher from scratch: {config.teacher_steps} steps")
    x, y = text_lib.windows(train, config.sequence_length,
                            config.teacher_steps * config.batch_size, config.seed + 1000)
    model.compile(_optimizer(3 * config.lr, config.teacher_steps), _LOSS)
    model.fit(_inputs(x), y, batch_size=config.batch_size, epochs=1,
              verbose=_verbose(config))


def distiller(teacher, student):
    """The job's `keras.distillation.Distiller`: logits at temperature 2
    (KL divergence of the softmaxes), half the loss from the labels. The
    student is unfrozen first: one pruned from a teacher that an earlier
    Distiller froze in place keeps those frozen layers
    (`walk.keeps_frozen`)."""
    student.trainable = True
    return keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=2.0, loss=keras.losses.KLDivergence()),
        student_loss_weight=0.5)


def _distill(config, teacher, student, x, y, callbacks=()):
    trainer = distiller(teacher, student)
    steps = len(y) // config.batch_size
    trainer.compile(optimizer=_optimizer(config.lr, steps), loss=_LOSS)
    _say(f"distilling: {steps} steps")
    trainer.fit(_inputs(x), y, batch_size=config.batch_size, epochs=1,
                verbose=_verbose(config), callbacks=list(callbacks))


def _prune(config, teacher, train):
    """The student, pruned and distilled by `config.method`."""
    x, y = text_lib.windows(train, config.sequence_length,
                            config.steps * config.batch_size, config.seed)
    n = config.calibration_batches
    _say(f"calibration: {n} batches of {config.sequence_length} tokens")
    calibration = [(_inputs(x[i:i + 1]), y[i:i + 1]) for i in range(n)]
    student = teacher
    if config.blocks:
        _say(f"removing {config.blocks:.0%} of the blocks (block influence)")
        student = kp.prune_depth(student, config.blocks, data=calibration)
    if config.method == "depth":
        _distill(config, teacher, student, x, y)
        return student
    if config.method == "progressive":
        if config.hidden:
            student = kp.prune_width(student, hidden=config.hidden, data=calibration)
        steps = config.steps
        student = kp.prune_low_magnitude(
            student, kp.PolynomialDecay(0.0, config.ffn, 0, max(1, steps // 2),
                                        frequency=max(1, steps // 20)),
            structure="channel")
        callback = kp.ProgressivePruningCallback(
            importance=kp.importance.Activation(calibration[:2], batches=2))
        _distill(config, teacher, student, x, y, [callback])
        return kp.shrink(student)
    fractions = dict(ffn=config.ffn, heads=config.heads, kv_heads=config.kv_heads,
                     hidden=config.hidden)
    if config.method == "one_shot":
        student = kp.prune_width(student, data=calibration, **fractions)
        _distill(config, teacher, student, x, y)
        return student
    # Iterative: half the fraction, half the steps, then the rest of both.
    half = {k: v / 2 for k, v in fractions.items()}
    rest = {k: (v / 2) / (1 - v / 2) for k, v in fractions.items()}
    middle = len(y) // 2
    student = kp.prune_width(student, data=calibration, **half)
    _distill(config, teacher, student, x[:middle], y[:middle])
    student = kp.prune_width(student, data=calibration, **rest)
    _distill(config, teacher, student, x[middle:], y[middle:])
    return student


def _tokens_per_second(model, length):
    prompt = _inputs(np.ones((1, length + 16), "int32"))
    prompt["padding_mask"][:, 16:] = 0
    model.generate(prompt, stop_token_ids=None)  # compile
    start = time.perf_counter()
    model.generate(prompt, stop_token_ids=None)
    return length / (time.perf_counter() - start)


def _row(name, model, heldout, config, byte_tokens):
    nats = nats_per_token(model, heldout, config.sequence_length)
    backbone = model.backbone
    return {"model": name, "class": type(model).__name__,
            "parameters": int(model.count_params()),
            "block_parameters": int(sum(b.count_params() for b in backbone.transformer_layers)),
            "num_layers": int(backbone.num_layers), "hidden_dim": int(backbone.hidden_dim),
            "nats_per_token": nats, "perplexity": math.exp(nats),
            "bits_per_byte": text_lib.bits_per_byte(nats) if byte_tokens else None,
            "generate_tokens_per_s": _tokens_per_second(model, 32)}


def _card(results):
    rows = results["rows"]
    lines = ["# A pruned and distilled KerasHub causal LM", "",
             f"Made by keras-progprune ({results['config']['method']}), from "
             f"{results['teacher_source']}. Held out: the last tenth of the text, measured "
             "once, after training.", "",
             "| model | class | parameters | blocks | hidden | perplexity | bits/byte "
             "| generate tok/s (batch 1) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        bpb = "n/a" if r["bits_per_byte"] is None else f"{r['bits_per_byte']:.3f}"
        lines.append(f"| {r['model']} | {r['class']} | {r['parameters']:,} | "
                     f"{r['num_layers']} | {r['hidden_dim']} | {r['perplexity']:.3f} | {bpb} "
                     f"| {r['generate_tokens_per_s']:.0f} |")
    lines += ["", "Load it with `keras_hub.models.CausalLM.from_preset(\"model\")`; when "
              "the class is a `HeadSized...` one, `import keras_progprune.hub_layers` "
              "first (it registers those classes).", "",
              "Made with:", "", "```", results["command"], "```", ""]
    return "\n".join(lines)


def run(config, command=None):
    """Runs the job of `config` (an `LLMConfig`); returns the results dict
    (also written to `output_dir/results.json`)."""
    validate(config)
    keras.utils.set_random_seed(config.seed)
    import keras_hub  # noqa: PLC0415

    teacher, tokens, byte_tokens, preprocessor = _teacher_and_tokens(config)
    if len(tokens) == 0:
        raise ValueError(f"The text files {list(config.text)} are empty.")
    train, heldout = _split(tokens, config.sequence_length)
    if config.family:
        _train_teacher(config, teacher, train)
    start = time.process_time()
    student = _prune(config, teacher, train)
    cpu = time.process_time() - start
    if not isinstance(student, keras_hub.models.CausalLM):
        raise ValueError(
            f"{type(teacher).__name__} can't say the pruned shape in its config (its "
            f"blocks derive the head size), so the student is a plain {type(student).__name__} "
            "and can't be written as a KerasHub preset. Keep its heads: pass "
            "--width_heads=0 (and --llm_method=one_shot).")
    _say("evaluating on the held-out tenth")
    rows = [_row("teacher", teacher, heldout, config, byte_tokens),
            _row("student", student, heldout, config, byte_tokens)]
    os.makedirs(config.output_dir, exist_ok=True)
    student.preprocessor = preprocessor  # the preset's tokenizer goes with the model
    student.save_to_preset(os.path.join(config.output_dir, "model"))
    results = {"config": dataclasses.asdict(config), "rows": rows,
               "prune_and_distill_cpu_s": cpu,
               "teacher_source": config.hub_preset or
               f"a {config.size} {FAMILIES[config.family][0]} trained here on the text",
               "command": command or " ".join(shlex.quote(a) for a in sys.argv)}
    with open(os.path.join(config.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(config.output_dir, "README.md"), "w") as f:
        f.write(_card(results))
    _say(f"wrote {config.output_dir}/model, results.json and README.md")
    return results
