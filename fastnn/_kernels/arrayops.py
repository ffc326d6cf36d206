"""Device-neutral array operations for the layers, the optimizers and the training loop.

Each function runs where its first array lives: NumPy arrays on the CPU
(``fastnn._kernels.cpu.arrayops``), CUDA arrays on the GPU (``fastnn._kernels.cuda.arrayops``,
imported only when a device array arrives). This is the kernel API for what is not a named
kernel: layers and estimators reach the backends only through it and ``fastnn.kernels``.
"""
import importlib

import numpy as np

from ._device import is_cuda_array, to_host
from ._dispatch import resolve_device


_MODULES = {}


def _module(device):
    """The backend module of ``device``, imported at first use (``import fastnn.nn`` loads no
    Numba) and kept: these helpers run several times per training step."""
    module = _MODULES.get(device)
    if module is None:
        module = _MODULES[device] = importlib.import_module(f"fastnn._kernels.{device}.arrayops")
    return module


def _on(a):
    return _module("cuda" if is_cuda_array(a) else "cpu")


def device_of(a):
    """'cuda' for a CUDA array, else 'cpu'."""
    return "cuda" if is_cuda_array(a) else "cpu"


def accumulate(dst, src):
    """``dst += src`` in place (parameter-gradient accumulation)."""
    return _on(dst).accumulate(dst, src)


def reshape(a, shape):
    """A reshaped view of a C-contiguous array (host or device)."""
    return a.reshape(tuple(shape))


def to_device(a, device):
    """``a`` on ``device`` ('cpu', 'cuda' or 'auto'): no copy when it already is there."""
    return move(a, resolve_device(device))


def move(a, device):
    """``a`` on the resolved ``device`` ('cpu' or 'cuda'); ``a`` itself when already there."""
    if device == "cpu":
        return to_host(a)
    cuda_ops = _module("cuda")
    return cuda_ops.as_device(a) if is_cuda_array(a) else cuda_ops.to_device(a)


def empty_like(a, shape=None):
    """An uninitialised array on ``a``'s device, with ``a``'s dtype and ``shape`` (default a's)."""
    shape = tuple(a.shape) if shape is None else tuple(shape)
    return _on(a).empty(shape, np.dtype(a.dtype))


def zeros_like(a):
    """Zeros on ``a``'s device, with its shape and dtype."""
    return fill(empty_like(a), 0)


def fill(a, value):
    """Set every element of ``a`` to ``value`` in place."""
    return _on(a).fill(a, value)


def copy(a):
    """A new array on ``a``'s device equal to ``a``."""
    return _on(a).copy(a)


def assign(dst, src):
    """``dst[...] = src`` in place; ``src`` may live on either device (same shape)."""
    if tuple(dst.shape) != tuple(np.shape(src)):
        raise ValueError(f"cannot assign shape {tuple(np.shape(src))} to {tuple(dst.shape)}")
    if is_cuda_array(dst):
        src = src if is_cuda_array(src) else np.ascontiguousarray(src, dtype=dst.dtype)
        return _on(dst).assign(dst, src)
    return _on(dst).assign(dst, to_host(src))


def put_channels(dst, src, offset):
    """``dst[:, offset:offset + src.shape[1]] = src`` in place: ``src`` and ``dst`` on one device,
    C-contiguous, with the same rows and trailing sizes (a concatenation along axis 1)."""
    width = int(src.shape[1])
    if (tuple(src.shape[:1]) != tuple(dst.shape[:1]) or tuple(src.shape[2:]) != tuple(dst.shape[2:])
            or not 0 <= offset <= dst.shape[1] - width):
        raise ValueError(f"cannot put {tuple(src.shape)} at channel {offset} of {tuple(dst.shape)}")
    return _on(dst).put_channels(dst, src, int(offset))


def take_channels(src, offset, width):
    """A new array of ``src[:, offset:offset + width]`` on ``src``'s device (axis 1)."""
    if not 0 <= offset <= src.shape[1] - width:
        raise ValueError(f"cannot take channels {offset}..{offset + width} of {tuple(src.shape)}")
    return _on(src).take_channels(src, int(offset), int(width))


def masked_axpy(dst, src, mask, c):
    """``dst[mask] += c * src[mask]`` in place (flat arrays; ``mask`` bool on the same device)."""
    _on(dst).masked_axpy(dst, src, mask, c)


def masked_scale(dst, mask, f):
    """``dst[mask] *= f`` in place."""
    _on(dst).masked_scale(dst, mask, f)


def check_total(total, like):
    """``total`` must be a float64 array of shape (1,) on ``like``'s device."""
    if (not hasattr(total, "shape") or tuple(total.shape) != (1,)
            or np.dtype(total.dtype) != np.float64 or device_of(total) != device_of(like)):
        where = "a CUDA" if is_cuda_array(like) else "a NumPy"
        raise ValueError(f"total must be {where} float64 array of shape (1,) on the input's "
                         f"device, got {type(total).__name__} "
                         f"{getattr(total, 'dtype', '')} {tuple(getattr(total, 'shape', ()))}")


def deliver(fn, args, like, total, factor=1.0):
    """``fn(*args)``, a backend reduction, delivered one of two ways.

    Without ``total`` its value is returned (read back from the device). With ``total``,
    ``total[0] += factor * value`` happens where ``total`` lives and the value is not read
    back: both backends take ``total=`` and ``factor=`` (a CUDA kernel adds on the device, the
    CPU adds on the host). A tuple result carries the value first (losses: ``(loss, grad)``);
    with ``total`` its value is None.
    """
    if total is not None:
        check_total(total, like)
    return fn(*args, total=total, factor=float(factor))


def l2_masked(data, grad, mask, c, total=None, factor=1.0):
    """``grad[mask] += c * data[mask]``; returns ``sum(data[mask] ** 2)`` as a Python float
    (or adds ``factor`` times it to ``total``: ``deliver``)."""
    return deliver(_on(data).l2_masked, (data, grad, mask, c), data, total, factor)


def sum_squares(a, total=None, factor=1.0):
    """``sum(a ** 2)`` accumulated in float64, as a Python float (or added to ``total``:
    ``deliver``)."""
    return deliver(_on(a).sum_squares, (a,), a, total, factor)


def scale(a, f):
    """``a *= f`` in place."""
    _on(a).scale(a, f)
    return a


def take_rows(src, idx, out):
    """``out[i] = src[idx[i]]`` along axis 0, on the arrays' device (``idx`` int64)."""
    return _on(src).take_rows(src, idx, out)


def count_argmax_correct(output, target, total=None):
    """Rows of the (N, C) ``output`` whose argmax equals the integer ``target`` (or added to
    ``total``: ``deliver``)."""
    return deliver(_on(output).count_argmax_correct, (output, target), output, total)


def count_binary_correct(output, target, total=None):
    """Elements where ``output > 0`` agrees with ``target > 0.5`` (same size), or added to
    ``total``."""
    return deliver(_on(output).count_binary_correct, (output, target), output, total)


def reverse_steps(a):
    """A new C-contiguous array of ``a[:, ::-1]`` on ``a``'s device: axis 1 (the time steps of
    an (N, T, ...) sequence) reversed."""
    if len(a.shape) < 2:
        raise ValueError(f"reverse_steps needs an array of at least 2 dimensions, got shape "
                         f"{tuple(a.shape)}")
    return _on(a).reverse_steps(a)
