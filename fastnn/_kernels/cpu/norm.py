"""Batch normalisation on the CPU, over an (N, C, S) view (S = product of the spatial axes, 1 for
(N, C) input).

Per-channel sums use float64 accumulators over blocks of rows (a deterministic split that does
not depend on the thread count); the variance is two-pass (the second pass sums the deviations
from the first pass's mean and corrects with them). Elementwise passes run in the input dtype.

Host functions (the CUDA twin has the same names and signatures); arrays are validated,
C-contiguous and of one float dtype:

- ``batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps)`` ->
  ``(y, mean, invstd)``: x (N, C, S); gamma, beta (C,) or None; running stats (C,) (updated in
  place when training, may be None then); ``mean``, ``invstd`` (C,) in x's dtype are the statistics
  used: the batch's (biased variance) in training, the running ones otherwise.
- ``batch_norm_backward(dy, x, mean, invstd, gamma, training)`` -> ``(dx, dgamma, dbeta)``:
  dy, x (N, C, S); dgamma and dbeta (C,) in x's dtype (computed even when gamma is None).
"""
import numpy as np
from numba import prange

from .._norm_rules import running_stats, unbias_factor
from ._jit import jit, pjit
from ._workspace import empty_like

SERIAL_BELOW = 1 << 15  # elements; smaller inputs run on one thread
_ROW_BLOCKS = 64        # row blocks of the partial sums for large inputs


def _blocks(x):
    """(number of row blocks, parallel?) for an (N, C, S) array."""
    if x.size < SERIAL_BELOW:
        return 1, False
    return max(1, min(x.shape[0], _ROW_BLOCKS)), True


@jit
def _moments_rows(x, mean, out_d, out_q, b, lo, hi):
    for i in range(lo, hi):
        for j in range(x.shape[1]):
            d = np.float64(x[i, j]) - mean[j]
            out_d[b, j] += d
            out_q[b, j] += d * d


@jit
def _moments_plane(x, mean, out_d, out_q, b, j, lo, hi):
    m = mean[j]
    d_sum = 0.0
    q_sum = 0.0
    for i in range(lo, hi):
        for k in range(x.shape[2]):
            d = np.float64(x[i, j, k]) - m
            d_sum += d
            q_sum += d * d
    out_d[b, j] = d_sum
    out_q[b, j] = q_sum


@pjit
def _moments_kernel(x, mean, out_d, out_q, parallel):
    """out_d[b, j], out_q[b, j]: sums of (x - mean[j]) and its square over row block b, channel j.

    mean is float64 (C,); out_d, out_q float64 (nb, C), zero on entry.
    """
    n, c, s = x.shape
    nb = out_d.shape[0]
    rows = (n + nb - 1) // nb
    if s == 1:
        x2 = x.reshape((n, c))
        if parallel:
            for b in prange(nb):
                _moments_rows(x2, mean, out_d, out_q, b, b * rows, min(n, (b + 1) * rows))
        else:
            for b in range(nb):
                _moments_rows(x2, mean, out_d, out_q, b, b * rows, min(n, (b + 1) * rows))
    elif parallel:
        for t in prange(nb * c):
            b = t // c
            j = t - b * c
            _moments_plane(x, mean, out_d, out_q, b, j, b * rows, min(n, (b + 1) * rows))
    else:
        for b in range(nb):
            for j in range(c):
                _moments_plane(x, mean, out_d, out_q, b, j, b * rows, min(n, (b + 1) * rows))


@jit
def _grad_sums_rows(dy, x, mean, invstd, out_g, out_gx, b, lo, hi):
    for i in range(lo, hi):
        for j in range(x.shape[1]):
            g = dy[i, j]
            out_g[b, j] += g
            out_gx[b, j] += g * ((x[i, j] - mean[j]) * invstd[j])


@jit
def _grad_sums_plane(dy, x, mean, invstd, out_g, out_gx, b, j, lo, hi):
    m = mean[j]
    r = invstd[j]
    g_sum = 0.0
    gx_sum = 0.0
    for i in range(lo, hi):
        for k in range(x.shape[2]):
            g = dy[i, j, k]
            g_sum += g
            gx_sum += g * ((x[i, j, k] - m) * r)
    out_g[b, j] = g_sum
    out_gx[b, j] = gx_sum


@pjit
def _grad_sums_kernel(dy, x, mean, invstd, out_g, out_gx, parallel):
    """out_g[b, j], out_gx[b, j]: sums of dy and dy * x_hat over row block b, channel j (float64).

    mean, invstd: x's dtype (C,); out_g, out_gx float64 (nb, C), zero on entry.
    """
    n, c, s = x.shape
    nb = out_g.shape[0]
    rows = (n + nb - 1) // nb
    if s == 1:
        x2 = x.reshape((n, c))
        g2 = dy.reshape((n, c))
        if parallel:
            for b in prange(nb):
                _grad_sums_rows(g2, x2, mean, invstd, out_g, out_gx, b, b * rows,
                                min(n, (b + 1) * rows))
        else:
            for b in range(nb):
                _grad_sums_rows(g2, x2, mean, invstd, out_g, out_gx, b, b * rows,
                                min(n, (b + 1) * rows))
    elif parallel:
        for t in prange(nb * c):
            b = t // c
            j = t - b * c
            _grad_sums_plane(dy, x, mean, invstd, out_g, out_gx, b, j, b * rows,
                             min(n, (b + 1) * rows))
    else:
        for b in range(nb):
            for j in range(c):
                _grad_sums_plane(dy, x, mean, invstd, out_g, out_gx, b, j, b * rows,
                                 min(n, (b + 1) * rows))


@jit
def _affine_row(x, mean, scale, shift, y, i):
    for j in range(x.shape[1]):
        y[i, j] = (x[i, j] - mean[j]) * scale[j] + shift[j]


@jit
def _affine_plane(x, mean, scale, shift, y, i, j):
    m = mean[j]
    a = scale[j]
    b = shift[j]
    for k in range(x.shape[2]):
        y[i, j, k] = (x[i, j, k] - m) * a + b


@pjit
def _affine_kernel(x, mean, scale, shift, y, parallel):
    """y = (x - mean[j]) * scale[j] + shift[j]; all (C,) arrays in x's dtype."""
    n, c, s = x.shape
    if s == 1:
        x2 = x.reshape((n, c))
        y2 = y.reshape((n, c))
        if parallel:
            for i in prange(n):
                _affine_row(x2, mean, scale, shift, y2, i)
        else:
            for i in range(n):
                _affine_row(x2, mean, scale, shift, y2, i)
    elif parallel:
        for t in prange(n * c):
            i = t // c
            _affine_plane(x, mean, scale, shift, y, i, t - i * c)
    else:
        for i in range(n):
            for j in range(c):
                _affine_plane(x, mean, scale, shift, y, i, j)


@jit
def _dx_row(dy, x, mean, a, b, d, dx, i):
    for j in range(x.shape[1]):
        dx[i, j] = a[j] * ((dy[i, j] - b[j]) - (x[i, j] - mean[j]) * d[j])


@jit
def _dx_plane(dy, x, mean, a, b, d, dx, i, j):
    m = mean[j]
    aj = a[j]
    bj = b[j]
    dj = d[j]
    for k in range(x.shape[2]):
        dx[i, j, k] = aj * ((dy[i, j, k] - bj) - (x[i, j, k] - m) * dj)


@pjit
def _dx_kernel(dy, x, mean, a, b, d, dx, parallel):
    """dx = a[j] * (dy - b[j] - (x - mean[j]) * d[j]); all (C,) arrays in x's dtype."""
    n, c, s = x.shape
    if s == 1:
        x2 = x.reshape((n, c))
        g2 = dy.reshape((n, c))
        d2 = dx.reshape((n, c))
        if parallel:
            for i in prange(n):
                _dx_row(g2, x2, mean, a, b, d, d2, i)
        else:
            for i in range(n):
                _dx_row(g2, x2, mean, a, b, d, d2, i)
    elif parallel:
        for t in prange(n * c):
            i = t // c
            _dx_plane(dy, x, mean, a, b, d, dx, i, t - i * c)
    else:
        for i in range(n):
            for j in range(c):
                _dx_plane(dy, x, mean, a, b, d, dx, i, j)


def _batch_moments(x):
    """Per-channel mean and biased variance of an (N, C, S) array, in float64."""
    n, c, s = x.shape
    count = n * s
    nb, parallel = _blocks(x)
    d = np.zeros((nb, c))
    q = np.zeros((nb, c))
    _moments_kernel(x, np.zeros(c), d, q, parallel)
    mean = d.sum(axis=0) / count
    d[:] = 0.0
    q[:] = 0.0
    _moments_kernel(x, mean, d, q, parallel)
    dev = d.sum(axis=0)
    var = np.maximum(q.sum(axis=0) - dev * dev / count, 0.0) / count
    return mean + dev / count, var


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    n, c, s = x.shape
    dt = x.dtype
    if training:
        mean64, var64 = _batch_moments(x)
        if running_mean is not None:
            running_mean[:], running_var[:] = running_stats(
                running_mean, running_var, mean64, var64, momentum, unbias_factor(n * s))
    else:
        mean64 = running_mean.astype(np.float64)
        var64 = running_var.astype(np.float64)
    invstd64 = 1.0 / np.sqrt(var64 + eps)
    scale64 = invstd64 if gamma is None else invstd64 * gamma
    shift = np.zeros(c, dtype=dt) if beta is None else beta
    mean = mean64.astype(dt)
    y = empty_like(x)
    _affine_kernel(x, mean, scale64.astype(dt), shift, y, x.size >= SERIAL_BELOW)
    return y, mean, invstd64.astype(dt)


def batch_norm_backward(dy, x, mean, invstd, gamma, training):
    n, c, s = x.shape
    dt = x.dtype
    nb, parallel = _blocks(x)
    g = np.zeros((nb, c))
    gx = np.zeros((nb, c))
    _grad_sums_kernel(dy, x, mean, invstd, g, gx, parallel)
    dbeta = g.sum(axis=0)
    dgamma = gx.sum(axis=0)
    invstd64 = invstd.astype(np.float64)
    a = invstd64 if gamma is None else invstd64 * gamma
    if training:
        count = n * s
        b = dbeta / count
        d = invstd64 * dgamma / count
    else:
        b = np.zeros(c)
        d = np.zeros(c)
    dx = empty_like(x)
    _dx_kernel(dy, x, mean, a.astype(dt), b.astype(dt), d.astype(dt), dx, parallel)
    return dx, dgamma.astype(dt), dbeta.astype(dt)
