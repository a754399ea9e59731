"""Keras-native model builders by name, as used by the pruning papers.

>>> from keras_progprune import models
>>> models.get_model("lenet_300_100").count_params()
266610
"""

from keras_progprune.models.lenet import lenet5
from keras_progprune.models.lenet import lenet_300_100
from keras_progprune.models.resnet import resnet18
from keras_progprune.models.resnet import resnet20
from keras_progprune.models.resnet import resnet32
from keras_progprune.models.vgg import vgg19
from keras_progprune.models.vgg import vgg_like
from keras_progprune.models.vit import vit_tiny

# name -> (builder, default input shape, default dataset)
MODELS = {
    "lenet_300_100": (lenet_300_100, (28, 28, 1), "mnist"),
    "lenet5": (lenet5, (28, 28, 1), "mnist"),
    "vgg_like": (vgg_like, (32, 32, 3), "cifar10"),
    "vgg19": (vgg19, (32, 32, 3), "cifar10"),
    "resnet18": (resnet18, (32, 32, 3), "cifar10"),
    "resnet20": (resnet20, (32, 32, 3), "cifar10"),
    "resnet32": (resnet32, (32, 32, 3), "cifar10"),
    "vit_tiny": (vit_tiny, (28, 28, 1), "mnist"),  # needs KerasHub (the `hub` extra)
}


def get_model(name, input_shape=None, num_classes=None, **kwargs):
    """Builds a model by name.

    Args:
        name: str, one of `MODELS`.
        input_shape: tuple, image shape. Defaults to the model's dataset
            shape (28x28x1 for LeNets, 32x32x3 otherwise).
        num_classes: int. Defaults to 10.
        **kwargs: passed to the builder (e.g. `dropout` for `vgg_like`).

    Returns:
        A Functional `keras.Model` that outputs logits.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
    """
    if name not in MODELS:
        raise ValueError(
            f"Unknown model name. Received: name={name!r}. Valid names: "
            f"{sorted(MODELS)}."
        )
    builder, default_shape, _ = MODELS[name]
    return builder(
        input_shape=tuple(input_shape) if input_shape else default_shape,
        num_classes=num_classes or 10,
        **kwargs,
    )


__all__ = ["MODELS", "get_model", "lenet5", "lenet_300_100", "resnet18",
           "resnet20", "resnet32", "vgg19", "vgg_like", "vit_tiny"]
