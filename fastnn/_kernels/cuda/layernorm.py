"""Layer normalisation (CUDA) over an (M, D) view: M rows, each normalised over its D values.

Forward: one block per row (grid-stride over the rows) sums the row in float64 with a block
reduction (two passes: the mean, then the squared deviations) and writes the normalised row.
Backward: one block per row for dx (the two row sums in one reduction tree); the weight gradients
sum columns over row chunks cut by the size of the problem into float64 partial sums, which a
second launch adds in chunk order. No atomics: every run gives the same bits.

Host functions mirror ``fastnn._kernels.cpu.layernorm`` (same names, signatures, results):

- ``layer_norm(x, gamma, beta, eps)`` -> ``(y, mean, invstd)``
- ``layer_norm_backward(dy, x, mean, invstd, gamma)`` -> ``(dx, dgamma, dbeta)``
"""
import math

import numpy as np
from numba import cuda

from . import _config as cfg
from ._reduce import block_sum, block_sum2, finish_splits
from ._util import dummy, empty, flat

_RT = cfg.REDUCE_TPB
_CHUNK_ROWS = 32       # rows per partial sum of the weight gradients, at least
_MAX_CHUNKS = 1024     # partial sums per column, at most


@cuda.jit
def _forward_kernel(x, gamma, has_gamma, beta, has_beta, eps, y, mean, invstd, m, d):
    buf = cuda.shared.array(_RT, np.float64)
    t = cuda.threadIdx.x
    for i in range(cuda.blockIdx.x, m, cuda.gridDim.x):
        base = i * d
        s = np.float64(0)
        for k in range(t, d, _RT):
            s += np.float64(x[base + k])
        mu = block_sum(buf, s, _RT) / d
        q = np.float64(0)
        for k in range(t, d, _RT):
            v = np.float64(x[base + k]) - mu
            q += v * v
        r = 1.0 / math.sqrt(block_sum(buf, q, _RT) / d + eps)
        for k in range(t, d, _RT):
            v = (np.float64(x[base + k]) - mu) * r
            if has_gamma:
                v *= np.float64(gamma[k])
            if has_beta:
                v += np.float64(beta[k])
            y[base + k] = v
        if t == 0:
            mean[i] = mu
            invstd[i] = r


@cuda.jit
def _dx_kernel(dy, x, mean, invstd, gamma, has_gamma, dx, m, d):
    buf = cuda.shared.array(_RT, np.float64)
    buf2 = cuda.shared.array(_RT, np.float64)
    t = cuda.threadIdx.x
    for i in range(cuda.blockIdx.x, m, cuda.gridDim.x):
        base = i * d
        mu = np.float64(mean[i])
        r = np.float64(invstd[i])
        s1 = np.float64(0)
        s2 = np.float64(0)
        for k in range(t, d, _RT):
            g = np.float64(dy[base + k])
            if has_gamma:
                g *= np.float64(gamma[k])
            s1 += g
            s2 += g * ((np.float64(x[base + k]) - mu) * r)
        s1, s2 = block_sum2(buf, buf2, s1, s2)
        c1 = s1 / d
        c2 = s2 / d
        for k in range(t, d, _RT):
            g = np.float64(dy[base + k])
            if has_gamma:
                g *= np.float64(gamma[k])
            dx[base + k] = r * (g - c1 - ((np.float64(x[base + k]) - mu) * r) * c2)


@cuda.jit
def _column_partials(dy, x, mean, invstd, pg, pb, m, d, nsplit, rows):
    """pg[s, k], pb[s, k]: sums of dy * x_hat and of dy over rows [s * rows, (s + 1) * rows) of
    column k, float64 (flat (nsplit * d) arrays)."""
    for e in range(cuda.grid(1), nsplit * d, cuda.gridsize(1)):
        s = e // d
        k = e - s * d
        a = np.float64(0)
        b = np.float64(0)
        for i in range(s * rows, min(m, (s + 1) * rows)):
            g = np.float64(dy[i * d + k])
            a += g * ((np.float64(x[i * d + k]) - np.float64(mean[i])) * np.float64(invstd[i]))
            b += g
        pg[e] = a
        pb[e] = b


def _chunks(m):
    """(rows per chunk, chunks) of the weight-gradient sums: a function of M only."""
    rows = max(_CHUNK_ROWS, -(-m // _MAX_CHUNKS))
    return rows, -(-m // rows)


def _row_grid(m):
    return max(1, min(m, cfg.max_blocks()))


def layer_norm(x, gamma, beta, eps):
    m, d = x.shape
    dt = np.dtype(x.dtype)
    y = empty((m, d), dt)
    stats = empty((2, m), dt)   # mean, 1/std per row
    mean, invstd = stats[0], stats[1]
    if x.size:
        _forward_kernel[_row_grid(m), _RT](
            flat(x), dummy(dt) if gamma is None else gamma, gamma is not None,
            dummy(dt) if beta is None else beta, beta is not None, float(eps), flat(y), mean,
            invstd, m, d)
    return y, mean, invstd


def layer_norm_backward(dy, x, mean, invstd, gamma):
    m, d = x.shape
    dt = np.dtype(x.dtype)
    dx = empty((m, d), dt)
    grads = empty((2, d), dt)   # dgamma, dbeta
    dgamma, dbeta = grads[0], grads[1]
    if d == 0:
        return dx, dgamma, dbeta
    if m == 0:
        from ._util import fill
        fill(grads, 0)
        return dx, dgamma, dbeta
    dyf, xf = flat(dy), flat(x)
    _dx_kernel[_row_grid(m), _RT](dyf, xf, mean, invstd, dummy(dt) if gamma is None else gamma,
                                  gamma is not None, flat(dx), m, d)
    rows, nsplit = _chunks(m)
    part = empty((2, nsplit * d), np.float64)
    pg, pb = part[0], part[1]
    _column_partials[cfg.grid(nsplit * d), cfg.TPB](dyf, xf, mean, invstd, pg, pb, m, d,
                                                    nsplit, rows)
    finish_splits[cfg.grid(d), cfg.TPB](pg, dgamma, d, nsplit, 1, d)
    finish_splits[cfg.grid(d), cfg.TPB](pb, dbeta, d, nsplit, 1, d)
    return dx, dgamma, dbeta
