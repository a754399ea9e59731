"""The `>>>` examples in the package's docstrings run and give what they show.

Every module of the package is collected automatically: a new module's
examples run without being listed here.
"""

import doctest
import importlib
import os
import pkgutil

import pytest

import keras_progprune

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules():
    names = [keras_progprune.__name__]
    for info in pkgutil.walk_packages(keras_progprune.__path__, prefix="keras_progprune."):
        names.append(info.name)
    return sorted(names)


def _has_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    return any(test.examples for test in finder.find(module, name))


MODULES = _modules()
WITH_EXAMPLES = [name for name in MODULES if _has_examples(name)]


def test_the_documented_modules_are_collected():
    # The modules that document their public names with examples; a module
    # that loses them all shows here, one that gains them runs automatically.
    for name in ("keras_progprune.prune", "keras_progprune.channels.shrink",
                 "keras_progprune.shrinking", "keras_progprune.saving",
                 "keras_progprune.patterns", "keras_progprune.litert"):
        assert name in WITH_EXAMPLES, name


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)  # data.load's example reads data/mnist
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags)
    assert result.attempted > 0
    assert result.failed == 0
