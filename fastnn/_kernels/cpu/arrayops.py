"""Array operations on the CPU behind ``fastnn._kernels.arrayops``: masked one-pass updates over
a flat parameter buffer (weight decay and scikit-learn's L2 term on the parameters that decay;
serial below ``PARALLEL_MIN`` elements, parallel above), and the NumPy side of the device-neutral
helpers (accumulate, gather rows, copies, sums of squares, correct-prediction counts)."""
import numpy as np
from numba import prange

from ._jit import jit, pjit

PARALLEL_MIN = 32768
L2_BLOCK = 8192  # elements per partial sum of squares


def _axpy(dst, src, mask, c):  # dst += c * src where mask
    for i in prange(dst.size):
        if mask[i]:
            dst[i] += c * src[i]


def _scale(dst, mask, f):  # dst *= f where mask
    for i in prange(dst.size):
        if mask[i]:
            dst[i] *= f


def _l2(data, grad, mask, c, partial):
    """grad += c * data where mask; partial[b] = sum(data**2) where mask over block b (blocks of
    L2_BLOCK elements: fixed by the size, so the sum does not depend on the thread count)."""
    n = data.size
    for b in prange(partial.size):
        acc = 0.0
        for i in range(b * L2_BLOCK, min(n, (b + 1) * L2_BLOCK)):
            if mask[i]:
                w = data[i]
                w64 = float(w)
                acc += w64 * w64
                grad[i] += c * w
        partial[b] = acc


_AXPY = (jit(_axpy), pjit(_axpy))
_SCALE = (jit(_scale), pjit(_scale))
_L2 = (jit(_l2), pjit(_l2))


def masked_axpy(dst, src, mask, c):
    """``dst[mask] += c * src[mask]`` in place (flat arrays of one dtype, ``mask`` bool)."""
    _AXPY[dst.size >= PARALLEL_MIN](dst, src, mask, dst.dtype.type(c))


def masked_scale(dst, mask, f):
    """``dst[mask] *= f`` in place."""
    _SCALE[dst.size >= PARALLEL_MIN](dst, mask, dst.dtype.type(f))


def add_to(total, value, factor):
    """``value``; or, given ``total`` (a float64 array of shape (1,)), ``total[0] += factor *
    value`` and None (the CUDA twins add on the device: one signature on both backends)."""
    if total is None:
        return value
    total[0] += float(factor) * float(value)
    return None


def l2_masked(data, grad, mask, c, total=None, factor=1.0):
    """``grad[mask] += c * data[mask]``; returns ``sum(data[mask] ** 2)`` (float64), or adds
    ``factor`` times it to ``total`` (``add_to``)."""
    partial = np.empty(max(1, -(-data.size // L2_BLOCK)), np.float64)
    _L2[data.size >= PARALLEL_MIN](data, grad, mask, data.dtype.type(c), partial)
    return add_to(total, float(np.sum(partial)), factor)


# --- the host side of fastnn._kernels.arrayops (NumPy arrays) ----------------------------------

def accumulate(dst, src):
    """``dst += src`` in place."""
    np.add(dst, src, out=dst)
    return dst


def empty(shape, dtype):
    return np.empty(shape, dtype=dtype)


def fill(a, value):
    a.fill(value)
    return a


def copy(a):
    return a.copy()


def assign(dst, src):
    """``dst[...] = src`` (``src`` already on the host)."""
    dst[...] = src
    return dst


def sum_squares(a, total=None, factor=1.0):
    """``sum(a ** 2)`` accumulated in float64, as a Python float (or added to ``total``)."""
    v = a.reshape(-1)
    return add_to(total, float(np.dot(v, v)), factor)


def scale(a, f):
    a *= a.dtype.type(f)
    return a


def take_rows(src, idx, out):
    return np.take(src, idx, axis=0, out=out)


def count_argmax_correct(output, target, total=None, factor=1.0):
    count = int(np.count_nonzero(np.asarray(output).argmax(axis=1) == np.asarray(target)))
    return add_to(total, count, factor)


def count_binary_correct(output, target, total=None, factor=1.0):
    out = np.asarray(output)
    t = np.asarray(target).reshape(out.shape)
    return add_to(total, int(np.count_nonzero((out > 0) == (t > 0.5))), factor)


def put_channels(dst, src, offset):
    """``dst[:, offset:offset + src.shape[1]] = src`` (the same rows and trailing sizes)."""
    dst[:, offset:offset + src.shape[1]] = src
    return dst


def take_channels(src, offset, width):
    """A new C-contiguous array of ``src[:, offset:offset + width]``."""
    return np.ascontiguousarray(src[:, offset:offset + width])


def reverse_steps(a):
    """A new C-contiguous array of ``a[:, ::-1]`` (axis 1 reversed)."""
    return np.ascontiguousarray(a[:, ::-1])
