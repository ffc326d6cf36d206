"""Fused loss kernels on the CPU: each computes the loss and its gradient in one pass.

Row r of the batch carries the weight ``scale[r]``: ``1 / (N * K)`` without sample weights, else
``w[r] / (sum(w) * K)`` (K = elements per row), so that the loss is ``sum_r scale[r] * loss[r]``
(``loss[r]`` summed over the row) and the gradient is ``scale[r]`` times the elementwise derivative.
Arithmetic is in the input dtype. The loss comes back as a NumPy scalar of that dtype.
The kernels use ``vecmath.vexp`` and ``vecmath.max1d`` (vectorisable; an edit there makes
these kernels' cache entries stale too: ``_cache.sources_digest``).

Host functions (the CUDA twin has the same names and signatures); arrays are validated,
C-contiguous and of one float dtype (labels int64):

- ``softmax_cross_entropy(logits, target, sample_weight)`` -> ``(loss, dlogits)``: logits (N, C),
  target (N,) int64 in [0, C), sample_weight (N,) or None
- ``binary_cross_entropy_with_logits(logits, target, sample_weight)`` -> ``(loss, dlogits)``:
  logits and float targets (N, K), sample_weight (N,) or None
- ``mse_loss(pred, target, sample_weight)`` -> ``(loss, dpred)``: pred, target (N, K)
"""
import math

import numpy as np
from numba import prange

from ._jit import bind, jit, loops
from ._workspace import empty, empty_like
from .arrayops import add_to
from .vecmath import max1d, vexp

SERIAL_BELOW = 1 << 15  # elements; smaller batches run on one thread


@jit
def _ce_row(r, x, t, scale, losses, dx):
    n = x.shape[1]
    mx = max1d(x[r])
    total = x.dtype.type(0)
    for k in range(n):
        e = vexp(x[r, k] - mx)
        dx[r, k] = e
        total += e
    c = t[r]
    losses[r] = (mx - x[r, c]) + math.log(total)
    f = scale[r] / total
    for k in range(n):
        dx[r, k] *= f
    dx[r, c] -= scale[r]


@jit
def _bce_row(r, x, y, scale, losses, dx):
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    s = scale[r]
    acc = zero
    for k in range(x.shape[1]):
        v = x[r, k]
        target = y[r, k]
        e = vexp(-abs(v))  # never overflows
        acc += (v if v > zero else zero) - v * target + math.log1p(e)
        p = one / (one + e)
        sig = p if v >= zero else e * p
        dx[r, k] = s * (sig - target)
    losses[r] = acc


@jit
def _mse_row(r, p, y, scale, losses, dp):
    s2 = scale[r] * p.dtype.type(2)
    acc = p.dtype.type(0)
    for k in range(p.shape[1]):
        d = p[r, k] - y[r, k]
        acc += d * d
        dp[r, k] = s2 * d
    losses[r] = acc


# Names that each compiled copy of a body below binds to its own function or constant
# (``_jit.bind`` / ``specialise``); declared here so that a reader finds them.
row = None


def _rows(x, y, scale, losses, grad):
    """row(r, x, y, scale, losses, grad) for every row r of x (``row``: bound per kernel)."""
    for r in prange(x.shape[0]):
        row(r, x, y, scale, losses, grad)


_ce_kernel, _bce_kernel, _mse_kernel = (loops(bind(_rows, name, row=row)) for name, row in (
    ("_ce_kernel", _ce_row), ("_bce_kernel", _bce_row), ("_mse_kernel", _mse_row)))


def _row_scale(n, k, sample_weight, dtype):
    if sample_weight is None:
        return np.full(n, 1.0 / (n * k), dtype=dtype)
    w = sample_weight.astype(np.float64)
    return (w / (w.sum() * k)).astype(dtype)


def _run(kernel, x, other, sample_weight, k):
    n = x.shape[0]
    scale = _row_scale(n, k, sample_weight, x.dtype)
    losses = empty(n, dtype=x.dtype)
    grad = empty_like(x)
    kernel[x.size >= SERIAL_BELOW](x, other, scale, losses, grad)
    return x.dtype.type(np.dot(scale, losses)), grad


def softmax_cross_entropy(logits, target, sample_weight, total=None, factor=1.0):
    loss, grad = _run(_ce_kernel, logits, target, sample_weight, 1)
    return add_to(total, loss, factor), grad


def binary_cross_entropy_with_logits(logits, target, sample_weight, total=None, factor=1.0):
    loss, grad = _run(_bce_kernel, logits, target, sample_weight, logits.shape[1])
    return add_to(total, loss, factor), grad


def mse_loss(pred, target, sample_weight, total=None, factor=1.0):
    loss, grad = _run(_mse_kernel, pred, target, sample_weight, pred.shape[1])
    return add_to(total, loss, factor), grad
