import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_progprune.experiments import data
from conftest import make_cifar_dir, make_mnist_dir, write_idx
from conftest import assert_close, assert_equal


def _all(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_mnist_idx_mirror_splits_and_normalizes(tmp_path):
    root = make_mnist_dir(tmp_path, train=40, test=20)
    train = data.load("mnist", "train", 8, data_dir=root, validation_size=10, shuffle_seed=None)
    val = data.load("mnist", "validation", 8, data_dir=root, validation_size=10)
    test = data.load("mnist", "test", 8, data_dir=root, validation_size=10)
    (xt, yt), (xv, yv), (xs, _) = _all(train), _all(val), _all(test)
    assert xt.shape == (30, 28, 28, 1) and xv.shape == (10, 28, 28, 1) and xs.shape == (20, 28, 28, 1)
    assert xt.dtype == np.float32 and yt.dtype == np.int32
    # Validation is the last 10 training examples, not test data.
    assert_equal(yv, np.arange(30, 40) % 10)
    raw = data.read_idx(os.path.join(root, "train-images-idx3-ubyte.gz"))
    assert_close(xv[..., 0], (raw[30:] / 255.0 - 0.1307) / 0.3081, rtol=1e-5)
    assert data.steps_per_epoch(train) == 4


def test_train_shuffle_is_seeded(tmp_path):
    root = make_mnist_dir(tmp_path)
    a = _all(data.load("mnist", "train", 8, data_dir=root, validation_size=10, shuffle_seed=3))[1]
    b = _all(data.load("mnist", "train", 8, data_dir=root, validation_size=10, shuffle_seed=3))[1]
    c = _all(data.load("mnist", "train", 8, data_dir=root, validation_size=10, shuffle_seed=None))[1]
    assert_equal(a, b)
    assert not np.array_equal(a, c) and sorted(a) == sorted(c)


def test_limit_takes_a_prefix(tmp_path):
    root = make_mnist_dir(tmp_path)
    assert _all(data.load("mnist", "test", 4, data_dir=root, limit=6))[0].shape[0] == 6


@pytest.mark.parametrize("classes,name", [(10, "cifar10"), (100, "cifar100")])
def test_cifar_pickle_mirror_with_augmentation(tmp_path, classes, name):
    root = make_cifar_dir(tmp_path, per_batch=6, classes=classes)
    train = data.load(name, "train", 4, data_dir=root, validation_size=2, augment=True)
    test = data.load(name, "test", 4, data_dir=root, validation_size=2)
    xt, yt = _all(train)
    assert xt.shape == ((5 if classes == 10 else 1) * 6 - 2, 32, 32, 3)
    assert _all(test)[0].shape == (6, 32, 32, 3)
    assert yt.max() < classes


def test_augmentation_crops_and_flips(tmp_path):
    import tensorflow as tf

    image = tf.reshape(tf.range(32 * 32 * 3, dtype=tf.float32), (32, 32, 3))
    out, _ = data._augment(seed=1)(image, 0)
    assert out.shape == (32, 32, 3)
    outs = {data._augment(seed=None)(image, 0)[0].numpy().tobytes() for _ in range(8)}
    assert len(outs) > 1  # random


def test_tfds_is_the_default_source():
    with tfds.testing.mock_data(num_examples=12):
        x, y = _all(data.load("cifar10", "train", 4, validation_size=4))
        assert x.shape[1:] == (32, 32, 3) and y.dtype == np.int32
        assert _all(data.load("fashion_mnist", "test", 4))[0].shape[1:] == (28, 28, 1)


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match=r"Unknown dataset name\. Received: name='svhn'\. "
                       r"Valid names: \['cifar10', 'cifar100', 'fashion_mnist', 'mnist'\]"):
        data.load("svhn", "train", 4)
    with pytest.raises(ValueError, match=r"`split` must be one of \('train', 'validation', "
                       r"'test'\)\. Received: split='dev'"):
        data.load("mnist", "dev", 4)
    with pytest.raises(ValueError, match=r"`batch_size` must be >= 1\. Received: batch_size=0"):
        data.load("mnist", "test", 0)


def test_augment_on_mnist_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"`augment=True` \(crop and flip\) is defined for CIFAR "
                       r"only\. Received: name='mnist', augment=True"):
        data.load("mnist", "train", 4, augment=True, data_dir=make_mnist_dir(tmp_path))


def test_missing_idx_file(tmp_path):
    root = make_mnist_dir(tmp_path)
    os.remove(os.path.join(root, "t10k-labels-idx1-ubyte.gz"))
    with pytest.raises(ValueError, match=r"MNIST mirror .* is missing \['t10k-labels-idx1-ubyte.gz'\]"):
        data.load("mnist", "test", 4, data_dir=root)


def test_corrupt_and_truncated_idx(tmp_path):
    root = make_mnist_dir(tmp_path)
    path = os.path.join(root, "train-images-idx3-ubyte.gz")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(ValueError, match=r"has \d+ bytes, expected \d+ for shape \(40, 28, 28\): "
                       r"it is truncated or corrupt"):
        data.load("mnist", "train", 4, data_dir=root)
    with open(path, "wb") as f:
        f.write(b"not a gzip file at all")
    with pytest.raises(ValueError, match=r"Can't read IDX file .*Re-download it"):
        data.load("mnist", "train", 4, data_dir=root)
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x0d\x03")
    with pytest.raises(ValueError, match=r"is not an IDX file of unsigned bytes \(bad magic number 00000d03\)"):
        data.load("mnist", "train", 4, data_dir=root)


def test_wrong_image_shape(tmp_path):
    root = make_mnist_dir(tmp_path)
    write_idx(os.path.join(root, "t10k-images-idx3-ubyte.gz"), np.zeros((20, 20, 20)))
    with pytest.raises(ValueError, match=r"Expected 28x28 images .* Received shape \(20, 20, 20\)"):
        data.load("mnist", "test", 4, data_dir=root)
    write_idx(os.path.join(root, "t10k-images-idx3-ubyte.gz"), np.zeros((5, 28, 28)))
    with pytest.raises(ValueError, match=r"holds \(20,\) labels for 5 images"):
        data.load("mnist", "test", 4, data_dir=root)


def test_corrupt_cifar_batch(tmp_path):
    root = make_cifar_dir(tmp_path)
    with open(os.path.join(root, "cifar-10-batches-py", "data_batch_3"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match=r"Can't read CIFAR batch .*data_batch_3"):
        data.load("cifar10", "train", 4, data_dir=root, validation_size=2)


def test_validation_size_checks(tmp_path):
    root = make_mnist_dir(tmp_path, train=40)
    with pytest.raises(ValueError, match=r"`validation_size` must be smaller than the 40 training "
                       r"examples\. Received: validation_size=40"):
        data.load("mnist", "train", 4, data_dir=root, validation_size=40)
    with pytest.raises(ValueError, match=r"`validation_size` must be > 0 to load the validation "
                       r"split.*Received: validation_size=0"):
        data.load("mnist", "validation", 4, data_dir=root, validation_size=0)


def test_shipped_mnist_is_the_real_set():
    root = os.path.join(os.path.dirname(__file__), "..", "data", "mnist")
    labels = data.read_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz"))
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
