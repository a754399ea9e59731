"""KerasHub blocks whose config can say their head size, so `shrink` can
remove attention heads exactly.

KerasHub's `TransformerEncoder`, `TransformerDecoder` and `ViTEncoder`
derive their head size as `hidden_dim // num_heads`: a block rebuilt from
its config with fewer heads would get wider heads, not fewer heads of the
same size. The subclasses here take one more config key, `head_dim`;
everything else (`call`, masks, caches, the other sublayers, the order of
the weights) is KerasHub's own. After KerasHub's `build`, the
self-attention layer is made again from its own config with `num_heads`
heads of `head_dim`, and put in the place of the first one (in every block
of a `ViTEncoder`), so the weights are tracked in the same order.

Grouped-query decoders (Llama 2 and 3, Qwen 2/2.5, Phi-3) derive it the
same way in their attention and in their `CausalLM`'s generation cache:
`HeadSized<Family>Backbone` remakes each block's attention projections at
`head_dim` after KerasHub builds them, and `HeadSized<Family>CausalLM`
sizes the cache by it (`head_sized` maps a family to them).

`shrink` builds these only when it removes heads; a model shrunk in its
feed-forward neurons alone keeps KerasHub's classes. The classes are
registered under the `keras_progprune` package, so a `.keras` file holding
one loads with `kp.load_model`, or with `keras.saving.load_model` after
`import keras_progprune.hub_layers` (`import keras_progprune` imports this
module itself only when KerasHub is already imported: KerasHub imports
TensorFlow); the SavedModel export needs neither package.
"""

import math

import keras
import keras_hub
from keras_hub.layers import TransformerDecoder
from keras_hub.layers import TransformerEncoder

from keras_progprune import walk

ViTEncoder = walk.hub_class("ViTEncoder")


def _swap_attention(block, attribute, head_dim, query_shape):
    """Replaces `block.<attribute>` (a built MultiHeadAttention) with one of
    the same config but `key_dim = value_dim = head_dim`, in the same
    tracking slot."""
    old = getattr(block, attribute)
    config = {**old.get_config(), "key_dim": int(head_dim), "value_dim": int(head_dim)}
    new = type(old).from_config(config)
    new.build(query_shape=query_shape, value_shape=query_shape)
    # In the old one's place, so the weights keep KerasHub's order (what
    # files and the weight copies of `shrink` rely on).
    walk.replace_sublayer(block, attribute, new)


class _HeadDim:
    """Adds `head_dim` (None: KerasHub's `hidden_dim // num_heads`)."""

    def __init__(self, *args, head_dim=None, **kwargs):
        if head_dim is not None and (not isinstance(head_dim, int) or head_dim < 1):
            raise ValueError(
                f"`head_dim` must be a positive int or None. Received: head_dim={head_dim!r}.")
        # Set first: KerasHub's constructor may build the layer (from the
        # shapes a saved config holds), and `build` reads it.
        object.__setattr__(self, "head_dim", head_dim)
        super().__init__(*args, **kwargs)

    def _sized(self, query_shape):
        if self.head_dim is not None:
            _swap_attention(self, "_self_attention_layer", self.head_dim, query_shape)

    def get_config(self):
        return {**super().get_config(), "head_dim": self.head_dim}


@keras.saving.register_keras_serializable(package="keras_progprune")
class HeadSizedTransformerEncoder(_HeadDim, TransformerEncoder):
    """KerasHub's `TransformerEncoder` with an explicit `head_dim`.

    Args:
        head_dim: size of each attention head; None for KerasHub's
            `hidden_dim // num_heads`.
        **kwargs: `TransformerEncoder`'s arguments.
    """

    def build(self, inputs_shape):
        super().build(inputs_shape)
        self._sized(inputs_shape)


@keras.saving.register_keras_serializable(package="keras_progprune")
class HeadSizedTransformerDecoder(_HeadDim, TransformerDecoder):
    """KerasHub's `TransformerDecoder` with an explicit `head_dim` for its
    self-attention (a decoder with cross-attention keeps all its heads).

    Args:
        head_dim: size of each self-attention head; None for KerasHub's
            `hidden_dim // num_heads`.
        **kwargs: `TransformerDecoder`'s arguments.
    """

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        super().build(decoder_sequence_shape, encoder_sequence_shape)
        self._sized(decoder_sequence_shape)


@keras.saving.register_keras_serializable(package="keras_progprune")
class HeadSizedViTEncoder(_HeadDim, ViTEncoder):
    """KerasHub's `ViTEncoder` (the stack of a `ViTBackbone`'s blocks) with
    an explicit `head_dim` for every block's attention.

    Args:
        head_dim: size of each attention head; None for KerasHub's
            `hidden_dim // num_heads`.
        **kwargs: `ViTEncoder`'s arguments.
    """

    def build(self, input_shape):
        super().build(input_shape)
        if self.head_dim is not None:
            for block in self.encoder_layers:
                with keras.name_scope(block.name):  # the paths a LayoutMap matches
                    _swap_attention(block, "mha", self.head_dim,
                                    (None, None, self.hidden_dim))


# -- decoder LLMs whose attention derives its head size -------------------
# keras-hub 0.32.0: Llama's, Llama 3's, Qwen 2.5's and Phi-3's attention
# builds its projections with `hidden_dim // num_query_heads`, and their
# CausalLM sizes the generation cache the same way. The subclasses below
# take `head_dim`; with it, each block's query, key, value and output
# projections are made again at that size after KerasHub builds them (in
# their tracking slots), and the task's cache uses it.


def _resize_heads(block, head_dim):
    """Remakes the projections of `block`'s attention (the one sublayer
    whose class name ends in "Attention") for heads of `head_dim`: each
    EinsumDense that gives `[..., heads, head_dim]` (query, key, value) and
    the one that reads `[..., heads, head_dim]` (output)."""
    attention = next(v for v in walk.attributes(block).values()
                     if type(v).__name__.endswith("Attention"))
    einsums = {name: v for name, v in walk.attributes(attention).items()
               if isinstance(v, keras.layers.EinsumDense)}
    hidden = heads = None
    for name, old in einsums.items():
        config = old.get_config()
        if len(config["output_shape"]) == 3:  # (None, heads, head_dim)
            config["output_shape"] = [*config["output_shape"][:-1], int(head_dim)]
            new = type(old).from_config(config)
            hidden = int(old.kernel.shape[0])
            with walk.scope_of(old.kernel):
                new.build((None, None, hidden))
            walk.replace_sublayer(attention, name, new)
            if "query" in name:
                heads = int(config["output_shape"][1])
    for name, old in einsums.items():
        if len(old.get_config()["output_shape"]) == 2:  # (None, hidden)
            new = type(old).from_config(old.get_config())
            with walk.scope_of(old.kernel):
                new.build((None, None, heads, int(head_dim)))
            walk.replace_sublayer(attention, name, new)
    attention._inv_norm_factor = 1.0 / math.sqrt(head_dim)


class _HeadSizedBackbone:
    """Adds `head_dim` (None: KerasHub's `hidden_dim // num_query_heads`)
    to a grouped-query decoder backbone."""

    def __init__(self, *args, head_dim=None, **kwargs):
        if head_dim is not None and (not isinstance(head_dim, int) or head_dim < 1):
            raise ValueError(
                f"`head_dim` must be a positive int or None. Received: head_dim={head_dim!r}.")
        super().__init__(*args, **kwargs)
        self.head_dim = head_dim
        if head_dim is not None:
            for block in self.transformer_layers:
                _resize_heads(block, head_dim)

    def get_config(self):
        return {**super().get_config(), "head_dim": self.head_dim}


class _HeadSizedCausalLM:
    """Sizes the generation cache by the backbone's `head_dim`."""

    def _build_cache(self, token_ids):
        backbone = self.backbone
        head_dim = backbone.head_dim or backbone.hidden_dim // backbone.num_query_heads
        shape = [keras.ops.shape(token_ids)[0], backbone.num_layers, 2,
                 keras.ops.shape(token_ids)[1], backbone.num_key_value_heads, head_dim]
        cache = keras.ops.zeros(shape, dtype=self.compute_dtype)
        _, hidden_states, cache = self.call_with_cache(token_ids, cache, 0)
        return hidden_states, cache


_register = keras.saving.register_keras_serializable(package="keras_progprune")


@_register
class HeadSizedLlamaBackbone(_HeadSizedBackbone, keras_hub.models.LlamaBackbone):
    """KerasHub's `LlamaBackbone` with an explicit `head_dim`."""


@_register
class HeadSizedLlama3Backbone(_HeadSizedBackbone, keras_hub.models.Llama3Backbone):
    """KerasHub's `Llama3Backbone` with an explicit `head_dim`."""


@_register
class HeadSizedQwenBackbone(_HeadSizedBackbone, keras_hub.models.QwenBackbone):
    """KerasHub's `QwenBackbone` (Qwen 2 and 2.5) with an explicit `head_dim`."""


@_register
class HeadSizedPhi3Backbone(_HeadSizedBackbone, keras_hub.models.Phi3Backbone):
    """KerasHub's `Phi3Backbone` with an explicit `head_dim`."""


@_register
class HeadSizedLlamaCausalLM(_HeadSizedCausalLM, keras_hub.models.LlamaCausalLM):
    """KerasHub's `LlamaCausalLM` around a `HeadSizedLlamaBackbone`."""

    backbone_cls = HeadSizedLlamaBackbone  # what `from_preset` matches the task by


@_register
class HeadSizedLlama3CausalLM(_HeadSizedCausalLM, keras_hub.models.Llama3CausalLM):
    """KerasHub's `Llama3CausalLM` around a `HeadSizedLlama3Backbone`."""

    backbone_cls = HeadSizedLlama3Backbone  # what `from_preset` matches the task by


@_register
class HeadSizedQwenCausalLM(_HeadSizedCausalLM, keras_hub.models.QwenCausalLM):
    """KerasHub's `QwenCausalLM` around a `HeadSizedQwenBackbone`."""

    backbone_cls = HeadSizedQwenBackbone  # what `from_preset` matches the task by


@_register
class HeadSizedPhi3CausalLM(_HeadSizedCausalLM, keras_hub.models.Phi3CausalLM):
    """KerasHub's `Phi3CausalLM` around a `HeadSizedPhi3Backbone`."""

    backbone_cls = HeadSizedPhi3Backbone  # what `from_preset` matches the task by


# KerasHub backbone class name -> (its head-sized subclass, {task class name:
# the task's subclass}).
_HEAD_SIZED = {
    "LlamaBackbone": (HeadSizedLlamaBackbone, {"LlamaCausalLM": HeadSizedLlamaCausalLM}),
    "Llama3Backbone": (HeadSizedLlama3Backbone,
                       {"Llama3CausalLM": HeadSizedLlama3CausalLM}),
    "QwenBackbone": (HeadSizedQwenBackbone, {"QwenCausalLM": HeadSizedQwenCausalLM}),
    "Phi3Backbone": (HeadSizedPhi3Backbone, {"Phi3CausalLM": HeadSizedPhi3CausalLM}),
}


def head_sized(backbone_class, task_class=None):
    """`(backbone class, task class or None)` that can say `head_dim`, for
    a KerasHub backbone class (and its task's), or None where there is
    none."""
    for cls in backbone_class.__mro__:
        if issubclass(cls, _HeadSizedBackbone):
            break
        if cls.__name__ in _HEAD_SIZED:
            new, tasks = _HEAD_SIZED[cls.__name__]
            if task_class is None:
                return new, None
            task = tasks.get(task_class.__name__)
            return None if task is None else (new, task)
    else:
        return None
    # Already head-sized: its own classes.
    return backbone_class, task_class
