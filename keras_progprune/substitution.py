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
  mapped by an outer scope (`Layer.stateless_call`), so those mappings are
  carried into the inner scope (`scope.original_scope` is the scope that
  was active when it was entered).
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

    Examples:
        >>> import keras, numpy as np
        >>> dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
        >>> dense.build((None, 2))
        >>> with Substituted(dense, [(dense.kernel, keras.ops.zeros((2, 1)))]):
        ...     y = dense(np.ones((1, 2)))
        >>> float(keras.ops.convert_to_numpy(y)[0, 0])
        0.0
    """

    def __init__(self, layer, pairs):
        self.layer = layer
        self.pairs = list(pairs)

    def __enter__(self):
        self._scope = keras.StatelessScope(state_mapping=self.pairs, collect_losses=True)
        scope = self._scope.__enter__()
        self._outer = scope.original_scope
        self._own = {id(v) for v, _ in self.pairs}
        if self._outer is not None:
            for key, value in self._outer.state_mapping.items():
                scope.state_mapping.setdefault(key, value)
        self._before = dict(scope.state_mapping)
        return self

    def __exit__(self, *exc):
        scope = self._scope
        scope.__exit__(*exc)
        if exc[0] is not None:
            return False
        changed = {key: value for key, value in scope.state_mapping.items()
                   if key not in self._own and self._before.get(key) is not value}
        if self._outer is not None:
            self._outer.state_mapping.update(changed)
            if self._outer.collect_losses:
                for loss in scope.losses:
                    self._outer.add_loss(loss)
            return False
        if changed:
            for variable in self.layer.variables:
                if id(variable) in changed:
                    variable.assign(changed[id(variable)])
        for loss in scope.losses:
            self.layer.add_loss(loss)
        return False
