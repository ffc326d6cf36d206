"""Batch normalisation (CUDA) over an (N, C, S) view (S = product of the spatial axes).

Three launches per pass: per-(channel, split) partial sums in float64 (block reductions), a
per-channel finish that turns them into the statistics (and updates the running statistics in
place), and an elementwise affine map. Statistics are single-pass sums shifted by each channel's
first element, in float64, which keeps the variance accurate for data far from zero.

Host functions mirror ``fastnn._kernels.cpu.norm`` (same names, signatures, results):

- ``batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps)`` ->
  ``(y, mean, invstd)``
- ``batch_norm_backward(dy, x, mean, invstd, gamma, training)`` -> ``(dx, dgamma, dbeta)``
"""
import functools
import math

import numpy as np
from numba import cuda

from .._norm_rules import running_stats, unbias_factor
from . import _config as cfg
from ._reduce import block_sum2, channel_index
from ._util import dummy, empty, flat

_RT = cfg.REDUCE_TPB


@cuda.jit(device=True)
def _store_split_sums(buf, buf2, part, q, a, b):
    """part[q] = the block sums of (a, b), as a pair (q = c * nsplit + s for block (c, s))."""
    a, b = block_sum2(buf, buf2, a, b)
    if cuda.threadIdx.x == 0:
        part[q * 2] = a
        part[q * 2 + 1] = b


@cuda.jit
def _moments_partial(x, part, N, C, S, nsplit):
    """part[c, s] = (sum of d, sum of d*d) over split s of channel c, d = x - x[0, c, 0]."""
    buf = cuda.shared.array(_RT, np.float64)
    buf2 = cuda.shared.array(_RT, np.float64)
    c = cuda.blockIdx.x
    s = cuda.blockIdx.y
    shift = np.float64(x[c * S])
    a = np.float64(0)
    b = np.float64(0)
    for j in range(s * _RT + cuda.threadIdx.x, N * S, nsplit * _RT):
        d = np.float64(x[channel_index(j, c, C, S)]) - shift
        a += d
        b += d * d
    _store_split_sums(buf, buf2, part, c * nsplit + s, a, b)


@cuda.jit
def _grad_partial(dy, x, mean, invstd, part, N, C, S, nsplit):
    """part[c, s] = (sum of dy, sum of dy * x_hat) over split s of channel c (float64)."""
    buf = cuda.shared.array(_RT, np.float64)
    buf2 = cuda.shared.array(_RT, np.float64)
    c = cuda.blockIdx.x
    s = cuda.blockIdx.y
    m = mean[c]
    r = invstd[c]
    a = np.float64(0)
    b = np.float64(0)
    for j in range(s * _RT + cuda.threadIdx.x, N * S, nsplit * _RT):
        i = channel_index(j, c, C, S)
        g = dy[i]
        a += np.float64(g)
        b += np.float64(g * ((x[i] - m) * r))
    _store_split_sums(buf, buf2, part, c * nsplit + s, a, b)


_running_stats = cuda.jit(device=True)(running_stats)


@functools.lru_cache(maxsize=None)
def _finish_kernels(dtype):
    sc = np.dtype(dtype).type

    @cuda.jit
    def stats(x, part, nsplit, C, S, count, training, has_running, rmean, rvar, gamma, has_gamma,
              beta, has_beta, momentum, unbias, eps, out):
        """Per channel: the statistics used and y's affine coefficients (the rows of ``out``:
        mean, 1/std, scale, shift), and the running-stat updates."""
        for c in range(cuda.grid(1), C, cuda.gridsize(1)):
            if training:
                a = np.float64(0)
                b = np.float64(0)
                for s in range(nsplit):
                    a += part[(c * nsplit + s) * 2]
                    b += part[(c * nsplit + s) * 2 + 1]
                mu = np.float64(x[c * S]) + a / count
                var = max(b - a * a / count, np.float64(0)) / count
                if has_running:
                    m, v = _running_stats(np.float64(rmean[c]), np.float64(rvar[c]), mu, var,
                                          momentum, unbias)
                    rmean[c] = sc(m)
                    rvar[c] = sc(v)
            else:
                mu = np.float64(rmean[c])
                var = np.float64(rvar[c])
            inv = 1.0 / math.sqrt(var + eps)
            out[0, c] = sc(mu)
            out[1, c] = sc(inv)
            out[2, c] = sc(inv * np.float64(gamma[c])) if has_gamma else sc(inv)
            out[3, c] = beta[c] if has_beta else sc(0)

    @cuda.jit
    def grad_coeffs(part, nsplit, C, invstd, gamma, has_gamma, training, count, a_out, b_out,
                    d_out, dgamma, dbeta):
        for c in range(cuda.grid(1), C, cuda.gridsize(1)):
            g = np.float64(0)
            gx = np.float64(0)
            for s in range(nsplit):
                g += part[(c * nsplit + s) * 2]
                gx += part[(c * nsplit + s) * 2 + 1]
            inv = np.float64(invstd[c])
            a_out[c] = sc(inv * np.float64(gamma[c])) if has_gamma else sc(inv)
            if training:
                b_out[c] = sc(g / count)
                d_out[c] = sc(inv * gx / count)
            else:
                b_out[c] = sc(0)
                d_out[c] = sc(0)
            dgamma[c] = sc(gx)
            dbeta[c] = sc(g)

    return stats, grad_coeffs


@cuda.jit
def _affine_kernel(x, mean, scale, shift, y, C, S):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = (i // S) % C
        y[i] = (x[i] - mean[c]) * scale[c] + shift[c]


@cuda.jit
def _dx_kernel(dy, x, mean, a, b, d, dx, C, S):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = (i // S) % C
        dx[i] = a[c] * ((dy[i] - b[c]) - (x[i] - mean[c]) * d[c])


def _splits(C, per):
    return max(1, min(max(1, cfg.max_blocks() // max(C, 1)), (per + _RT - 1) // _RT))


def _outputs(x, per_channel):
    """(n, c, s, dtype, count) of ``x`` (N, C, S), then an x-shaped array and ``per_channel``
    arrays of C elements, all of x's dtype (allocated up front: each pass needs them all)."""
    n, c, s = x.shape
    dt = np.dtype(x.dtype)
    return (n, c, s, dt, n * s), [empty(x.shape, dt)] + [empty(c, dt) for _ in range(per_channel)]


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    (n, c, s, dt, count), (y,) = _outputs(x, 0)
    coeffs = empty((4, c), dt)   # mean, 1/std, scale, shift per channel
    mean, invstd, scale, shift = coeffs[0], coeffs[1], coeffs[2], coeffs[3]
    if c == 0:
        return y, mean, invstd
    nsplit = _splits(c, count) if training else 1
    part = empty(2 * c * nsplit, np.float64)
    xf = flat(x)
    if training and count:
        _moments_partial[(c, nsplit), _RT](xf, part, n, c, s, nsplit)
    stats, _ = _finish_kernels(dt)
    has_running = running_mean is not None
    unbias = unbias_factor(count)
    stats[cfg.grid(c), cfg.TPB](
        xf, part, nsplit, c, s, float(count), bool(training), has_running,
        running_mean if has_running else dummy(dt), running_var if has_running else dummy(dt),
        gamma if gamma is not None else dummy(dt), gamma is not None,
        beta if beta is not None else dummy(dt), beta is not None,
        float(momentum), float(unbias), float(eps), coeffs)
    if x.size:
        _affine_kernel[cfg.grid(x.size), cfg.TPB](xf, mean, scale, shift, flat(y), c, s)
    return y, mean, invstd


def batch_norm_backward(dy, x, mean, invstd, gamma, training):
    (n, c, s, dt, count), (dx, dgamma, dbeta, a, b, d) = _outputs(x, 5)
    if c == 0:
        return dx, dgamma, dbeta
    nsplit = _splits(c, count)
    part = empty(2 * c * nsplit, np.float64)
    if count:
        _grad_partial[(c, nsplit), _RT](flat(dy), flat(x), mean, invstd,
                                        part, n, c, s, nsplit)
    else:
        from ._util import fill
        fill(part, 0)
    _, grad_coeffs = _finish_kernels(dt)
    grad_coeffs[cfg.grid(c), cfg.TPB](part, nsplit, c, invstd,
                                      gamma if gamma is not None else dummy(dt), gamma is not None,
                                      bool(training), float(max(count, 1)), a, b, d, dgamma, dbeta)
    if x.size:
        _dx_kernel[cfg.grid(x.size), cfg.TPB](flat(dy), flat(x), mean, a, b,
                                              d, flat(dx), c, s)
    return dx, dgamma, dbeta
