"""LeNet-300-100 and LeNet-5-Caffe for MNIST-sized inputs."""

import keras

L = keras.layers


def lenet_300_100(input_shape=(28, 28, 1), num_classes=10):
    """LeNet-300-100: a 784-300-100-10 MLP with ReLU (266,610 parameters).

    Args:
        input_shape: tuple, image shape; flattened first. Defaults to
            (28, 28, 1).
        num_classes: int. Defaults to 10.

    Returns:
        A Functional `keras.Model` with logits output.
    """
    inputs = keras.Input(input_shape, name="image")
    x = L.Flatten(name="flatten")(inputs)
    x = L.Dense(300, activation="relu", name="fc1")(x)
    x = L.Dense(100, activation="relu", name="fc2")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="lenet_300_100")


def lenet5(input_shape=(28, 28, 1), num_classes=10):
    """LeNet-5-Caffe: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10.

    431,080 parameters on 28x28x1 inputs, as in SNIP's Table 1 ("431K").
    Valid padding and 2x2 max pooling as in Caffe's lenet.prototxt; ReLU
    after each hidden layer.

    Args:
        input_shape: tuple. Defaults to (28, 28, 1).
        num_classes: int. Defaults to 10.

    Returns:
        A Functional `keras.Model` with logits output.
    """
    inputs = keras.Input(input_shape, name="image")
    x = L.Conv2D(20, 5, activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(50, 5, activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(500, activation="relu", name="fc1")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="lenet5")
