"""Backend-neutral array helpers for layers: NumPy arrays on the CPU, numba device arrays on the GPU.

Layers touch activations only through ``fastnn.kernels`` and these helpers, so the same layer code
trains on either device.
"""
import numpy as np

from .._kernels._dispatch import is_cuda_array
from .._kernels._dispatch import to_host as _to_host


def accumulate(dst, src):
    """``dst += src`` in place (parameter-gradient accumulation)."""
    if is_cuda_array(dst):
        from .._kernels.cuda.arrayops import accumulate as acc
        acc(dst, src)
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
    """``a`` on ``device`` ('cpu' or 'cuda')."""
    if device == "cpu":
        return to_host(a)
    from numba import cuda

    from .._kernels.cuda._arrays import _as_device
    return _as_device(a) if is_cuda_array(a) else cuda.to_device(np.ascontiguousarray(a))
