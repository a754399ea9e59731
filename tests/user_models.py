"""A corpus of models written the way keras-io's examples write them.

Nobody here would write them this way on purpose, which is the point:
preprocessing adapted inside the model, nested `Sequential`s, custom
layers that make their sublayers in `__init__` and have no `build()`,
shared layers, several inputs and outputs, string inputs, SeparableConv.
Every builder returns `(model, inputs)`: a built model with its state
(adapted statistics, vocabularies) and a batch to call it on.

`tests/test_identity.py` checks the invariant over all of them: wrapping
is an identity until the first mask update.
"""

import keras
import numpy as np

L = keras.layers


def _rng(seed=0):
    return np.random.default_rng(seed)


# --- custom layers in the styles of keras-io's examples ---------------------

@keras.saving.register_keras_serializable(package="corpus")
class TokenAndPositionEmbedding(L.Layer):
    """keras-io 'Text classification with Transformer': sublayers made in
    `__init__`, no `build()`, a `keras.ops` position range in `call`."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
        self.token_emb = L.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = L.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = keras.ops.arange(0, keras.ops.shape(x)[-1], 1)
        return self.token_emb(x) + self.pos_emb(positions)

    def get_config(self):
        return {**super().get_config(), "maxlen": self.maxlen,
                "vocab_size": self.vocab_size, "embed_dim": self.embed_dim}


@keras.saving.register_keras_serializable(package="corpus")
class TransformerBlock(L.Layer):
    """keras-io's transformer block: attention, a nested `Sequential`
    feed-forward, two LayerNorms and Dropout, all made in `__init__`."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim, self.rate = (
            embed_dim, num_heads, ff_dim, rate)
        self.att = L.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([L.Dense(ff_dim, activation="relu"), L.Dense(embed_dim)])
        self.layernorm1 = L.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = L.LayerNormalization(epsilon=1e-6)
        self.dropout1 = L.Dropout(rate)
        self.dropout2 = L.Dropout(rate)

    def call(self, inputs, training=False):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.dropout2(self.ffn(out1), training=training)
        return self.layernorm2(out1 + ffn_output)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim,
                "num_heads": self.num_heads, "ff_dim": self.ff_dim, "rate": self.rate}


@keras.saving.register_keras_serializable(package="corpus")
class Patches(L.Layer):
    """keras-io 'Image classification with Vision Transformer': no weights."""

    def __init__(self, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size

    def call(self, images):
        size = self.patch_size
        shape = keras.ops.shape(images)
        patches = keras.ops.image.extract_patches(images, size=size)
        rows, cols = shape[1] // size, shape[2] // size
        return keras.ops.reshape(patches, (shape[0], rows * cols, size * size * shape[-1]))

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="corpus")
class PatchEncoder(L.Layer):
    """keras-io's ViT patch encoder: a Dense and an Embedding, no `build()`."""

    def __init__(self, num_patches, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_patches, self.projection_dim = num_patches, projection_dim
        self.projection = L.Dense(units=projection_dim)
        self.position_embedding = L.Embedding(input_dim=num_patches,
                                              output_dim=projection_dim)

    def call(self, patch):
        positions = keras.ops.expand_dims(keras.ops.arange(0, self.num_patches, 1), axis=0)
        return self.projection(patch) + self.position_embedding(positions)

    def get_config(self):
        return {**super().get_config(), "num_patches": self.num_patches,
                "projection_dim": self.projection_dim}


@keras.saving.register_keras_serializable(package="corpus")
class Sampling(L.Layer):
    """keras-io's VAE sampling layer: random state (a SeedGenerator), no weights."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + keras.ops.exp(0.5 * z_log_var) * epsilon


@keras.saving.register_keras_serializable(package="corpus")
class TwoTowers(L.Layer):
    """A custom layer that builds its Dense sublayers in `build()`: two
    kernels of very different sizes inside one layer."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.wide = L.Dense(self.units * 8, activation="relu")
        self.wide.build(input_shape)
        self.narrow = L.Dense(self.units)
        self.narrow.build((*input_shape[:-1], self.units * 8))

    def call(self, x):
        return self.narrow(self.wide(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# --- the models ---------------------------------------------------------------

def mnist_convnet():
    """keras-io 'Simple MNIST convnet' (smaller)."""
    model = keras.Sequential([
        keras.Input((12, 12, 1)),
        L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(2),
        L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")])
    return model, _rng().random((4, 12, 12, 1)).astype("float32")


def adapted_normalization():
    """Normalization adapted on data far from 0 mean, 1 variance: a copy
    that loses the statistics is off by the data's scale."""
    data = (_rng().standard_normal((64, 6)) * 50 + 100).astype("float32")
    norm = L.Normalization()
    norm.adapt(data)
    inputs = keras.Input((6,))
    x = L.Dense(8, activation="relu")(norm(inputs))
    model = keras.Model(inputs, L.Dense(2)(x))
    return model, data[:4]


def vit_with_augmentation():
    """keras-io's ViT: an adapted Normalization inside a `Sequential`
    augmentation model, Patches, PatchEncoder, transformer layers."""
    images = _rng().random((16, 8, 8, 3)).astype("float32") * 255
    augmentation = keras.Sequential([L.Normalization(), L.Resizing(8, 8),
                                     L.RandomFlip("horizontal")], name="data_augmentation")
    augmentation.layers[0].adapt(images)
    inputs = keras.Input((8, 8, 3))
    patches = Patches(4)(augmentation(inputs))
    x = PatchEncoder(4, 8)(patches)
    y = L.LayerNormalization(epsilon=1e-6)(x)
    y = L.MultiHeadAttention(num_heads=2, key_dim=8, dropout=0.1)(y, y)
    x = L.Add()([y, x])
    x = L.Flatten()(L.LayerNormalization(epsilon=1e-6)(x))
    x = L.Dense(16, activation=keras.activations.gelu)(x)
    model = keras.Model(inputs, L.Dense(3)(L.Dropout(0.5)(x)))
    return model, images[:4]


def text_transformer():
    """keras-io 'Text classification with Transformer'."""
    inputs = L.Input(shape=(10,))
    x = TokenAndPositionEmbedding(10, 50, 8)(inputs)
    x = TransformerBlock(8, 2, 16)(x)
    x = L.GlobalAveragePooling1D()(x)
    x = L.Dense(12, activation="relu")(L.Dropout(0.1)(x))
    model = keras.Model(inputs, L.Dense(2, activation="softmax")(x))
    return model, _rng().integers(0, 50, (4, 10)).astype("int32")


def mini_xception():
    """keras-io 'Image classification from scratch' (smaller): Rescaling,
    SeparableConv2D, BatchNormalization, residual adds."""
    inputs = keras.Input((16, 16, 3))
    x = L.Rescaling(1.0 / 255)(inputs)
    x = L.Conv2D(8, 3, strides=2, padding="same")(x)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    previous = x
    for size in (8, 16):
        x = L.Activation("relu")(x)
        x = L.SeparableConv2D(size, 3, padding="same")(x)
        x = L.BatchNormalization()(x)
        x = L.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = L.Conv2D(size, 1, strides=2, padding="same")(previous)
        x = L.add([x, residual])
        previous = x
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(1)(L.Dropout(0.25)(x)))
    return model, (_rng().random((4, 16, 16, 3)) * 255).astype("float32")


def vae_encoder():
    """keras-io's VAE encoder: two outputs of Dense heads and a Sampling
    layer (random state), three outputs."""
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, activation="relu", strides=2, padding="same")(inputs)
    x = L.Dense(8, activation="relu")(L.Flatten()(x))
    z_mean = L.Dense(2, name="z_mean")(x)
    z_log_var = L.Dense(2, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    model = keras.Model(inputs, [z_mean, z_log_var, z], name="encoder")
    return model, _rng().random((4, 8, 8, 1)).astype("float32")


def shared_and_nested():
    """One Dense called on two inputs (a siamese tower), a nested
    Functional model called twice, and two outputs."""
    tower_in = keras.Input((5,))
    tower = keras.Model(tower_in, L.Dense(4, activation="relu")(tower_in), name="tower")
    shared = L.Dense(6, activation="tanh", name="shared")
    a, b = keras.Input((5,), name="a"), keras.Input((5,), name="b")
    ha, hb = shared(a), shared(b)
    ta, tb = tower(a), tower(b)
    merged = L.Concatenate()([ha, hb, ta, tb])
    out1 = L.Dense(3, name="out1")(merged)
    out2 = L.Dense(1, name="out2")(L.Subtract()([ha, hb]))
    model = keras.Model([a, b], [out1, out2])
    rng = _rng()
    return model, [rng.standard_normal((4, 5)).astype("float32"),
                   rng.standard_normal((4, 5)).astype("float32")]


def custom_build_layer():
    """A custom layer whose two Dense sublayers are made in `build()`."""
    inputs = keras.Input((6,))
    model = keras.Model(inputs, L.Dense(2)(TwoTowers(3)(inputs)))
    return model, _rng().standard_normal((4, 6)).astype("float32")


def string_lookup():
    """An adapted StringLookup and an Embedding: string inputs (TensorFlow
    only: JAX and PyTorch tensors hold no strings)."""
    words = np.array([["cat", "dog", "fish"], ["dog", "dog", "bird"],
                      ["cat", "emu", "fish"], ["bird", "cat", "dog"]])
    lookup = L.StringLookup()
    lookup.adapt(words.reshape(-1))
    inputs = keras.Input((3,), dtype="string")
    x = L.Embedding(lookup.vocabulary_size(), 4)(lookup(inputs))
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(x)))
    return model, words


def text_vectorization():
    """An adapted TextVectorization inside the model (TensorFlow only)."""
    texts = np.array([["the cat sat"], ["a dog ran far"], ["the emu sat down"],
                      ["cat and dog"]])
    vectorize = L.TextVectorization(max_tokens=20, output_sequence_length=5)
    vectorize.adapt(texts.reshape(-1))
    inputs = keras.Input((1,), dtype="string")
    x = L.Embedding(20, 4)(vectorize(inputs))
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(x)))
    return model, texts


# name -> builder; the string models run on TensorFlow only.
CORPUS = {
    "mnist_convnet": mnist_convnet,
    "adapted_normalization": adapted_normalization,
    "vit_with_augmentation": vit_with_augmentation,
    "text_transformer": text_transformer,
    "mini_xception": mini_xception,
    "vae_encoder": vae_encoder,
    "shared_and_nested": shared_and_nested,
    "custom_build_layer": custom_build_layer,
    "string_lookup": string_lookup,
    "text_vectorization": text_vectorization,
}
STRING_MODELS = ("string_lookup", "text_vectorization")
