"""The JAX side of the seam (see `keras_progprune.backend`).

- Compiled functions are `jax.jit`s.
- The k-th largest key: on a CPU device, XLA's sort of 11.2M keys takes
  0.75 s on these 2 cores, so the compiled update calls NumPy's
  introselect on the host (`jax.pure_callback`; it copies the keys, about
  10-16 ms for 11.2M); the k-th largest of each of several tensors is one
  host call. The true entries of masks are counted there too (XLA's CPU
  reductions are slow). On an accelerator it sorts on the device. Under
  a `keras.distribution` it is found bit by bit where the keys lie,
  moving 34 int32 sums between devices (`_kth_largest_by_bits`; ties at
  the threshold take about 24 more, in `thresholds`).
- Gradients: the loss is evaluated with the variables' values passed in
  through a `keras.StatelessScope`, as Keras's own JAX trainer does, and
  differentiated with `jax.grad`.
- Inside `fit`, JAX keeps the training state apart from the variables until
  the epoch ends; `model.jax_state_sync()` writes it back, and the trainer
  reads the variables again at the next step.
"""

import jax
import jax.numpy as jnp
import keras

from keras_progprune.backend import numpy_kernels


def compile(function, static=()):  # noqa: A001
    return jax.jit(function, static_argnames=static)


def is_distributed():
    return keras.distribution.distribution() is not None


def _on_host():
    """Whether the selections run in NumPy on the host: one CPU device, no
    layout over devices (a host callback would gather sharded keys)."""
    return not is_distributed() and jax.default_backend() == "cpu"


def _host_call(kernel, arrays, *args, shape=(), results=3):
    """`kernel(arrays, *args)` of `numpy_kernels` from inside the compiled
    update: `results` int32 arrays of `shape` (one array if `results` is 1)."""
    def host(*values):
        return kernel(list(values[:len(arrays)]), *values[len(arrays):])

    out = jax.ShapeDtypeStruct(shape, jnp.int32)
    return jax.pure_callback(host, out if results == 1 else (out,) * results, *arrays, *args)


def kth_largest(keys, k):
    if is_distributed():
        return _kth_largest_by_bits(keys, k)
    if _on_host():
        return _host_call(numpy_kernels.kth_largest, [jnp.ravel(f) for f in keys],
                          jnp.asarray(k, jnp.int32))
    flat = jnp.concatenate([jnp.ravel(f) for f in keys])
    t = jnp.sort(flat)[flat.shape[0] - jnp.asarray(k, jnp.int32)]
    return t, jnp.sum(flat > t, dtype=jnp.int32), jnp.sum(flat == t, dtype=jnp.int32)


def kth_largest_each(keys, ks):
    ks = jnp.asarray(ks, jnp.int32)
    if _on_host():
        return _host_call(numpy_kernels.kth_largest_each, [jnp.ravel(f) for f in keys], ks,
                          shape=(len(keys),))
    rows = [kth_largest([f], ks[i]) for i, f in enumerate(keys)]
    return tuple(jnp.stack(column) for column in zip(*rows))


def count_true(tensors):
    if _on_host():
        return _host_call(numpy_kernels.count_true, tensors, shape=(len(tensors),), results=1)
    return jnp.stack([jnp.count_nonzero(t).astype(jnp.int32) for t in tensors])


_SIGN = 0x80000000


def _kth_largest_by_bits(keys, k):
    """The k-th largest key, found bit by bit from the most significant.

    For keys laid out over devices by a `keras.distribution`: every step is
    one count, `sum(keys >= candidate)`, which each device takes over its
    own shard and XLA adds up with an all-reduce of one int32. The k-th
    largest is the greatest candidate with at least k keys at or above it;
    32 steps fix its 32 bits. Nothing else crosses devices: no key is
    gathered, sorted or copied (a host callback here would gather them all,
    and sharded callbacks can deadlock XLA's CPU collectives).
    """
    sign = jnp.uint32(_SIGN)
    # Flipping the sign bit maps int32 order onto uint32 order.
    unsigned = [jax.lax.bitcast_convert_type(f, jnp.uint32) ^ sign for f in keys]
    k = jnp.asarray(k, jnp.int32)

    def at_least(candidate):
        return sum(jnp.sum(u >= candidate, dtype=jnp.int32) for u in unsigned)

    def step(i, prefix):
        candidate = prefix | jnp.left_shift(jnp.uint32(1), jnp.uint32(31 - i))
        return jnp.where(at_least(candidate) >= k, candidate, prefix)

    prefix = jax.lax.fori_loop(0, 32, step, jnp.uint32(0))
    t = jax.lax.bitcast_convert_type(prefix ^ sign, jnp.int32)
    greater = sum(jnp.sum(f > t, dtype=jnp.int32) for f in keys)
    equal = sum(jnp.sum(f == t, dtype=jnp.int32) for f in keys)
    return t, greater, equal


def argsort_stable(x):
    return jnp.argsort(x, stable=True)


def _stateless(loss_fn, variables):
    def loss_of(values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return loss_fn()
    return loss_of


def gradients(loss_fn, variables):
    values = [v.value for v in variables]
    return list(jax.grad(_stateless(loss_fn, variables))(values))


def hessian_vector_product(loss_fn, variables, vector):
    loss_of = _stateless(loss_fn, variables)

    def grad_dot_vector(values):
        grads = jax.grad(loss_of)(values)
        return sum(jnp.vdot(g, jnp.asarray(v, g.dtype)) for g, v in zip(grads, vector))

    return list(jax.grad(grad_dot_vector)([v.value for v in variables]))


def sync_model_state(model):
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def distribution_name(model=None):
    del model
    distribution = keras.distribution.distribution()
    return None if distribution is None else type(distribution).__name__


def variable_layout(variable):
    distribution = keras.distribution.distribution()
    return None if distribution is None else distribution.get_variable_layout(variable)
