"""Calling a layer with some of its variables read as other values.

`PruningWrapper` runs its layer with each pruned weight read as
`weight * mask`, whatever the layer (a Dense, an attention block, a
KerasHub transformer layer) and whatever the backend. The mechanism is
Keras's public `keras.StatelessScope`, the one Keras's own JAX trainer
uses to run a model on given values: inside the scope a variable reads
the value mapped to it. Two things the scope does not do by itself are
done here:

- Scopes don't nest: a variable missing from the innermost scope reads its
  stored value. Inside JAX's compiled train step every variable is already
  mapped by an outer scope (`Layer.stateless_call`), so the values of the
  layer's other variables are carried into the inner scope
  (`scope.original_scope` is the scope that was active when it was
  entered). Only the scope's public `get_current_value` and `add_update`
  are used.
- A scope keeps what the layer assigns (a dropout seed, BatchNormalization
  statistics inside a composite layer) instead of writing it. On exit
  those updates go to the outer scope, or, when there is none (TensorFlow,
  PyTorch, eager JAX), into the variables themselves; losses added inside
  (activity regularizers) are handed on the same way.
"""

import keras


class Substituted:
    """Context manager: inside, `variable` reads `value` for each pair.

    Args:
        layer: the layer about to be called; its own state updates are
            written back on exit.
        pairs: list of `(variable, value)`.
        others: the layer's variables not in `pairs` (what it may read or
            assign inside), when the caller keeps them: listing a layer's
            variables walks its sublayers, which on PyTorch (eager) would
            run at every call. Defaults to reading them from `layer`.

    Examples:
        >>> import keras, numpy as np
        >>> dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
        >>> dense.build((None, 2))
        >>> with Substituted(dense, [(dense.kernel, keras.ops.zeros((2, 1)))]):
        ...     y = dense(np.ones((1, 2)))
        >>> float(keras.ops.convert_to_numpy(y)[0, 0])
        0.0
    """

    def __init__(self, layer, pairs, others=None):
        self.layer = layer
        self.pairs = list(pairs)
        self._given_others = others

    def __enter__(self):
        self._scope = keras.StatelessScope(state_mapping=self.pairs, collect_losses=True)
        scope = self._scope.__enter__()
        self._outer = scope.original_scope
        self._others = self._given_others
        if self._others is None:
            own = {id(v) for v, _ in self.pairs}
            self._others = [v for v in self.layer.variables if id(v) not in own]
        if self._outer is not None:
            for variable in self._others:
                value = self._outer.get_current_value(variable)
                if value is not None:
                    scope.add_update((variable, value))
        self._before = [scope.get_current_value(v) for v in self._others]
        return self

    def __exit__(self, *exc):
        scope = self._scope
        scope.__exit__(*exc)
        if exc[0] is not None:
            return False
        changed = [(v, scope.get_current_value(v))
                   for v, before in zip(self._others, self._before)
                   if scope.get_current_value(v) is not before]
        if self._outer is not None:
            for update in changed:
                self._outer.add_update(update)
            if self._outer.collect_losses:
                for loss in scope.losses:
                    self._outer.add_loss(loss)
            return False
        for variable, value in changed:
            variable.assign(value)
        for loss in scope.losses:
            self.layer.add_loss(loss)
        return False
