"""Masked one-pass updates over a flat parameter buffer (CPU): weight decay and scikit-learn's
L2 term on the parameters that decay. Serial below ``PARALLEL_MIN`` elements, parallel above."""
from numba import prange

from ._jit import jit, pjit

PARALLEL_MIN = 32768


def _axpy(dst, src, mask, c):  # dst += c * src where mask
    for i in prange(dst.size):
        if mask[i]:
            dst[i] += c * src[i]


def _scale(dst, mask, f):  # dst *= f where mask
    for i in prange(dst.size):
        if mask[i]:
            dst[i] *= f


def _l2(data, grad, mask, c):  # grad += c * data where mask; returns sum(data**2) where mask
    acc = 0.0
    for i in prange(data.size):
        if mask[i]:
            w = data[i]
            w64 = float(w)
            acc += w64 * w64
            grad[i] += c * w
    return acc


_AXPY = (jit(_axpy), pjit(_axpy))
_SCALE = (jit(_scale), pjit(_scale))
_L2 = (jit(_l2), pjit(_l2))


def masked_axpy(dst, src, mask, c):
    """``dst[mask] += c * src[mask]`` in place (flat arrays of one dtype, ``mask`` bool)."""
    _AXPY[dst.size >= PARALLEL_MIN](dst, src, mask, dst.dtype.type(c))


def masked_scale(dst, mask, f):
    """``dst[mask] *= f`` in place."""
    _SCALE[dst.size >= PARALLEL_MIN](dst, mask, dst.dtype.type(f))


def l2_masked(data, grad, mask, c):
    """``grad[mask] += c * data[mask]``; returns ``sum(data[mask] ** 2)`` (float64)."""
    return float(_L2[data.size >= PARALLEL_MIN](data, grad, mask, data.dtype.type(c)))
