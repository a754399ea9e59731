"""The JAX side of the seam (see `keras_progprune.backend`).

- Compiled functions are `jax.jit`s.
- The k-th largest key: on a CPU device, XLA's sort of 11.2M keys takes
  0.75 s on these 2 cores, so the compiled update calls NumPy's
  introselect on the host (`jax.pure_callback`, no copy on CPU). On an
  accelerator it sorts on the device.
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


def kth_largest(flat_keys, k):
    shapes = (jax.ShapeDtypeStruct((), jnp.int32),) * 3
    if jax.default_backend() == "cpu":
        def host(*args):
            *keys, kk = args
            return numpy_kernels.kth_largest(keys, int(kk))
        return jax.pure_callback(host, shapes, *flat_keys, jnp.asarray(k, jnp.int32))
    keys = jnp.concatenate(flat_keys)
    t = jnp.sort(keys)[keys.shape[0] - jnp.asarray(k, jnp.int32)]
    return t, jnp.sum(keys > t, dtype=jnp.int32), jnp.sum(keys == t, dtype=jnp.int32)


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
