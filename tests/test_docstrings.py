"""The `>>>` examples in the public docstrings run and give what they show."""

import doctest
import importlib
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = [
    "keras_progprune.schedules", "keras_progprune.thresholds", "keras_progprune.wrapper",
    "keras_progprune.callbacks", "keras_progprune.prune", "keras_progprune.models",
    "keras_progprune.methods", "keras_progprune.experiments.data", "keras_progprune.structures",
    "keras_progprune.substitution", "keras_progprune.tensorflow_export",
    "keras_progprune.methods.at_init", "keras_progprune.methods.lottery",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(REPO)  # data.load's example reads data/mnist
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
