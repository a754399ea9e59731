import keras
import numpy as np
import pytest

import keras_progprune as kp
from keras_progprune import backend
from keras_progprune import models

# Trainable parameter counts, pinned. Published counts where they exist:
# LeNet-300-100 266K and LeNet-5-Caffe 431K (SNIP Table 1), VGG-like 15.0M
# (SNIP Table 2), VGG-19 20.0M (GraSP), ResNet-18 11,173,962 (kuangliu
# pytorch-cifar), ResNet-20 0.27M (He et al. 2016; LTH: 274K weights).
PARAMS = {
    "lenet_300_100": 266_610,
    "lenet5": 431_080,
    "vgg_like": 14_987_210,
    "vgg19": 20_035_018,
    "resnet18": 11_173_962,
    "resnet20": 272_474,
    "resnet32": 466_906,
}
PUBLISHED_MILLIONS = {"lenet_300_100": 0.266, "lenet5": 0.431, "vgg_like": 15.0,
                      "vgg19": 20.0, "resnet18": 11.17, "resnet20": 0.27}


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_are_pinned_and_published(name):
    model = models.get_model(name)
    assert _trainable(model) == PARAMS[name]
    if name in PUBLISHED_MILLIONS:
        assert _trainable(model) / 1e6 == pytest.approx(PUBLISHED_MILLIONS[name], rel=0.01)


def test_resnet18_has_11_2m_prunable_weights():
    pruned = kp.prune_low_magnitude(models.resnet18(), scope="global")
    assert kp.sparsity_report(pruned)["total"]["weights"] == 11_164_352


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_forward_and_backward_on_tiny_input(name):
    model = models.get_model(name, num_classes=7)
    shape = models.MODELS[name][1]
    x = np.random.default_rng(0).standard_normal((2,) + shape).astype("float32")
    logits = model(x, training=True)
    grads = backend.gradients(
        lambda: keras.ops.mean(model(x, training=True) ** 2), model.trainable_variables)
    assert tuple(logits.shape) == (2, 7)
    assert all(np.any(keras.ops.convert_to_numpy(g) != 0) for g in grads[:1])
    assert isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth")  # Functional


def test_input_shape_is_configurable():
    assert models.get_model("lenet_300_100", input_shape=(14, 14, 1)).count_params() == \
        196 * 300 + 300 + 300 * 100 + 100 + 1010


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown model name\. Received: name='alexnet'\. "
                       r"Valid names: \['lenet5', 'lenet_300_100', 'resnet18'"):
        models.get_model("alexnet")


def test_bad_resnet_depth():
    from keras_progprune.models import resnet

    with pytest.raises(ValueError, match=r"`depth` must be 6n\+2 .* Received: depth=21"):
        resnet._he_resnet(21, (32, 32, 3), 10)
