"""Pruning methods by name, all on the same engine.

>>> from keras_progprune import methods
>>> methods.get_method("progressive").__name__
'Progressive'
"""

from keras_progprune.methods.at_init import Grasp
from keras_progprune.methods.at_init import Random
from keras_progprune.methods.at_init import Snip
from keras_progprune.methods.at_init import SynFlow
from keras_progprune.methods.at_init import prune_at_init
from keras_progprune.methods.base import PruningMethod
from keras_progprune.methods.base import ScoringInputs
from keras_progprune.methods.base import ScoringMethod
from keras_progprune.methods.base import available_methods
from keras_progprune.methods.base import get_method
from keras_progprune.methods.base import make
from keras_progprune.methods.base import register_method
from keras_progprune.methods.lottery import Lottery
from keras_progprune.methods.lottery import lottery_ticket
from keras_progprune.methods.progressive import Dense
from keras_progprune.methods.progressive import Progressive

register_method("progressive", Progressive)
register_method("dense", Dense)
register_method("random", Random)
register_method("snip", Snip)
register_method("grasp", Grasp)
register_method("synflow", SynFlow)
register_method("lottery", Lottery)

__all__ = ["Dense", "Grasp", "Lottery", "Progressive", "PruningMethod", "Random",
           "ScoringInputs", "ScoringMethod", "Snip", "SynFlow", "available_methods", "get_method",
           "lottery_ticket", "make", "prune_at_init", "register_method"]
