"""`PruningWrapper`: the Keras layer that owns the pruning state of a layer."""

import warnings

import keras

from keras_progprune import backend
from keras_progprune import registry
from keras_progprune import schedules as schedules_lib
from keras_progprune import structures as structures_lib
from keras_progprune import walk
from keras_progprune.substitution import Substituted

SCOPES = ("layer", "global")

# One byte per weight, whatever the weight's dtype: a float32 mask would
# double a pruned model's memory (28 GB more at 7B parameters). Read as
# `weight * cast(mask, weight.dtype)`. bool, not uint8: TensorFlow's
# collective ops (MultiWorkerMirroredStrategy's initial broadcast) take no
# uint8.
MASK_DTYPE = "bool"

_NO_CALLBACK = (
    "Layer {name!r} is wrapped for pruning, but the model is being trained "
    "without `ProgressivePruningCallback`. Pass "
    "`callbacks=[keras_progprune.ProgressivePruningCallback()]` to "
    "`model.fit` (in a custom training loop, call the callback's "
    "`set_model`, `on_train_begin` and `on_train_batch_begin` yourself), or "
    "call `keras_progprune.strip_pruning(model)` first to train a plain model."
)


def training_without_callback_error(layer_name):
    """The error for training a pruned model without the callback."""
    return ValueError(_NO_CALLBACK.format(name=layer_name))


def check_scope(scope):
    if scope not in SCOPES:
        raise ValueError(
            f"`scope` must be one of {SCOPES}. Received: scope={scope!r}. "
            "Use 'layer' for the same sparsity in every layer, 'global' for "
            "one threshold across all wrapped layers."
        )


def check_schedule(pruning_schedule):
    """Returns a schedule object: a fresh default when given None."""
    if pruning_schedule is None:
        # Built per call, never shared across wrappers or models.
        return schedules_lib.ConstantSparsity(0.5, begin_step=0)
    if isinstance(pruning_schedule, dict):
        pruning_schedule = keras.saving.deserialize_keras_object(pruning_schedule)
    if not isinstance(pruning_schedule, schedules_lib.PruningSchedule):
        raise ValueError(
            "`pruning_schedule` must be a `keras_progprune.PruningSchedule` "
            "such as `PolynomialDecay(...)` or `ConstantSparsity(...)`. "
            f"Received: pruning_schedule={pruning_schedule!r}."
        )
    return pruning_schedule


class _MaskedRegularizer:
    """A weight's own regularizer, applied to the weight as the layer sees
    it (`weight * mask`), so pruned entries add nothing to the loss."""

    def __init__(self, inner, keep):
        self.inner = inner
        self.keep = keep

    def __call__(self, w):
        return self.inner(masked(w, self.keep))


def masked(weight, keep):
    """`weight` as the wrapped layer reads it: `weight * keep`, the one-byte
    mask cast to the weight's dtype."""
    return keras.ops.multiply(weight, keras.ops.cast(keep, weight.dtype))


def effective(weight, keep):
    """`weight` with pruned entries at +0.0 (never -0.0: all-zero bytes
    compress far better in saved files)."""
    weight = keras.ops.convert_to_tensor(weight)
    return keras.ops.where(keras.ops.cast(keep, "bool"), weight,
                           keras.ops.zeros_like(weight))


@keras.saving.register_keras_serializable(package="keras_progprune")
class PruningWrapper(keras.layers.Wrapper):
    """Wraps a layer so that its weights can be pruned by magnitude.

    The wrapper owns one non-trainable mask variable per prunable weight
    (1.0 = kept, 0.0 = pruned) and a `pruning_step` counter. It calls the
    wrapped layer with each pruned weight read as `weight * mask`, on every
    backend, so a pruned weight has no effect on the output and gets no
    gradient, whatever the optimizer. (Its stored value is not used: it is
    set to 0.0 whenever the model is saved, at the end of `fit`, and by
    `strip_pruning`.) `ProgressivePruningCallback` recomputes the masks
    during `fit`.

    Use it directly in subclassed models (wrap in `__init__`); for
    Sequential and Functional models, `prune_low_magnitude` wraps every
    prunable layer for you.

    Args:
        layer: `keras.layers.Layer` to prune: a type whose rule names
            prunable weights (`keras_progprune.rules.prunable_layer_names()`),
            a `Bidirectional` or `TimeDistributed` around one, or a layer
            with a `get_prunable_weights()` method.
        pruning_schedule: `PruningSchedule`. Defaults to a new
            `ConstantSparsity(0.5, begin_step=0)`.
        scope: `"layer"` (this layer reaches the scheduled sparsity) or
            `"global"` (one threshold across all global-scope wrappers of
            the model; they must share one schedule). Defaults to `"layer"`.
        structure: the mask's shape: `"unstructured"` (any weight),
            `"n:m"` such as `"2:4"` (n kept in every m input channels, see
            `structures.MByN`), `"channel"` (whole output channels, see
            `structures.Channel`; the model must be Sequential or
            Functional), or a `structures.Structure`. Saved in the config.
            Defaults to `"unstructured"`.
        initial_channels: with `structure="channel"`, the layer's output
            channels before any shrink (for a layer with width groups
            inside, a list: one count per group): the schedule's fraction
            is taken of this count. Set when the wrapper is built;
            `fit_shrinking` passes it on to the smaller layer. Defaults to
            None.
        **kwargs: base `Layer` arguments such as `name`.

    Raises:
        ValueError: if `layer` is already a `PruningWrapper` or can't be
            pruned, or on a bad `pruning_schedule`, `scope` or `structure`.

    Examples:
        >>> import keras, keras_progprune as kp
        >>> dense = kp.PruningWrapper(keras.layers.Dense(4))
        >>> _ = dense(keras.ops.ones((1, 3)))
        >>> [v.name for v in dense.non_trainable_weights]
        ['pruning_mask_0', 'pruning_step']
    """

    # Read by code below the wrapper (the channel graph) to see through it
    # without importing this class.
    prunes_inner_layer = True

    def __init__(self, layer, pruning_schedule=None, scope="layer",
                 structure="unstructured", initial_channels=None, **kwargs):
        if isinstance(layer, PruningWrapper):
            raise ValueError(
                f"Layer {layer.layer.name!r} is already wrapped in a "
                f"PruningWrapper. Received: layer={layer.name!r}. Wrap each "
                "layer once; to change its schedule, strip it first with "
                "`strip_pruning`."
            )
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                "`layer` must be a `keras.layers.Layer`. "
                f"Received: layer={layer!r} of type {type(layer).__name__}."
            )
        structure = structures_lib.get(structure)
        if not structure.accepts(layer):
            structure.refuse(layer)
        check_scope(scope)
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self.pruning_schedule = check_schedule(pruning_schedule)
        self.scope = scope
        self.structure = structure
        # Channel structure: output channels before any shrink, so that the
        # schedule's fraction keeps meaning the same after `fit_shrinking`
        # removed some (set when built; saved in the config).
        if isinstance(initial_channels, (list, tuple)):
            initial_channels = [int(c) for c in initial_channels]
        elif initial_channels is not None:
            initial_channels = int(initial_channels)
        self.initial_channels = initial_channels
        # Set through `arm`/`disarm` by whatever drives the masks (the
        # callback during `fit`, a scoring pass).
        self._armed = False
        self._step_source = None
        self._pruned_weights = []
        self._pruning_masks = []
        self._accepts = None
        self.supports_masking = getattr(layer, "supports_masking", False)
        walk.bind_like(self, layer)

    def build(self, input_shape=None):
        if not self.layer.built:
            try:
                self.layer.build(input_shape)
            except TypeError as e:  # e.g. MultiHeadAttention: several input shapes
                raise ValueError(
                    f"Can't build layer {self.layer.name!r} from one input shape "
                    f"({e}). Build it before wrapping, e.g. "
                    "`layer.build(query_shape, value_shape)`, or wrap a built layer."
                ) from e
        weights = self.structure.prunable_weights(self.layer)
        if not weights and input_shape is not None and walk.builds_in_call(self.layer) \
                and any(not sub.built for sub in walk.sublayers(self.layer)):
            # A custom layer without `build()` (its sublayers made in
            # `__init__`) is "built" by Keras's default build with its
            # sublayers still empty; they get their weights when it is called.
            walk.trace_call(self.layer, input_shape)
            weights = self.structure.prunable_weights(self.layer)
        if not weights:
            raise ValueError(
                f"Layer {self.layer.name!r} of type {type(self.layer).__name__} has "
                "no prunable weights after build; nothing to prune. Leave it "
                "unwrapped (`exclude`), or give its class a `build()` that builds "
                "its sublayers, or return its weight variables from "
                "`get_prunable_weights()`."
            )
        # Each weight's input-channel axis, where N:M groups run.
        self.input_axes = registry.input_axes(self.layer, weights)
        misfits = [f"{w.name} ({self.structure.describe_misfit(tuple(w.shape), axis)})"
                   for w, axis in zip(weights, self.input_axes)
                   if not self.structure.fits(tuple(w.shape), axis)]
        if misfits:
            warnings.warn(
                f"Layer {self.layer.name!r} can't carry structure {self.structure!r}: "
                + "; ".join(misfits) + ". Those weights are left dense. Exclude the "
                "layer, or give it a compatible shape.", stacklevel=2)
        masks = []
        for i, w in enumerate(weights):
            # `add_weight` takes no layout, and a mask must be laid out like
            # its weight under `keras.distribution.ModelParallel` (sharded the
            # same way, so no device holds a whole mask). A Variable assigned
            # to a layer attribute is tracked as `add_weight`'s are.
            keep = keras.Variable(
                initializer="ones",
                shape=tuple(w.shape),
                dtype=MASK_DTYPE,
                trainable=False,
                name=f"pruning_mask_{i}",
                layout=backend.variable_layout(w),
            )
            if w.regularizer is not None and not isinstance(w.regularizer, _MaskedRegularizer):
                w.regularizer = _MaskedRegularizer(w.regularizer, keep)
            masks.append(keep)
        # Tracked here, before `pruning_step`: the saved variable order
        # (masks, then the step) is the file format.
        self._pruning_masks = masks
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            # int32, not int64: JAX has no int64 unless x64 is enabled. Files
            # written with the int64 step of earlier versions load as well.
            dtype="int32",
            initializer="zeros",
            trainable=False,
        )
        self._pruned_weights = weights
        # What `Substituted` carries in and out besides the pruned weights.
        pruned = {id(w) for w in weights}
        self._other_variables = [v for v in self.layer.variables if id(v) not in pruned]
        if self.initial_channels is None:
            self.initial_channels = self.structure.initial_size(self.layer)
        self.built = True

    @property
    def pruned_weights(self):
        """The wrapped layer's prunable variables, in the order of `masks`."""
        return list(self._pruned_weights)

    @property
    def masks(self):
        """The mask variables (bool: True kept), one per pruned weight."""
        return list(self._pruning_masks)

    def check_not_quantized(self):
        """Raises if `model.quantize` has replaced the wrapped layer's weights.

        Keras's `quantize` swaps a layer's float kernel for an int8 one; the
        masks then bind to a variable the layer no longer uses.
        """
        mode = getattr(self.layer, "quantization_mode", None)
        if mode:
            raise ValueError(
                f"Layer {self.layer.name!r} was quantized ({mode!r}) while wrapped for "
                "pruning, so its masks no longer apply. Quantization-aware fine-tuning "
                "of a wrapped model is not supported: call "
                "`keras_progprune.strip_pruning(model)` first, then "
                "`.quantize(...)` the stripped model.")

    @property
    def armed(self):
        """Whether something drives the masks, so training is allowed."""
        return self._armed

    def arm(self, step_source=None):
        """Allows training-mode calls; done by whatever drives the masks.

        Args:
            step_source: optional object with `current_step()`, asked for the
                step count whenever the wrapper is saved (the callback).
        """
        self._armed = True
        self._step_source = step_source

    def disarm(self):
        """Training-mode calls raise again (the callback has finished)."""
        self._armed = False
        self._step_source = None

    def settle(self):
        """Sets the stored value of every pruned weight to +0.0.

        The forward pass never reads those values (it reads `weight *
        mask`), so this changes no output; it makes the stored weights
        match what the layer computes. Called before the wrapper is saved
        (its layer's weights are saved after it) and at the end of `fit`.
        """
        for w, keep in zip(self._pruned_weights, self._pruning_masks):
            w.assign(effective(w, keep))

    def unwrap(self):
        """The wrapped layer with the masks baked into its weights: the
        stored value of each pruned weight becomes +0.0 and each weight's
        own regularizer is given back. Changes this wrapper's layer in
        place, so call it on a copy (`strip_pruning` does).

        Raises:
            ValueError: if the layer was quantized while wrapped.
        """
        self.check_not_quantized()
        if self.built:
            self.settle()
        for w in self._pruned_weights:
            if isinstance(w.regularizer, _MaskedRegularizer):
                w.regularizer = w.regularizer.inner
        return self.layer

    def save_own_variables(self, store):
        source = self._step_source
        if source is not None and source.current_step() is not None:
            self.pruning_step.assign(source.current_step())
        self.settle()
        super().save_own_variables(store)

    def _context(self, kwargs, training, mask):
        """`kwargs` plus `training` and `mask`, each where it is given and
        the wrapped layer's `call` takes it."""
        if self._accepts is None:  # inspect.signature is slow: once per wrapper
            self._accepts = {name: walk.call_accepts(self.layer, name)
                             for name in ("training", "mask")}
        for name, value in (("training", training), ("mask", mask)):
            if value is not None and self._accepts[name]:
                kwargs[name] = value
        return kwargs

    def call(self, inputs, *args, training=None, mask=None, **kwargs):
        if training and not self._armed:
            raise training_without_callback_error(self.layer.name)
        kwargs = self._context(kwargs, training, mask)
        pairs = [(w, masked(w, keep))
                 for w, keep in zip(self._pruned_weights, self._pruning_masks)]
        with Substituted(self.layer, pairs, self._other_variables):
            return self.layer(inputs, *args, **kwargs)

    def compute_output_spec(self, *args, training=None, mask=None, **kwargs):
        # The layer's own answer: masks change no shape, and a layer with its
        # own `compute_output_shape` (KerasHub's PositionEmbedding) may not
        # trace symbolically (under JAX, its shape checks are inconclusive).
        return self.layer.compute_output_spec(
            *args, **self._context(kwargs, training, mask))

    def get_build_config(self):
        # The inner layer's own shapes: layers built from several inputs
        # (MultiHeadAttention) can't be rebuilt from the wrapper's one shape.
        config = dict(super().get_build_config() or {})
        inner = self.layer.get_build_config()
        if inner:
            config["layer_build_config"] = inner
        return config or None

    def build_from_config(self, config):
        config = dict(config or {})
        inner = config.pop("layer_build_config", None)
        if inner and not self.layer.built:
            self.layer.build_from_config(inner)
        super().build_from_config(config)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def get_config(self):
        config = {
            "pruning_schedule": keras.saving.serialize_keras_object(
                self.pruning_schedule
            ),
            "scope": self.scope,
            "structure": keras.saving.serialize_keras_object(self.structure),
        }
        if self.initial_channels is not None:
            config["initial_channels"] = self.initial_channels
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(
            config.pop("layer"), custom_objects=custom_objects
        )
        schedule = keras.saving.deserialize_keras_object(
            config.pop("pruning_schedule"), custom_objects=custom_objects
        )
        # Files written before structures existed hold no key: unstructured.
        structure = structures_lib.get(config.pop("structure", None))
        return cls(layer, pruning_schedule=schedule, structure=structure, **config)


def collect_wrappers(model):
    """All `PruningWrapper`s in `model` (itself included), each once.

    Nested models are searched; a wrapper shared between two call sites
    appears once.
    """
    if isinstance(model, PruningWrapper):
        return [model]
    return [layer for layer in walk.sublayers(model) if isinstance(layer, PruningWrapper)]


def settle(model):
    """Sets the stored value of every pruned weight in `model` to 0.0 (see
    `PruningWrapper.settle`), after bringing JAX's training state into the
    variables. Changes no output."""
    backend.sync_model_state(model)
    for wrapper in collect_wrappers(model):
        if wrapper.built:
            wrapper.settle()
