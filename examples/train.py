"""Train a model while pruning it: the package's main job, from the shell.

    python examples/train.py                       # LeNet-300-100, MNIST, 95%
    python examples/train.py --preset=resnet18_cifar10 --data_dir=/data/cifar10
    python examples/train.py --method=snip --target_sparsity=0.98
    python examples/train.py --backend=jax         # or KERAS_BACKEND=jax / torch

The same command is installed as `keras-progprune-train`; this file only
points `--data_dir` at the MNIST copy shipped in this repository. Flags and
outputs: `keras_progprune.experiments.cli`, or `--help`.
"""

import os
import sys

import keras_progprune_cli

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    sys.exit(keras_progprune_cli.main(data_dir=os.path.join(_REPO, "data", "mnist")))
