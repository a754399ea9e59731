"""Deprecated location of the experiment runner; use `keras_progprune.experiments`.

Kept so that `from keras_progprune import experiment` and the names below
keep working (the training script and users' notebooks used them).
"""

from keras_progprune.experiments import *  # noqa: F401,F403
from keras_progprune.experiments import __all__  # noqa: F401
