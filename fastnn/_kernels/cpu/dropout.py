"""Inverted dropout on the CPU.

Element i (flat, C order) is kept iff ``uniform_f32(seed, i) >= float32(p)`` (the counter-based
generator of ``fastnn._kernels._random``), so a seed gives the same mask for any thread count and
on the GPU. Kept elements are scaled by ``1 / (1 - p)``. (``uniform_f32`` is inlined from
``_random.py``; an edit to the generator makes these kernels' cache entries stale too:
``_cache.sources_digest``.)

Host functions (the CUDA twin has the same names and signatures); arrays are validated,
C-contiguous and of one float dtype:

- ``dropout(x, p, seed)`` -> ``(y, mask)``: p a float in [0, 1), seed an int in [0, 2**64);
  mask uint8 (1 = kept) of x's shape
- ``dropout_backward(dy, mask, p)`` -> ``dx``: mask uint8 of dy's shape
"""
import numpy as np
from numba import prange

from ._jit import pjit
from ._random import uniform_f32
from ._workspace import empty, empty_like

SERIAL_BELOW = 1 << 15  # elements; smaller arrays run on one thread


@pjit
def _dropout_kernel(x, p, scale, seed, y, mask, parallel):
    threshold = np.float32(p)
    a = x.dtype.type(scale)
    zero = x.dtype.type(0)
    if parallel:
        for i in prange(x.size):
            keep = uniform_f32(seed, i) >= threshold
            mask[i] = keep
            y[i] = x[i] * a if keep else zero
    else:
        for i in range(x.size):
            keep = uniform_f32(seed, i) >= threshold
            mask[i] = keep
            y[i] = x[i] * a if keep else zero


@pjit
def _dropout_backward_kernel(dy, mask, scale, dx, parallel):
    a = dy.dtype.type(scale)
    zero = dy.dtype.type(0)
    if parallel:
        for i in prange(dy.size):
            dx[i] = dy[i] * a if mask[i] != 0 else zero
    else:
        for i in range(dy.size):
            dx[i] = dy[i] * a if mask[i] != 0 else zero


def dropout(x, p, seed):
    y = empty_like(x)
    mask = empty(x.shape, dtype=np.uint8)
    _dropout_kernel(x.reshape(-1), float(p), 1.0 / (1.0 - p), np.uint64(seed), y.reshape(-1),
                    mask.reshape(-1), x.size >= SERIAL_BELOW)
    return y, mask


def dropout_backward(dy, mask, p):
    dx = empty_like(dy)
    _dropout_backward_kernel(dy.reshape(-1), mask.reshape(-1), 1.0 / (1.0 - p), dx.reshape(-1),
                             dy.size >= SERIAL_BELOW)
    return dx
