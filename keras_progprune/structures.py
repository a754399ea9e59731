"""Mask structures: which patterns of weights are removed together.

A structure is a small serializable value held by every `PruningWrapper`
and saved in its config. The engine asks it for masks; adding a structure
means adding one class here (and its tests), nothing in the wrapper or the
callback.

- `Unstructured()`: any weight can go; exact top-k of the scores over the
  whole group (one layer, or every global-scope layer). The default.
- `MByN(n, m)`: in every run of `m` consecutive weights along the
  input-channel axis (axis -2 of the kernel: `in` of a Dense `[in, out]`,
  of a Conv `[..., in, out]` and of a DepthwiseConv `[..., in, mult]`; the
  reduced axis of an EinsumDense kernel),
  exactly the `n` highest scores are kept: the 2:4 pattern of NVIDIA's
  sparse tensor cores, tfmot's `sparsity_m_by_n` layout.
- `Channel()`: whole output channels and what is coupled to them; the
  groups come from the model's graph (`channels/`), and `shrink` removes
  them physically.

`select(scores, sparsity, active)` is pure `keras.ops`: it traces inside
the engine's compiled update on every backend, CPU and GPU. The engine
splits it in two: `count(size, sparsity)` in Python (exact, the same on
every backend), then `select_count(scores, count, active)` compiled.

>>> from keras_progprune import structures
>>> structures.get("2:4")
MByN(n=2, m=4)
"""

import math
import re

import keras
import numpy as np
from keras import ops

from keras_progprune import registry
from keras_progprune import thresholds
from keras_progprune import rules
from keras_progprune.values import ConfigValue


class Structure(ConfigValue):
    """Base class: which weights a mask removes together.

    A structure is a value: it says which weights go together, and is
    saved in every wrapper's config. The default mask updaters are
    `engine.PruningGroup`s, which ask the structure for masks through
    `count` and `select_count`: a structure driven by them implements those
    two and `get_config`, and sets `intersects` (whether a weight pruned
    earlier must stay pruned). A structure with updaters of its own
    (`Channel`) has them registered by the module that builds them
    (`keras_progprune.engine.register_updaters`).
    """

    intersects = True
    # True when the masks are chosen over the model's graph, so the model
    # must be Sequential or Functional, and `prune_low_magnitude` wraps
    # only the layers of the graph's prunable channel groups.
    needs_graph = False
    # True when the masks remove whole channels, so `kp.shrink` and
    # `fit_shrinking` make the model smaller.
    shrinks = False

    @property
    def spec(self):
        """The string `prune_low_magnitude(structure=...)` takes for it."""
        return type(self).__name__.lower()

    def initial_size(self, layer):
        """What a wrapper records of `layer` when it is built, for the
        updaters to read after a shrink (`PruningWrapper.initial_channels`),
        or None."""
        return None

    def select(self, scores, sparsity, active, axes=None):
        """Boolean keep-masks, one per score tensor.

        Args:
            scores: list of float tensors; higher scores are kept first.
            sparsity: float in [0, 1), the scheduled fraction to remove
                (N:M ignores it: it always removes `1 - n/m`).
            active: list of bool tensors (weights alive now), or None.
            axes: each weight's input-channel axis (`registry.input_axes`),
                or None for axis -2 of each.

        Returns:
            A list of bool tensors shaped like `scores`.
        """
        size = sum(math.prod(s.shape) for s in scores)  # static shapes
        return self.select_count(scores, self.count(size, sparsity), active, axes=axes)

    def count(self, size, sparsity):
        """What `select_count` keeps, from Python numbers: an int, or None
        when the structure fixes it itself (N:M)."""
        return None

    def select_count(self, scores, count, active, nonnegative=False, axes=None):
        """`select`, given `count(size, sparsity)`; traced in the compiled
        update (`count` is then a scalar int32 tensor). `nonnegative`: the
        scores are magnitudes (see `thresholds.ordered_keys`)."""
        raise NotImplementedError

    def select_with_floors(self, scores, count, floors, active, nonnegative=False,
                           axes=None):
        """`select_count` over one global pool in which tensor `i` keeps at
        least its `floors[i]` best (active) entries (an int32 vector,
        `sum(floors) <= count`; 0 for no floor).

        Here: each tensor's floor is selected on its own, raised above
        every other score, and the pool is ranked as usual. `Unstructured`
        does the same on its keys, in two selections in all.
        """
        axes = axes or [-2] * len(scores)
        top = float(np.finfo("float32").max)
        raised = []
        for i, (s, a, axis) in enumerate(zip(scores, active or [None] * len(scores), axes)):
            protect = self.select_count([s], ops.maximum(floors[i], 1),
                                        None if a is None else [a],
                                        nonnegative=nonnegative, axes=[axis])[0]
            if a is not None:
                protect = ops.logical_and(protect, a)
            protect = ops.logical_and(protect, floors[i] > 0)
            raised.append(ops.where(protect, ops.full_like(s, top), s))
        return self.select_count(raised, count, active, nonnegative=nonnegative, axes=axes)

    def fits(self, shape, axis=-2):
        """Whether a weight of `shape`, its input channels along `axis`, can
        carry this structure."""
        return True

    def accepts(self, layer):
        """Whether a `PruningWrapper` with this structure can hold `layer`."""
        return registry.is_prunable(layer) or registry.maybe_composite(layer)

    def prunable_weights(self, layer):
        """The variables of a built `layer` that get masks."""
        return registry.get_prunable_weights(layer)

    def refuse(self, layers, exclude=()):
        """Raises the `ValueError` that says why `layers` (a layer or a
        list) can't be wrapped with this structure (`accepts` was false),
        and what to do."""
        if not isinstance(layers, (list, tuple)):
            registry.get_prunable_weights(layers)  # raises: the types and the protocol
            layers = [layers]
        raise registry.unprunable_error(layers, exclude)

    def describe_misfit(self, shape, axis=-2):
        return ""

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="keras_progprune")
class Unstructured(Structure):
    """Any weight can be pruned: exact top-k of the scores over the group.

    The group keeps exactly `max(1, round(n * (1 - sparsity)))` weights;
    ties are broken by flat index. A weight pruned earlier stays pruned.

    Examples:
        >>> import keras
        >>> from keras_progprune.structures import Unstructured
        >>> [keras.ops.convert_to_numpy(m).tolist() for m in Unstructured().select(
        ...     [keras.ops.convert_to_tensor([3.0, 1.0, 2.0, 0.5])], 0.5, None)]
        [[True, False, True, False]]
    """

    def count(self, size, sparsity):
        return thresholds.keep_count(size, sparsity)

    def select_count(self, scores, count, active, nonnegative=False, axes=None):
        return thresholds.top_k_masks(scores, count, active=active, nonnegative=nonnegative)

    def select_with_floors(self, scores, count, floors, active, nonnegative=False,
                           axes=None):
        return thresholds.top_k_masks(scores, count, active=active, nonnegative=nonnegative,
                                      floors=floors)


@keras.saving.register_keras_serializable(package="keras_progprune")
class Channel(Structure):
    """Whole output channels (units, filters), with everything coupled to them.

    A channel's mask covers its producer's kernel slice and bias entry, and
    the gamma and beta of a BatchNormalization (and the depthwise kernel and
    bias) that follow it, so a pruned channel outputs exactly 0. Channels
    that must go together (both inputs of a residual `Add`) form one group;
    `keras_progprune.channels.graph` finds the groups from the model's
    graph, and `keras_progprune.shrink` removes the pruned channels.

    The schedule's sparsity is the fraction of channel groups removed. By
    default a group's score is the mean of the squares of every weight its
    mask covers (the sum of squares divided by their count, so that groups
    of different sizes compare); an importance given to the callback
    replaces it (`keras_progprune.importance`). See
    `keras_progprune.channels.engine`. Each layer's channels are described
    by its class's rule (`keras_progprune.LayerRule`).

    Wrappers with this structure must sit in a Sequential or Functional
    model: the groups are read from the graph.
    """

    needs_graph = True
    shrinks = True

    def initial_size(self, layer):
        """Its output channels, or for a layer with width groups inside,
        one count per group (in its rule's order)."""
        if rules.channel_weights(layer) is None:
            return [g.size for g in rules.width_groups(layer)]
        return self.channel_count(layer)

    def accepts(self, layer):
        rule = rules.rule_of(layer)
        return rule.carries_channels or rule.has_width()

    def refuse(self, layers, exclude=()):
        layer = layers[0] if isinstance(layers, (list, tuple)) else layers
        raise ValueError(
            f"Layer {layer.name!r} of type {type(layer).__name__} has no output "
            "channels to prune: structure='channel' takes the layers with a channel or "
            f"width rule ({', '.join(rules.channel_layer_names())}, KerasHub "
            "transformer blocks, and any class given a rule with "
            f"kp.register_layer_rule). Received: layer={layer.name!r}, "
            "structure='channel'. Leave the layer unwrapped, or register a rule for "
            "its class.")

    def prunable_weights(self, layer):
        pairs = rules.channel_weights(layer)
        if pairs is None:  # a layer with width channels inside (its rule)
            return [m.variable for g in rules.width_groups(layer) if not g.fixed
                    for m in g.members]
        return [w for w, _ in pairs]

    def channel_count(self, layer):
        """The number of channels `layer`'s masks cover (for a layer with
        width groups inside, of its first group)."""
        pairs = rules.channel_weights(layer)
        if pairs is None:
            return rules.width_groups(layer)[0].size
        weight, axis = pairs[0]
        return int(weight.shape[axis])


_N_M = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@keras.saving.register_keras_serializable(package="keras_progprune")
class MByN(Structure):
    """N:M sparsity: `n` kept in every `m` consecutive input channels.

    Groups run along each weight's input-channel (reduction) axis: axis -2
    of Dense, Conv1D/2D/3D and DepthwiseConv kernels (tfmot's and NVIDIA
    ASP's layout, the one LiteRT and TensorRT read), and the reduced axis of
    an EinsumDense kernel (axis 0 of MultiHeadAttention's q/k/v kernels
    `[hidden, heads, head_dim]`, not its heads; `registry.input_axes`). In each group the `n`
    highest scores are kept (ties: the lower index). The fraction removed
    is always `1 - n / m`: the schedule says *when* masks are recomputed,
    not how many weights go.

    A weight whose input axis is not a multiple of `m` (or of rank < 2)
    can't carry the pattern; it is left dense, and `PruningWrapper` warns when it
    is built. It is never given a wrong pattern.

    Args:
        n: int >= 1, weights kept per group.
        m: int > n, group length.

    Raises:
        ValueError: unless `1 <= n < m`.

    Examples:
        >>> import keras
        >>> from keras_progprune.structures import MByN
        >>> w = keras.ops.convert_to_tensor([[4.0], [1.0], [3.0], [2.0]])  # Dense [in=4, out=1]
        >>> keras.ops.convert_to_numpy(MByN(2, 4).select([w], 0.5, None)[0]).ravel().tolist()
        [True, False, True, False]
    """

    intersects = False

    def __init__(self, n, m):
        if isinstance(n, bool) or isinstance(m, bool) or int(n) != n or int(m) != m \
                or not 1 <= int(n) < int(m):
            raise ValueError(
                f"N:M sparsity needs whole numbers with 1 <= n < m. Received: n={n!r}, "
                f"m={m!r}. For 2 weights kept in every 4, pass structure='2:4'.")
        self.n = int(n)
        self.m = int(m)

    def fits(self, shape, axis=-2):
        return (len(shape) >= 2 and shape[axis] is not None
                and shape[axis] % self.m == 0)

    def describe_misfit(self, shape, axis=-2):
        if len(shape) < 2:
            return f"it has rank {len(shape)}; N:M needs rank >= 2"
        return (f"its input-channel axis (axis {axis} of shape {tuple(shape)}) has "
                f"{shape[axis]} entries, not a multiple of m={self.m}")

    def select_count(self, scores, count, active, nonnegative=False, axes=None):
        del count, active, nonnegative  # every group keeps exactly n
        axes = axes or [-2] * len(scores)
        return [self._select_one(s, axis) if self.fits(tuple(s.shape), axis)
                else ops.ones(ops.shape(s), "bool") for s, axis in zip(scores, axes)]

    def _select_one(self, scores, axis=-2):
        rank = len(scores.shape)
        axis = axis % rank
        # Move the input axis last, split it into runs of m, keep the n largest.
        perm = [a for a in range(rank) if a != axis] + [axis]
        moved = ops.transpose(scores, perm)
        groups = ops.reshape(moved, [-1, self.m])
        # Rank of each entry in its group: how many beat it (higher, or
        # equal at a lower index). Exact and the same on every backend
        # (top_k's tie order is not specified everywhere); m is small.
        a, b = groups[:, :, None], groups[:, None, :]
        lower = ops.arange(self.m)[None, :] < ops.arange(self.m)[:, None]
        beaten = ops.logical_or(b > a, ops.logical_and(b == a, lower[None]))
        keep = ops.sum(ops.cast(beaten, "int32"), axis=-1) < self.n
        keep = ops.reshape(keep, ops.shape(moved))
        return ops.transpose(keep, [perm.index(a) for a in range(rank)])

    @property
    def spec(self):
        return f"{self.n}:{self.m}"

    def get_config(self):
        return {"n": self.n, "m": self.m}


def get(identifier):
    """A `Structure` from a name, an `"n:m"` string, a config dict or itself.

    Args:
        identifier: `None` or `"unstructured"` (`Unstructured()`),
            `"channel"` (`Channel()`), `"n:m"`
            such as `"2:4"` (`MByN(n, m)`), a dict from
            `keras.saving.serialize_keras_object`, or a `Structure`.

    Raises:
        ValueError: for anything else, listing the accepted forms.
    """
    if identifier is None:
        return Unstructured()
    if isinstance(identifier, Structure):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        if identifier.strip().lower() == "unstructured":
            return Unstructured()
        if identifier.strip().lower() == "channel":
            return Channel()
        match = _N_M.match(identifier)
        if match:
            n, m = int(match.group(1)), int(match.group(2))
            if n >= m:
                raise ValueError(
                    f"`structure` {identifier!r} keeps n={n} of every m={m} weights, "
                    f"but n must be below m. Did you mean '{m}:{n}'? Received: "
                    f"structure={identifier!r}.")
            return MByN(n, m)
    raise ValueError(
        "`structure` must be 'unstructured', 'channel', an 'n:m' string with n < m such as "
        "'2:4', or a keras_progprune.structures.Structure. "
        f"Received: structure={identifier!r}.")
