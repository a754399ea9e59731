"""CIFAR ResNets: ResNet-18 (ImageNet-style blocks, 3x3 stem) and He et
al.'s ResNet-20/32 (16/32/64 channels)."""

import keras

L = keras.layers


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                 name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, stride, name):
    shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", relu=False)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_short", relu=False)
    y = L.Add(name=f"{name}_add")([y, shortcut])
    return L.ReLU(name=f"{name}_out")(y)


def _resnet(input_shape, num_classes, stem, stages, name):
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, stem, 3, 1, "stem")
    for s, (filters, blocks) in enumerate(stages):
        for b in range(blocks):
            stride = 2 if (s > 0 and b == 0) else 1
            x = _basic_block(x, filters, stride, f"stage{s + 1}_block{b + 1}")
    x = L.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet18(input_shape=(32, 32, 3), num_classes=10):
    """CIFAR ResNet-18: 3x3 stem, 4 stages of 2 basic blocks, 64-512 channels.

    The network of the progressive-pruning paper (kuangliu/pytorch-cifar
    layout): 11,173,962 parameters, 11.2M of them prunable conv/dense
    weights.
    """
    return _resnet(input_shape, num_classes, 64,
                   [(64, 2), (128, 2), (256, 2), (512, 2)], "resnet18")


def _he_resnet(depth, input_shape, num_classes):
    if (depth - 2) % 6:
        raise ValueError(
            f"`depth` must be 6n+2 for a CIFAR ResNet. Received: depth={depth}."
        )
    n = (depth - 2) // 6
    return _resnet(input_shape, num_classes, 16, [(16, n), (32, n), (64, n)],
                   f"resnet{depth}")


def resnet20(input_shape=(32, 32, 3), num_classes=10):
    """He et al.'s CIFAR ResNet-20 (16/32/64 channels, 1x1 projection
    shortcuts as in OpenLTH). The Lottery Ticket paper's "Resnet-18"."""
    return _he_resnet(20, input_shape, num_classes)


def resnet32(input_shape=(32, 32, 3), num_classes=10):
    """He et al.'s CIFAR ResNet-32 (16/32/64 channels, 1x1 projection
    shortcuts)."""
    return _he_resnet(32, input_shape, num_classes)
