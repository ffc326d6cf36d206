"""Inverted dropout (CUDA), with the counter-based generator of ``fastnn._kernels._random``.

Element i (flat, C order) is kept iff ``uniform_f32(seed, i) >= float32(p)``, exactly as on the
CPU, so a seed gives the same mask on both backends. Host functions mirror
``fastnn._kernels.cpu.dropout``:

- ``dropout(x, p, seed)`` -> ``(y, mask)``: mask uint8 (1 = kept) of x's shape
- ``dropout_backward(dy, mask, p)`` -> ``dx``
"""
import numpy as np
from numba import cuda

from . import _config as cfg
from ._random import uniform_f32
from ._util import empty, flat


@cuda.jit
def _dropout_kernel(x, threshold, scale, seed, y, mask, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        keep = uniform_f32(seed, i) >= threshold
        mask[i] = 1 if keep else 0
        y[i] = x[i] * scale if keep else zero


@cuda.jit
def _dropout_backward_kernel(dy, mask, scale, dx, zero):
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        dx[i] = dy[i] * scale if mask[i] != 0 else zero


def dropout(x, p, seed):
    y = empty(x.shape, x.dtype)
    mask = empty(x.shape, np.uint8)
    if x.size:
        t = np.dtype(x.dtype).type
        _dropout_kernel[cfg.grid(x.size), cfg.TPB](
            flat(x), np.float32(p), t(1.0 / (1.0 - p)), np.uint64(seed),
            flat(y), flat(mask), t(0))
    return y, mask


def dropout_backward(dy, mask, p):
    dx = empty(dy.shape, dy.dtype)
    if dy.size:
        t = np.dtype(dy.dtype).type
        _dropout_backward_kernel[cfg.grid(dy.size), cfg.TPB](
            flat(dy), flat(mask), t(1.0 / (1.0 - p)), flat(dx),
            t(0))
    return dx
