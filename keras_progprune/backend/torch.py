"""The PyTorch side of the seam (see `keras_progprune.backend`).

PyTorch runs eagerly, so "compiled" functions run as they are, without
autograd. The k-th largest key on a CPU tensor comes from NumPy's
introselect on the same memory (`torch.kthvalue` takes 0.31 s over 11.2M
keys on these 2 cores, this 0.05 s); on an accelerator, from a sort on the
device. Gradients are autograd's.
"""

import functools

import numpy as np
import torch

from keras_progprune.backend import numpy_kernels


def compile(function, static=()):  # noqa: A001
    del static

    @functools.wraps(function)
    def run(*args, **kwargs):
        with torch.no_grad():
            return function(*args, **kwargs)

    return run


def kth_largest(keys, k):
    k = int(k)
    flat_keys = [f.reshape(-1) for f in keys]
    device = flat_keys[0].device
    if device.type == "cpu":
        result = numpy_kernels.kth_largest([f.detach().numpy() for f in flat_keys], k)
        return tuple(torch.tensor(int(v), dtype=torch.int32) for v in result)
    keys = torch.cat(flat_keys)
    t = torch.sort(keys, descending=True).values[k - 1]
    return t, (keys > t).sum(dtype=torch.int32), (keys == t).sum(dtype=torch.int32)


def kth_largest_each(keys, ks):
    ks = [int(k) for k in (ks.tolist() if torch.is_tensor(ks) else ks)]
    if keys[0].device.type == "cpu":
        result = numpy_kernels.kth_largest_each([f.detach().reshape(-1).numpy() for f in keys], ks)
        return tuple(torch.from_numpy(column) for column in result)
    rows = [kth_largest([f], k) for f, k in zip(keys, ks)]
    return tuple(torch.stack(column) for column in zip(*rows))


def count_true(tensors):
    return torch.stack([torch.count_nonzero(t).to(torch.int32) for t in tensors])


def argsort_stable(x):
    return torch.argsort(x, stable=True)


def _tensors(variables):
    return [v.value for v in variables]


def _dense(grads, variables):
    return [torch.zeros(tuple(v.shape), dtype=p.dtype, device=p.device) if g is None else g
            for g, v, p in zip(grads, variables, _tensors(variables))]


def gradients(loss_fn, variables):
    params = _tensors(variables)
    with torch.enable_grad():
        loss = loss_fn()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [g.detach() if g is not None else None for g in _dense(grads, variables)]


def hessian_vector_product(loss_fn, variables, vector):
    params = _tensors(variables)
    with torch.enable_grad():
        loss = loss_fn()
        grads = _dense(torch.autograd.grad(loss, params, create_graph=True,
                                           allow_unused=True), variables)
        z = sum((g * torch.as_tensor(np.asarray(v), dtype=g.dtype, device=g.device)).sum()
                if not torch.is_tensor(v) else (g * v.to(g.dtype)).sum()
                for g, v in zip(grads, vector))
        hv = torch.autograd.grad(z, params, allow_unused=True)
    return [g.detach() for g in _dense(hv, variables)]


def sync_model_state(model):
    del model  # PyTorch trains the variables themselves


def distribution_name(model=None):
    del model
    return None


def is_distributed():
    return False  # keras.distribution lays out variables on JAX only


def variable_layout(variable):
    del variable  # keras.distribution lays out variables on JAX only
    return None
