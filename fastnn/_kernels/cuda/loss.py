"""Fused loss kernels (CUDA): each computes the loss and its gradient in one pass over the input.

Row r carries the weight ``scale[r]`` (``1 / (N * K)`` without sample weights, else
``w[r] / (sum(w) * K)``), as on the CPU. Softmax cross entropy runs one block per row (block
reductions for the max and the sum of exponentials); BCE and MSE are elementwise. Each kernel
writes one float64 partial loss per block; a one-block kernel sums them in a fixed order, and the
host reads back that single number, or (``total=``) adds it to a running total on the device.

Host functions mirror ``fastnn._kernels.cpu.loss`` (labels int64 device arrays); the loss comes
back as a NumPy scalar of the input dtype, the gradient as a device array.
"""
import functools
import math

import numpy as np
from numba import cuda

from .._device import to_host
from . import _config as cfg
from .activation import row_threads
from ._reduce import block_sum, finish_partials, row_max_exp_sum
from ._util import dummy, empty, flat, to_device

_RT = cfg.REDUCE_TPB
NAN = np.float64(np.nan)


@functools.lru_cache(maxsize=None)
def _kernels(dtype):
    sc = np.dtype(dtype).type
    NEG_INF = sc(-np.inf)

    @cuda.jit
    def cross_entropy(x, target, scale, has_scale, uniform, dx, part, R, n):
        """Block per row (grid-stride over rows); part[block] = sum of scale[r] * loss[r]."""
        buf = cuda.shared.array(_RT, sc)
        buf64 = cuda.shared.array(_RT, np.float64)
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        total64 = np.float64(0)
        for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            base = r * n
            m, s = row_max_exp_sum(buf, x, dx, base, n, True, NEG_INF, sc(0))
            w = scale[r] if has_scale else uniform
            c = target[r]
            f = w / s
            for k in range(t, n, nt):
                g = dx[base + k] * f
                if k == c:
                    g -= w
                dx[base + k] = g
            if t == 0:
                if c >= 0 and c < n:
                    loss = (m - x[base + c]) + math.log(s)
                    total64 += np.float64(w) * np.float64(loss)
                else:  # a label the host did not check (total=): NaN, no stray read
                    total64 += NAN
        total64 = block_sum(buf64, total64, nt)
        if t == 0:
            part[cuda.blockIdx.x] = total64

    @cuda.jit
    def elementwise(x, y, scale, has_scale, uniform, dx, part, K, mode):
        """mode 0: BCE with logits, mode 1: MSE; part[block] = block's sum of scale * loss."""
        buf64 = cuda.shared.array(_RT, np.float64)
        zero = sc(0)
        one = sc(1)
        two = sc(2)
        acc = np.float64(0)
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            r = i // K
            w = scale[r] if has_scale else uniform
            v = x[i]
            target = y[i]
            if mode == 0:
                e = math.exp(-abs(v))
                loss = (v if v > zero else zero) - v * target + math.log1p(e)
                p = one / (one + e)
                sig = p if v >= zero else e * p
                dx[i] = w * (sig - target)
            else:
                d = v - target
                loss = d * d
                dx[i] = (w * two) * d
            acc += np.float64(w) * np.float64(loss)
        acc = block_sum(buf64, acc, cuda.blockDim.x)
        if cuda.threadIdx.x == 0:
            part[cuda.blockIdx.x] = acc

    return cross_entropy, elementwise


def _scale(n, k, sample_weight, dtype):
    """(scale array, has_scale, uniform scale) for the kernels."""
    t = np.dtype(dtype).type
    if sample_weight is None:
        return dummy(dtype), False, t(1.0 / (n * k))
    w = to_host(sample_weight).astype(np.float64)  # host weights: no copy
    return to_device((w / (w.sum() * k)).astype(dtype)), True, t(0)


def _finish(part, nblocks, dtype, total, factor):
    loss = finish_partials(part, nblocks, total, factor)
    return None if loss is None else np.dtype(dtype).type(loss)


def softmax_cross_entropy(logits, target, sample_weight, total=None, factor=1.0):
    n, c = logits.shape
    scale, has_scale, uniform = _scale(n, 1, sample_weight, logits.dtype)
    dx = empty(logits.shape, logits.dtype)
    ce, _ = _kernels(np.dtype(logits.dtype))
    nt = row_threads(c)
    blocks = max(1, min(n, cfg.max_blocks()))
    part = empty(blocks, np.float64)
    ce[blocks, nt](flat(logits), target, scale, has_scale, uniform, flat(dx),
                   part, n, c)
    return _finish(part, blocks, logits.dtype, total, factor), dx


def _elementwise(x, y, sample_weight, mode, total, factor):
    n, k = x.shape
    scale, has_scale, uniform = _scale(n, k, sample_weight, x.dtype)
    dx = empty(x.shape, x.dtype)
    _, ew = _kernels(np.dtype(x.dtype))
    blocks = cfg.grid(x.size, _RT)
    part = empty(blocks, np.float64)
    ew[blocks, _RT](flat(x), flat(y), scale, has_scale, uniform,
                    flat(dx), part, k, mode)
    return _finish(part, blocks, x.dtype, total, factor), dx


def binary_cross_entropy_with_logits(logits, target, sample_weight, total=None, factor=1.0):
    return _elementwise(logits, target, sample_weight, 0, total, factor)


def mse_loss(pred, target, sample_weight, total=None, factor=1.0):
    return _elementwise(pred, target, sample_weight, 1, total, factor)
