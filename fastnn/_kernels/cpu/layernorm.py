"""Layer normalisation on the CPU, over an (M, D) view: M rows (the leading axes), each
normalised over its D values (the normalised trailing axes).

Each row's statistics are float64 sums over the row (two passes: the mean, then the squared
deviations from it), and the elementwise maps are computed in float64 and stored in the input
dtype. The weight gradients add every row's contribution into float64 partial sums per block of
rows; the blocks are cut by the size of the problem (never by the thread count) and summed in
block order, so the result is bitwise the same for any number of threads.

Host functions (the CUDA twin has the same names and signatures); arrays are validated,
C-contiguous and of one float dtype:

- ``layer_norm(x, gamma, beta, eps)`` -> ``(y, mean, invstd)``: x (M, D); gamma, beta (D,) or
  None; ``mean``, ``invstd`` (M,) in x's dtype (biased variance, as torch)
- ``layer_norm_backward(dy, x, mean, invstd, gamma)`` -> ``(dx, dgamma, dbeta)``: dy, x (M, D);
  dgamma and dbeta (D,) in x's dtype (computed even when gamma is None)
"""
import numpy as np
from numba import prange

from ._jit import jit, loops
from ._workspace import empty, empty_like

SERIAL_BELOW = 1 << 15  # elements; smaller inputs run on one thread
_ROW_BLOCKS = 64        # row blocks of the weight-gradient partial sums for large inputs


def _blocks(x):
    """(number of row blocks, parallel?) for an (M, D) array: a function of its shape only."""
    if x.size < SERIAL_BELOW:
        return 1, False
    return max(1, min(x.shape[0], _ROW_BLOCKS)), True


@jit(inline="always")
def _row_forward(x, gamma, beta, eps, y):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta for one row; returns (mean, 1/std)."""
    d = x.size
    s = np.float64(0)
    for k in range(d):
        s += np.float64(x[k])
    mu = s / d
    q = np.float64(0)
    for k in range(d):
        t = np.float64(x[k]) - mu
        q += t * t
    r = np.float64(1) / np.sqrt(q / d + eps)
    for k in range(d):
        y[k] = (np.float64(x[k]) - mu) * r * np.float64(gamma[k]) + np.float64(beta[k])
    return mu, r


@loops
def _forward_kernel(x, gamma, beta, eps, y, mean, invstd):
    for i in prange(x.shape[0]):
        mu, r = _row_forward(x[i], gamma, beta, eps, y[i])
        mean[i] = mu
        invstd[i] = r


@jit(inline="always")
def _row_backward(dy, x, mu, r, gamma, dx, pg, pb):
    """dx of one row, and its dy * x_hat and dy added into the partial sums pg, pb (float64)."""
    d = x.size
    s1 = np.float64(0)
    s2 = np.float64(0)
    for k in range(d):
        xh = (np.float64(x[k]) - mu) * r
        g = np.float64(dy[k])
        gg = g * np.float64(gamma[k])
        s1 += gg
        s2 += gg * xh
        pg[k] += g * xh
        pb[k] += g
    c1 = s1 / d
    c2 = s2 / d
    for k in range(d):
        xh = (np.float64(x[k]) - mu) * r
        dx[k] = r * (np.float64(dy[k]) * np.float64(gamma[k]) - c1 - xh * c2)


@loops
def _backward_kernel(dy, x, mean, invstd, gamma, dx, pg, pb):
    """dx, and pg[b], pb[b]: the sums of dy * x_hat and of dy over the rows of block b (blocks
    of ceil(M / nb) consecutive rows), float64, zero on entry."""
    m = x.shape[0]
    nb = pg.shape[0]
    rows = (m + nb - 1) // nb
    for b in prange(nb):
        for i in range(b * rows, min(m, (b + 1) * rows)):
            _row_backward(dy[i], x[i], np.float64(mean[i]), np.float64(invstd[i]), gamma,
                          dx[i], pg[b], pb[b])


def layer_norm(x, gamma, beta, eps):
    m, d = x.shape
    dt = x.dtype
    y = empty_like(x)
    mean = empty(m, dt)
    invstd = empty(m, dt)
    if x.size:
        _forward_kernel[x.size >= SERIAL_BELOW](
            x, np.ones(d, dt) if gamma is None else gamma,
            np.zeros(d, dt) if beta is None else beta, float(eps), y, mean, invstd)
    return y, mean, invstd


def layer_norm_backward(dy, x, mean, invstd, gamma):
    m, d = x.shape
    dt = x.dtype
    nb, parallel = _blocks(x)
    pg = np.zeros((nb, d))
    pb = np.zeros((nb, d))
    dx = empty_like(x)
    if x.size:
        _backward_kernel[parallel](dy, x, mean, invstd, np.ones(d, dt) if gamma is None else gamma,
                                   dx, pg, pb)
    return dx, pg.sum(axis=0).astype(dt), pb.sum(axis=0).astype(dt)
