"""CIFAR VGG networks with BatchNorm: SNIP's VGG-like and GraSP's VGG-19."""

import keras

L = keras.layers

_VGG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
          512, 512, 512, "M", 512, 512, 512, "M"]
_VGG_19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
           512, 512, 512, 512, "M", 512, 512, 512, 512]


def _features(x, config):
    conv = pool = 0
    for v in config:
        if v == "M":
            pool += 1
            x = L.MaxPooling2D(2, name=f"pool{pool}")(x)
            continue
        conv += 1
        x = L.Conv2D(v, 3, padding="same", use_bias=False, name=f"conv{conv}")(x)
        x = L.BatchNormalization(name=f"bn{conv}")(x)
        x = L.ReLU(name=f"relu{conv}")(x)
    return x


def vgg_like(input_shape=(32, 32, 3), num_classes=10, dropout=0.5):
    """SNIP's "VGG-like": VGG-D (16 layers) with BatchNorm, for CIFAR-10.

    Zagoruyko's cifar.torch variant that SNIP used: 13 conv3x3 + BN + ReLU
    layers with max pooling, then a 512-unit FC layer with BN and dropout,
    and a linear classifier. About 15.0M parameters (SNIP Table 2: 15.0M).

    Args:
        input_shape: tuple. Defaults to (32, 32, 3).
        num_classes: int. Defaults to 10.
        dropout: float, dropout rate before each FC layer. Defaults to 0.5.

    Returns:
        A Functional `keras.Model` with logits output.
    """
    inputs = keras.Input(input_shape, name="image")
    x = _features(inputs, _VGG_D)
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(dropout, name="drop1")(x)
    x = L.Dense(512, use_bias=False, name="fc1")(x)
    x = L.BatchNormalization(name="fc1_bn")(x)
    x = L.ReLU(name="fc1_relu")(x)
    x = L.Dropout(dropout, name="drop2")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="vgg_like")


def vgg19(input_shape=(32, 32, 3), num_classes=10):
    """CIFAR VGG-19 with BatchNorm and one linear head, as in GraSP's code.

    16 conv3x3 + BN + ReLU layers (the last block has no pooling), a 2x2
    average pool, and one linear layer (about 20.0M parameters).

    Args:
        input_shape: tuple. Defaults to (32, 32, 3).
        num_classes: int. Defaults to 10.

    Returns:
        A Functional `keras.Model` with logits output.
    """
    inputs = keras.Input(input_shape, name="image")
    x = _features(inputs, _VGG_19)
    x = L.AveragePooling2D(2, name="avgpool")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="vgg19")
