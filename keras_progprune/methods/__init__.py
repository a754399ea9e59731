"""Pruning methods by name, all on the same engine.

>>> from keras_progprune import methods
>>> methods.get_method("progressive").__name__
'Progressive'
"""

from keras_progprune.methods.base import PruningMethod
from keras_progprune.methods.base import ScoringMethod
from keras_progprune.methods.base import available_methods
from keras_progprune.methods.base import get_method
from keras_progprune.methods.base import register_method
from keras_progprune.methods.progressive import Dense
from keras_progprune.methods.progressive import Progressive

register_method("progressive", Progressive)
register_method("dense", Dense)

__all__ = ["Dense", "Progressive", "PruningMethod", "ScoringMethod",
           "available_methods", "get_method", "register_method"]
