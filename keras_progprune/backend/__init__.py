"""The backend seam: the only code that differs between TensorFlow, JAX and PyTorch.

Everything else in the package is written with `keras.ops` and Keras's
public API, so it runs unchanged on every backend. What `keras.ops` can't
express lives in one module per backend (`tensorflow.py`, `jax.py`,
`torch.py`), as Keras itself keeps `keras/src/backend/{jax,tensorflow,torch}`:

- `compile(function)`: a pure function of tensors, compiled
  (`tf.function`, `jax.jit`; PyTorch runs it eagerly, without autograd).
- `kth_largest(keys, k)`: the exact k-th largest of int32 keys, the
  kernel under every top-k (see `thresholds`). Under a
  `keras.distribution` it works on the keys where they lie (JAX).
  `kth_largest_each(keys, ks)`: the same for each tensor on its own, in
  one call (the per-kernel floors of a global ranking).
- `count_true(tensors)`: the true entries of each bool tensor.
- `argsort_stable(x)`: a stable sort's indices (ties in index order), for
  exact ties in the per-space channel selection.
- `gradients(loss_fn, variables)` and `hessian_vector_product(loss_fn,
  variables, vector)`: for the scoring methods (SNIP, GraSP, SynFlow).
- `sync_model_state(model)`: makes the model's variables current inside
  `fit` (JAX keeps the training state apart from the variables during an
  epoch) before a callback reads or writes them.
- `distribution_name(model)`: the distribution a model trains under, if
  any (a tf.distribute strategy, a `keras.distribution`), for features that
  must refuse one.
- `is_distributed()`: whether a `keras.distribution` lays arrays out over
  devices, so selections must work where the values lie.
- `variable_layout(variable)`: how `variable` is laid out over devices by
  `keras.distribution`, so a mask can be laid out like its weight.
- `summary_writer(log_dir)`: TensorBoard scalars.

Each function here dispatches on `keras.backend.backend()`; the backend
module is imported on first use, so on JAX and PyTorch no TensorFlow is
imported.
"""

import importlib

import keras
from keras_progprune_cli import BACKENDS


def name():
    """The Keras backend in use: `"tensorflow"`, `"jax"` or `"torch"`."""
    return keras.backend.backend()


def unsupported_backend_error(feature, fix):
    """The one error for a feature that can't work on the current backend."""
    return ValueError(
        f"{feature} is not available on the {name()!r} backend. Received: "
        f"KERAS_BACKEND={name()!r}. {fix}")


_MODULES = {}


def _impl():
    backend = name()
    if backend not in _MODULES:
        if backend not in BACKENDS:
            raise unsupported_backend_error(
                "keras_progprune",
                f"Use one of {BACKENDS}: set KERAS_BACKEND before importing keras.")
        _MODULES[backend] = importlib.import_module(f"keras_progprune.backend.{backend}")
    return _MODULES[backend]


def compile(function, static=()):  # noqa: A001 - the verb Keras and JAX use
    """`function`, compiled for the current backend.

    The function must be pure: tensors (or lists of tensors) in, tensors
    out, no variable assignment inside (JAX can't assign in a compiled
    function). The keyword arguments named in `static` are Python values
    (a bool, an int); each value gets its own compiled version.
    """
    return _impl().compile(function, tuple(static))


def kth_largest(keys, k):
    """The exact k-th largest of int32 keys spread over several tensors.

    Args:
        keys: list of int32 tensors (any static shapes; the order of their
            entries doesn't matter). They are not flattened here, so keys
            sharded over devices stay where they are.
        k: scalar int32 tensor, `1 <= k <= total size`.

    Returns:
        `(threshold, num_greater, num_equal)`, scalar int32 tensors: the
        k-th largest key, how many keys are above it, how many equal it.
    """
    return _impl().kth_largest(keys, k)


def kth_largest_each(keys, ks):
    """`kth_largest` of each tensor on its own, in one call.

    Args:
        keys: list of int32 tensors, as for `kth_largest`.
        ks: int32 vector, one `k` per tensor (`1 <= ks[i] <= size`).

    Returns:
        `(thresholds, num_greater, num_equal)`: int32 vectors, one entry
        per tensor.
    """
    return _impl().kth_largest_each(keys, ks)


def count_true(tensors):
    """The number of true entries of each bool tensor: an int32 vector.

    XLA's CPU code sums 11.2M booleans in about 20 ms, so JAX on a CPU
    counts them on the host (about 5 ms, the copy included).
    """
    return _impl().count_true(tensors)


def argsort_stable(x):
    """Indices that sort the 1-D tensor `x` ascending, equal values in index
    order (`keras.ops.argsort` doesn't promise stability on every backend)."""
    return _impl().argsort_stable(x)


def gradients(loss_fn, variables):
    """Gradients of the scalar `loss_fn()` with respect to `variables`.

    `loss_fn` reads the variables through Keras (a model call); it runs
    once. State the call changes (BatchNorm statistics) is not kept on JAX.

    Returns:
        A list of tensors shaped like `variables`.
    """
    return _impl().gradients(loss_fn, variables)


def hessian_vector_product(loss_fn, variables, vector):
    """`H v` for the Hessian `H` of `loss_fn()` in `variables`, by double
    backpropagation (GraSP's `H g`).

    Returns:
        A list of tensors shaped like `variables`.
    """
    return _impl().hessian_vector_product(loss_fn, variables, vector)


def sync_model_state(model):
    """Writes the training state into the model's variables, if it is kept
    apart from them (JAX inside `fit`); a no-op elsewhere. Call it before a
    callback reads or assigns variables in the middle of an epoch."""
    _impl().sync_model_state(model)


def distribution_name(model=None):
    """A description of the distribution `model` trains under, or None.

    Covers tf.distribute strategies (TensorFlow) and `keras.distribution`
    (JAX).
    """
    return _impl().distribution_name(model)


def is_distributed():
    """Whether a `keras.distribution` lays arrays out over devices (JAX):
    selections then count where the values lie instead of gathering,
    sorting or flattening them."""
    return _impl().is_distributed()


def variable_layout(variable):
    """The `keras.distribution.TensorLayout` of `variable` under the current
    `keras.distribution`, or None when there is none (and on backends
    without one)."""
    return _impl().variable_layout(variable)


def summary_writer(log_dir):
    """An object with `scalar(name, value, step)`, `flush()` and `close()`
    writing TensorBoard event files to `log_dir`.

    TensorBoard's event files are written with TensorFlow's summary API on
    every backend (Keras's own TensorBoard callback does the same), so this
    imports TensorFlow when it is called, and only then.
    """
    tensorflow = importlib.import_module("keras_progprune.backend.tensorflow")
    return tensorflow.SummaryWriter(log_dir)
