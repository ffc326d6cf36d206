"""Backend-neutral array helpers for layers, optimizers and the training loop: NumPy arrays on the
CPU, numba device arrays on the GPU.

Layers touch activations only through ``fastnn.kernels`` and these helpers, so the same layer code
trains on either device. The GPU versions live in ``fastnn._kernels.cuda.arrayops`` and are
imported only when a device array arrives.
"""
import numpy as np

from .._kernels._dispatch import is_cuda_array, resolve_device
from .._kernels._dispatch import to_host as _to_host


def device_of(a):
    """'cuda' for a CUDA array, else 'cpu'."""
    return "cuda" if is_cuda_array(a) else "cpu"


def _cuda_ops():
    from .._kernels.cuda import arrayops
    return arrayops


def _cpu_ops():
    from .._kernels.cpu import arrayops
    return arrayops


def accumulate(dst, src):
    """``dst += src`` in place (parameter-gradient accumulation)."""
    if is_cuda_array(dst):
        _cuda_ops().accumulate(dst, src)
    else:
        np.add(dst, src, out=dst)
    return dst


def reshape(a, shape):
    """A reshaped view of a C-contiguous array (host or device)."""
    return a.reshape(tuple(shape))


def to_host(a):
    """A NumPy array with the values of ``a`` (no copy for NumPy input)."""
    return _to_host(a)


def to_device(a, device):
    """``a`` on ``device`` ('cpu', 'cuda' or 'auto'): no copy when it already is there."""
    return move(a, resolve_device(device))


def move(a, device):
    """``a`` on the resolved ``device`` ('cpu' or 'cuda'); ``a`` itself when already there."""
    if device == "cpu":
        return to_host(a)
    if is_cuda_array(a):
        from .._kernels.cuda._arrays import _as_device
        return _as_device(a)
    from numba import cuda
    return cuda.to_device(np.ascontiguousarray(a))


def empty_like(a, shape=None):
    """An uninitialised array on ``a``'s device, with ``a``'s dtype and ``shape`` (default a's)."""
    shape = tuple(a.shape) if shape is None else tuple(shape)
    if is_cuda_array(a):
        from numba import cuda
        return cuda.device_array(shape, dtype=np.dtype(a.dtype))
    return np.empty(shape, dtype=a.dtype)


def zeros_like(a):
    """Zeros on ``a``'s device, with its shape and dtype."""
    return fill(empty_like(a), 0)


def fill(a, value):
    """Set every element of ``a`` to ``value`` in place."""
    if is_cuda_array(a):
        from .._kernels.cuda._util import fill as cuda_fill
        cuda_fill(a, value)
    else:
        a.fill(value)
    return a


def copy(a):
    """A new array on ``a``'s device equal to ``a``."""
    if is_cuda_array(a):
        from .._kernels.cuda._util import copy as cuda_copy
        return cuda_copy(a)
    return a.copy()


def assign(dst, src):
    """``dst[...] = src`` in place; ``src`` may live on either device (same shape)."""
    if tuple(dst.shape) != tuple(np.shape(src)):
        raise ValueError(f"cannot assign shape {tuple(np.shape(src))} to {tuple(dst.shape)}")
    if is_cuda_array(dst):
        src = src if is_cuda_array(src) else np.ascontiguousarray(src, dtype=dst.dtype)
        dst.copy_to_device(src)
    else:
        dst[...] = to_host(src)
    return dst


def masked_axpy(dst, src, mask, c):
    """``dst[mask] += c * src[mask]`` in place (flat arrays; ``mask`` bool on the same device)."""
    (_cuda_ops() if is_cuda_array(dst) else _cpu_ops()).masked_axpy(dst, src, mask, c)


def masked_scale(dst, mask, f):
    """``dst[mask] *= f`` in place."""
    (_cuda_ops() if is_cuda_array(dst) else _cpu_ops()).masked_scale(dst, mask, f)


def l2_masked(data, grad, mask, c):
    """``grad[mask] += c * data[mask]``; returns ``sum(data[mask] ** 2)`` as a Python float."""
    return (_cuda_ops() if is_cuda_array(data) else _cpu_ops()).l2_masked(data, grad, mask, c)


def sum_squares(a):
    """``sum(a ** 2)`` accumulated in float64, as a Python float."""
    if is_cuda_array(a):
        return _cuda_ops().sum_squares(a)
    v = a.reshape(-1)
    return float(np.dot(v, v))


def scale(a, f):
    """``a *= f`` in place."""
    if is_cuda_array(a):
        _cuda_ops().scale(a, f)
    else:
        a *= a.dtype.type(f)
    return a


def take_rows(src, idx, out):
    """``out[i] = src[idx[i]]`` along axis 0, on the arrays' device (``idx`` int64)."""
    if is_cuda_array(src):
        return _cuda_ops().take_rows(src, idx, out)
    return np.take(src, idx, axis=0, out=out)


def count_argmax_correct(output, target):
    """Rows of the (N, C) ``output`` whose argmax equals the integer ``target``."""
    if is_cuda_array(output):
        return _cuda_ops().count_argmax_correct(output, target)
    return int(np.count_nonzero(np.asarray(output).argmax(axis=1) == np.asarray(target)))


def count_binary_correct(output, target):
    """Elements where ``output > 0`` agrees with ``target > 0.5`` (same size)."""
    if is_cuda_array(output):
        return _cuda_ops().count_binary_correct(output, target)
    out = np.asarray(output)
    t = np.asarray(target).reshape(out.shape)
    return int(np.count_nonzero((out > 0) == (t > 0.5)))
