"""The JAX side of the seam (see `keras_progprune.backend`).

- Compiled functions are `jax.jit`s.
- The k-th largest key: on a CPU device, XLA's sort of 11.2M keys takes
  0.75 s on these 2 cores, so the compiled update calls NumPy's
  introselect on the host (`jax.pure_callback`, no copy on CPU). On an
  accelerator it sorts on the device. Under a `keras.distribution` it is
  found four bits at a time where the keys lie: 9 all-reduces of a few
  int32 counts between devices (`_kth_largest_by_digits`; ties at the
  threshold take about 24 more, in `thresholds`).
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


def kth_largest(keys, k):
    if is_distributed():
        return _kth_largest_by_digits(keys, k)
    flat_keys = [jnp.ravel(f) for f in keys]
    shapes = (jax.ShapeDtypeStruct((), jnp.int32),) * 3
    if jax.default_backend() == "cpu":
        def host(*args):
            *flat, kk = args
            return numpy_kernels.kth_largest(flat, int(kk))
        return jax.pure_callback(host, shapes, *flat_keys, jnp.asarray(k, jnp.int32))
    flat = jnp.concatenate(flat_keys)
    t = jnp.sort(flat)[flat.shape[0] - jnp.asarray(k, jnp.int32)]
    return t, jnp.sum(flat > t, dtype=jnp.int32), jnp.sum(flat == t, dtype=jnp.int32)


_SIGN = 0x80000000


_DIGIT_BITS = 4
_DIGITS = 1 << _DIGIT_BITS


def _kth_largest_by_digits(keys, k):
    """The k-th largest key, found four bits at a time from the most
    significant.

    For keys laid out over devices by a `keras.distribution`. The k-th
    largest is the greatest candidate with at least k keys at or above it.
    Each of 8 steps fixes the next 4 bits: it counts the keys at or above
    each of the 15 candidates the next digit can make (one pass over the
    keys, which each device takes over its own shard), and one all-reduce
    of those 15 int32 counts adds them up; the counts fall as the digit
    rises, so the digit is how many of them reach k. A last step counts
    the keys above and at the threshold (one all-reduce of 2). Nothing
    else crosses devices: no key is gathered, sorted or copied (a host
    callback here would gather them all, and sharded callbacks can
    deadlock XLA's CPU collectives). One bit per step would take 32
    all-reduces, each a round trip between the devices.
    """
    sign = jnp.uint32(_SIGN)
    # Flipping the sign bit maps int32 order onto uint32 order.
    unsigned = [jax.lax.bitcast_convert_type(f, jnp.uint32) ^ sign for f in keys]
    k = jnp.asarray(k, jnp.int32)
    digits = jnp.arange(1, _DIGITS, dtype=jnp.uint32)

    def at_least(candidates):
        """Keys >= each candidate, a vector of counts."""
        return sum(jnp.sum(u[..., None] >= candidates, axis=tuple(range(u.ndim)),
                           dtype=jnp.int32) for u in unsigned)

    def step(i, prefix):
        shift = jnp.uint32(32 - _DIGIT_BITS) - jnp.uint32(_DIGIT_BITS) * i.astype(jnp.uint32)
        counts = at_least(prefix | jnp.left_shift(digits, shift))
        digit = jnp.sum(counts >= k, dtype=jnp.uint32)
        return prefix | jnp.left_shift(digit, shift)

    prefix = jax.lax.fori_loop(0, 32 // _DIGIT_BITS, step, jnp.uint32(0))
    above, at = at_least(jnp.stack([prefix + jnp.uint32(1), prefix]))
    # prefix + 1 wraps to 0 at the largest key: nothing is above it.
    greater = jnp.where(prefix == jnp.uint32(0xFFFFFFFF), 0, above)
    t = jax.lax.bitcast_convert_type(prefix ^ sign, jnp.int32)
    return t, greater, at - greater


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
