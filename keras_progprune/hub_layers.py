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

`shrink` builds these only when it removes heads; a model shrunk in its
feed-forward neurons alone keeps KerasHub's classes. The classes are
registered under the `keras_progprune` package, so a `.keras` file holding
one loads with `kp.load_model`, or with `keras.saving.load_model` after
`import keras_progprune.hub_layers` (`import keras_progprune` imports this
module itself only when KerasHub is already imported: KerasHub imports
TensorFlow); the SavedModel export needs neither package.
"""

import keras
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
                _swap_attention(block, "mha", self.head_dim, (None, None, self.hidden_dim))
