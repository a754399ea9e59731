"""Importance: the scores that decide what the mask updates keep.

An importance is handed to `ProgressivePruningCallback(importance=...)`
(or to a mask updater directly, see `engine.MaskUpdater`); at each
scheduled update the updater asks it for scores and keeps the highest.
Two methods, either of which may be left out (return None):

- `weight_scores(model, weights)`: one float32 tensor per variable in
  `weights`, shaped like it. Unstructured and N:M masks rank these; a
  channel group's score is the mean over the weights its mask covers.
- `channel_scores(model, probes)`: one score per channel, for channel
  groups. `probes` lists, per channel space, a `Probe`: the sublayer whose
  input or output carries those channels. A structure that has no probes
  (unstructured) never calls it.

Built in:

- `Magnitude()`: the default. Each engine's own magnitude score (|w| per
  weight; a channel group's mean square), computed inside its compiled
  update.
- `Activation(data, batches)`: Minitron's mean absolute activation of each
  channel over calibration batches (channels only: feed-forward neurons,
  heads, filters, units).
- `Taylor(data, loss, batches)`: first-order Taylor, |w * dL/dw| averaged
  over batches: gradual SNIP, for any structure (also named `"snip"`).
- `Grasp(data, loss, batches, temperature)`, `SynFlow(rounds)` and
  `Random(seed)`: the scores of the pruning-at-initialization baselines;
  `kp.prune_at_init` is one update ranked by them (SynFlow's rounds are
  its `round_sparsities`).

`get(name, **kwargs)` builds any of them by name (`names()` lists them);
`register(name, cls)` adds one. The callback, `prune_at_init`, the
training script's `--importance` and `Progressive` all read this one
registry.

A user's own importance subclasses `Importance` and implements either
method.
"""

import contextlib
import inspect
import itertools

import keras
import numpy as np

from keras_progprune import scores as scores_lib


class Probe:
    """Where one channel space is read: `axis` of the `"input"` or
    `"output"` of `layer` indexes its `size` channels; with `channels`,
    index `i` of that axis belongs to channel `channels[i]` (a head owns
    its `head_dim` entries), and a channel's score is the mean over its
    indices."""

    def __init__(self, label, layer, where, axis, size, channels=None):
        self.label, self.layer, self.where = label, layer, where
        self.axis, self.size = axis, int(size)
        self.channels = None if channels is None else np.asarray(channels, np.int64)

    @classmethod
    def of(cls, label, probe, size):
        """From a rule's `(layer, where, axis)` or `(layer, where, axis,
        channels)` (`WidthGroup.probe`)."""
        return cls(label, *probe[:3], size, *probe[3:])

    def reduce(self, per_index):
        """Per-index values (as many as `channels`) averaged per channel."""
        if self.channels is None:
            return per_index
        sums = np.zeros(self.size)
        np.add.at(sums, self.channels, per_index)
        return sums / np.maximum(np.bincount(self.channels, minlength=self.size), 1)

    @property
    def indices(self):
        return self.size if self.channels is None else len(self.channels)

    def __repr__(self):
        return f"Probe({self.label!r}, {self.where} of {self.layer.name!r}, axis={self.axis})"


def inputs_of(batch):
    """`x` of an `(x, y)` or `(x, y, w)` batch; a dict or array is `x` itself."""
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


@contextlib.contextmanager
def replaced_calls(replacements):
    """Within the block, each `layer` of `replacements`, a list of `(layer,
    make)`, runs `make(its call)` instead of its call: replaced on the
    instance (Keras's `__call__` reads `self.call`), put back on exit even
    on an error. Works on a model called eagerly, on any backend."""
    saved = []
    try:
        for layer, make in replacements:
            saved.append((layer, layer.__dict__.get("call")))
            layer.call = make(layer.call)
        yield
    finally:
        for layer, own in reversed(saved):
            if own is None:
                del layer.call
            else:
                layer.call = own


class Recorder:
    """Sums `|activation|` per channel at each probe while the model runs.

    Each probed layer's `call` is replaced, on the instance, by one that
    records its input or output, and put back on exit (a model called
    eagerly, on any backend).
    """

    def __init__(self, probes):
        self.probes = [p for p in probes if p is not None]
        self.sums = {p.label: np.zeros(p.indices) for p in self.probes}
        self.counts = {p.label: 0 for p in self.probes}

    def __enter__(self):
        self._replaced = replaced_calls(
            [(p.layer, lambda call, p=p: self._recording(call, p)) for p in self.probes])
        self._replaced.__enter__()
        return self

    def _recording(self, call, probe):
        def recorded(*args, **kwargs):
            out = call(*args, **kwargs)
            value = out if probe.where == "output" else args[0]
            array = np.abs(np.asarray(keras.ops.convert_to_numpy(value), np.float64))
            moved = np.moveaxis(array, probe.axis, -1).reshape(-1, probe.indices)
            self.sums[probe.label] += moved.sum(axis=0)
            self.counts[probe.label] += moved.shape[0]
            return out
        return recorded

    def __exit__(self, *exc):
        return self._replaced.__exit__(*exc)

    def scores(self, probe):
        return probe.reduce(self.sums[probe.label] / max(self.counts[probe.label], 1))


def run_batches(model, data, batches):
    """Calls `model` (inference) on up to `batches` batches of `data`;
    returns how many it read."""
    seen = 0
    for batch in data if batches is None else itertools.islice(iter(data), batches):
        model(keras.tree.map_structure(np.asarray, inputs_of(batch)), training=False)
        seen += 1
    return seen


def mean_activations(model, probes, data, batches):
    """`{probe label: mean |activation| per channel}` over up to `batches`
    batches of `data` (all of them for None), the model in inference mode.

    Raises:
        ValueError: if `data` gives no batch.
    """
    with Recorder(probes) as recorder:
        seen = run_batches(model, data, batches)
    if seen == 0:
        raise ValueError("`data` gave no batch: activation importance needs at least one "
                         "calibration batch.")
    return {p.label: recorder.scores(p) for p in recorder.probes}


def check_batches(batches, allow_none=True):
    if (batches is None and allow_none) or (
            isinstance(batches, int) and not isinstance(batches, bool) and batches >= 1):
        return batches
    raise ValueError(f"`batches` must be a positive int{' or None' if allow_none else ''}. "
                     f"Received: batches={batches!r}.")


def check_reiterable(data):
    """Raises unless `data` can be read again (an iterator is read once)."""
    if iter(data) is data:
        raise ValueError(
            "`data` is read again at each mask update, but an iterator or generator "
            "can be read only once. Pass a list of batches or a tf.data.Dataset (for "
            f"example `dataset.take(4)`). Received: data of type {type(data).__name__}.")
    return data


class Importance:
    """Base class: scores for the mask updates (see the module docstring)."""

    def weight_scores(self, model, weights):
        return None

    def channel_scores(self, model, probes):
        return None

    # Pruning at initialization in several rounds (SynFlow): each group is
    # scored again after the ones before it were updated.
    in_turn = False

    def scores_channels(self):
        """Whether it implements `channel_scores` (a channel group then asks
        for those, not for `weight_scores`)."""
        return type(self).channel_scores is not Importance.channel_scores

    def round_sparsities(self, target):
        """The sparsities that pruning at initialization to `target` steps
        through: one update by default."""
        return [float(target)]

    def __repr__(self):
        return f"{type(self).__name__}()"


class Magnitude(Importance):
    """The magnitude of the weights still active: |w| for unstructured and
    N:M masks, a channel group's mean square. The default; computed inside
    each updater's compiled step, so both methods return None."""


class Activation(Importance):
    """Minitron's importance: each channel's mean absolute activation over
    calibration batches (Muralidharan et al., 2024).

    Scores channels: feed-forward neurons and heads (read where the rule's
    `WidthGroup.probe` says), and a Dense unit or convolution filter (its
    producer's output). Use it with `structure="channel"`.

    Args:
        data: a `tf.data.Dataset` or an iterable of `(x, y)` batches (or of
            `x` alone); labels are not used. Read again at each update, so
            it must be re-iterable (a list, a dataset: not a generator).
        batches: how many batches to read per update. Defaults to 4.
    """

    def __init__(self, data, batches=4):
        if data is None:
            raise ValueError(
                "Activation importance ranks channels by their activations over "
                "calibration batches: pass `data` (a tf.data.Dataset or a list of "
                "(x, y) batches). Received: data=None.")
        self.data = check_reiterable(data)
        self.batches = check_batches(batches)

    def weight_scores(self, model, weights):
        raise ValueError(
            "Activation importance scores whole channels (a neuron's or head's mean "
            "|activation|), not single weights. Use it with structure='channel', or "
            "use kp.importance.Taylor(data, loss) for unstructured or N:M masks.")

    def channel_scores(self, model, probes):
        if any(p is None for p in probes):
            raise ValueError(
                "Activation importance reads each channel space where its rule says, "
                "but a WidthGroup has no `probe`: give it `probe=(sublayer, 'input' or "
                "'output', axis)` in its LayerRule, or use magnitude importance.")
        means = mean_activations(model, probes, self.data, self.batches)
        return [means[p.label] for p in probes]

    def __repr__(self):
        return f"Activation(batches={self.batches})"


class _Gradients(Importance):
    """An importance read from the loss's gradients on batches of `data`."""

    label = None

    def __init__(self, data, loss, batches=1):
        if data is None or loss is None:
            raise ValueError(
                f"{self.label} importance needs gradients of the loss: pass `data` (a "
                "tf.data.Dataset or a list of (x, y) batches) and `loss` (a Keras loss "
                f"or its name). Received: data={data!r}, loss={loss!r}.")
        self.data = check_reiterable(data)
        self.loss = keras.losses.get(loss) if isinstance(loss, str) else loss
        self.batches = check_batches(batches, allow_none=False)

    def _read(self):
        """The first `batches` batches of `data`, as host arrays."""
        batches = [scores_lib.host_batch(b)
                   for b in itertools.islice(iter(self.data), self.batches)]
        if not batches:
            raise ValueError(f"`data` gave no batch: {self.label} importance needs at "
                             "least one batch.")
        return batches


class Taylor(_Gradients):
    """First-order Taylor importance, |w * dL/dw|, averaged over batches of
    `data` in training mode (moving statistics are restored): the score SNIP
    uses at initialization, recomputed at each update (gradual SNIP). A
    channel group's score is the mean over its weights.

    Args:
        data: a `tf.data.Dataset` or an iterable of `(x, y)` batches, read
            again at each update (re-iterable: not a generator).
        loss: a Keras loss, its name, or a function `(y_true, y_pred)`.
        batches: how many batches per update. Defaults to 1.
    """

    label = "Taylor"

    def weight_scores(self, model, weights):
        return scores_lib.snip_scores(model, self.loss, self._read(), list(weights))

    def __repr__(self):
        return f"Taylor(batches={self.batches})"


class Grasp(_Gradients):
    """GraSP's keep-score `w * (H g)` (Wang et al., 2020), on batches of
    `data`: the gradient flow a weight preserves. Made for one update at
    initialization (`kp.prune_at_init(model, "grasp", ...)`).

    Args:
        data: a `tf.data.Dataset` or an iterable of `(x, y)` batches
            (re-iterable).
        loss: a Keras loss, its name, or a function `(y_true, y_pred)`.
        batches: how many batches `g` and `H g` are averaged over.
            Defaults to 1.
        temperature: float > 0; logits are divided by it before the loss,
            as in GraSP's code. Defaults to 200.
    """

    label = "GraSP"

    def __init__(self, data, loss, batches=1, temperature=200.0):
        if not float(temperature) > 0:
            raise ValueError(
                f"`temperature` must be > 0. Received: temperature={temperature!r}.")
        super().__init__(data, loss, batches)
        self.temperature = float(temperature)

    def weight_scores(self, model, weights):
        return scores_lib.grasp_scores(model, self.loss, self._read(), list(weights),
                                       self.temperature)

    def __repr__(self):
        return f"Grasp(batches={self.batches}, temperature={self.temperature})"


class SynFlow(Importance):
    """SynFlow's data-free score `|w * dR/dw|` (Tanaka et al., 2020): every
    weight made positive, an all-ones input, `R` the sum of the outputs.

    Its pruning is iterative: `rounds` updates on the exponential schedule
    `1 - density ** (r / rounds)` (`round_sparsities`), each layer scored
    again after the ones before it were pruned (`in_turn`).

    Args:
        rounds: int >= 1. Defaults to 100.
    """

    in_turn = True

    def __init__(self, rounds=100):
        if isinstance(rounds, bool) or int(rounds) != rounds or int(rounds) < 1:
            raise ValueError(f"`rounds` must be >= 1. Received: rounds={rounds!r}. Pass a "
                             "whole number of rounds, such as 100 (the paper's).")
        self.rounds = int(rounds)

    def round_sparsities(self, target):
        density = 1.0 - float(target)
        return [1.0 - density ** (r / self.rounds) for r in range(1, self.rounds + 1)]

    def weight_scores(self, model, weights):
        return scores_lib.synflow_scores(model, list(weights), model.input_shape[1:])

    def __repr__(self):
        return f"SynFlow(rounds={self.rounds})"


class Random(Importance):
    """Uniform random scores, the same on every backend (NumPy's generator
    seeded with `[seed, index of the weight]`): a random mask.

    Args:
        seed: int. Defaults to 0.
    """

    def __init__(self, seed=0):
        if isinstance(seed, bool) or int(seed) != seed:
            raise ValueError(f"`seed` must be an int. Received: seed={seed!r}.")
        self.seed = int(seed)

    def weight_scores(self, model, weights):
        return scores_lib.random_scores(list(weights), self.seed)

    def __repr__(self):
        return f"Random(seed={self.seed})"


def is_magnitude(importance):
    """Whether `importance` (None counts) is the default magnitude, which
    each updater computes inside its compiled step."""
    return importance is None or isinstance(importance, Magnitude)


# name -> Importance class: what `get(name, ...)`, `Progressive(importance=)`,
# the training script's `--importance` and `prune_at_init` accept.
_REGISTRY = {}
# What a caller may offer every importance; each takes what it needs.
CONTEXT = ("data", "loss", "batches", "seed")


def register(name, cls):
    """Makes `get(name, **kwargs)` build `cls(**kwargs)`.

    Raises:
        ValueError: if `cls` is not an `Importance` subclass, or `name` is
            taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Importance)):
        raise ValueError("`cls` must be a subclass of keras_progprune.importance.Importance. "
                         f"Received: cls={cls!r}.")
    if _REGISTRY.get(name, cls) is not cls:
        raise ValueError(f"An importance named {name!r} is already registered "
                         f"({_REGISTRY[name].__name__}). Choose another name.")
    _REGISTRY[name] = cls
    return cls


def names():
    """The registered importance names, sorted."""
    return sorted(_REGISTRY)


def get(identifier=None, **kwargs):
    """An `Importance` from None, a registered name or an `Importance`.

    Args:
        identifier: None or `"magnitude"` (the default), another registered
            name (`names()`: `"activation"`, `"taylor"`, `"snip"`,
            `"grasp"`, `"synflow"`, `"random"`, and any given to
            `register`), or an `Importance`, returned as it is.
        **kwargs: the named importance's arguments. Of `CONTEXT` (`data`,
            `loss`, `batches`, `seed`), those it doesn't take are ignored,
            so a caller can offer them all.

    Raises:
        ValueError: for an unknown name, an argument the importance doesn't
            take, or a bad value (each importance says which).

    Examples:
        >>> import keras_progprune as kp
        >>> kp.importance.get("random", seed=3, data=None)
        Random(seed=3)
        >>> kp.importance.get("synflow", rounds=10)
        SynFlow(rounds=10)
    """
    if isinstance(identifier, Importance):
        if kwargs:
            raise ValueError(
                f"Arguments {sorted(kwargs)} are for an importance given by name; "
                f"{identifier!r} is already built. Received: importance={identifier!r}.")
        return identifier
    if identifier is None:
        identifier = "magnitude"
    if not isinstance(identifier, str) or identifier not in _REGISTRY:
        raise ValueError(
            f"`importance` must be None, one of {names()}, or a "
            "keras_progprune.importance.Importance such as "
            "kp.importance.Activation(calibration_batches) or "
            f"kp.importance.Taylor(batches, loss). Received: importance={identifier!r}.")
    cls = _REGISTRY[identifier]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - accepted - set(CONTEXT))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) {unknown} for importance {identifier!r}. Received: "
            f"{kwargs}. Accepted: {sorted(accepted)}.")
    parameters = inspect.signature(cls.__init__).parameters.values()
    missing = [p.name for p in parameters if p.name != "self" and p.name not in kwargs
               and p.default is inspect.Parameter.empty
               and p.kind is p.POSITIONAL_OR_KEYWORD]
    if missing:
        needs = " and ".join(f"`{m}`" for m in missing)
        raise ValueError(
            f"Importance {identifier!r} needs {needs}: build it with "
            f"kp.importance.get({identifier!r}, {', '.join(f'{m}=...' for m in missing)}) "
            f"and pass the result. Received: importance={identifier!r}.")
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


register("magnitude", Magnitude)
register("activation", Activation)
register("taylor", Taylor)
register("snip", Taylor)
register("grasp", Grasp)
register("synflow", SynFlow)
register("random", Random)
