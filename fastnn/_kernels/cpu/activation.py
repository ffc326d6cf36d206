"""Activation kernels on the CPU.

Elementwise activations run one pass over a flat view of the input: a ``prange`` loop for large
arrays and a plain loop below ``SERIAL_BELOW`` elements (a parallel region costs more than the work
there). Softmax works on an ``(outer, n, inner)`` view of the input, with no transposing copy.

Host functions (the CUDA twin has the same names and signatures). Every array argument is
validated, C-contiguous and of one float dtype; outputs are new arrays of that dtype:

- ``relu(x)``, ``sigmoid(x)``, ``tanh(x)``, ``gelu(x)`` -> ``y``
- ``leaky_relu(x, negative_slope)``, ``elu(x, alpha)`` -> ``y`` (scalars are Python floats)
- ``relu_backward(dy, x)``, ``sigmoid_backward(dy, x)``, ``tanh_backward(dy, x)``,
  ``gelu_backward(dy, x)``, ``leaky_relu_backward(dy, x, negative_slope)``,
  ``elu_backward(dy, x, alpha)`` -> ``dx`` (``dy`` has the shape of ``x``)
- ``prelu(x, weight)`` -> ``y``; ``prelu_backward(dy, x, weight)`` -> ``(dx, dweight)``, with
  ``weight`` 1-D of size 1 or ``x.shape[1]``; ``dweight`` has ``weight``'s shape
- ``softmax(x, axis)``, ``log_softmax(x, axis)`` -> ``y``;
  ``softmax_backward(dy, x, axis)``, ``log_softmax_backward(dy, x, axis)`` -> ``dx``
  (``axis`` a non-negative int below ``x.ndim``)
"""
import math

import numpy as np
from numba import prange

from ._jit import jit, pjit

SERIAL_BELOW = 1 << 15  # elements; smaller arrays run on one thread
_SOFTMAX_BLOCK = 256    # inner positions per task when softmax runs over a non-last axis
_REDUCE_BLOCK = 1 << 14  # elements per partial sum in the PReLU weight gradient


def _parallel(a):
    return a.size >= SERIAL_BELOW


# ----------------------------------------------------------------------------- scalar maps
# Small jitted helpers: LLVM inlines them into the loops below, which stay vectorisable.

@jit
def _relu1(v, zero):
    return zero if v <= zero else v  # NaN stays NaN, as in torch


@jit
def _relu_grad1(g, v, zero):
    return zero if v <= zero else g


@jit
def _leaky1(v, slope, zero):
    return v if v > zero else v * slope


@jit
def _leaky_grad1(g, v, slope, zero):
    return g if v > zero else g * slope


@jit
def _elu1(v, alpha, zero):
    return v if v > zero else alpha * math.expm1(v)


@jit
def _elu_grad1(g, v, alpha, zero):
    return g if v > zero else g * alpha * math.exp(v)


@jit
def _sigmoid1(v, one, zero):
    # exp of a non-positive number never overflows; the two halves of the logistic meet at 0.
    e = math.exp(-abs(v))
    s = one / (one + e)
    return s if v >= zero else e * s


@jit
def _sigmoid_grad1(g, v, one, zero):
    s = _sigmoid1(v, one, zero)
    return g * s * (one - s)


@jit
def _tanh_grad1(g, v, one):
    t = math.tanh(v)
    return g * (one - t * t)


@jit
def _gelu1(v, half, one, rsqrt2):
    return half * v * (one + math.erf(v * rsqrt2))


@jit
def _gelu_grad1(g, v, half, one, rsqrt2, rsqrt2pi):
    cdf = half * (one + math.erf(v * rsqrt2))
    pdf = rsqrt2pi * math.exp(-half * v * v)
    return g * (cdf + v * pdf)


# ----------------------------------------------------------------------------- elementwise kernels
# x, dy, out: flat (1-D) C-contiguous arrays of one dtype. Each kernel has one parallel loop and
# one serial loop with the same body.

@pjit
def _relu_kernel(x, out, parallel):
    zero = x.dtype.type(0)
    if parallel:
        for i in prange(x.size):
            out[i] = _relu1(x[i], zero)
    else:
        for i in range(x.size):
            out[i] = _relu1(x[i], zero)


@pjit
def _relu_backward_kernel(dy, x, out, parallel):
    zero = x.dtype.type(0)
    if parallel:
        for i in prange(x.size):
            out[i] = _relu_grad1(dy[i], x[i], zero)
    else:
        for i in range(x.size):
            out[i] = _relu_grad1(dy[i], x[i], zero)


@pjit
def _leaky_kernel(x, slope, out, parallel):
    zero = x.dtype.type(0)
    a = x.dtype.type(slope)
    if parallel:
        for i in prange(x.size):
            out[i] = _leaky1(x[i], a, zero)
    else:
        for i in range(x.size):
            out[i] = _leaky1(x[i], a, zero)


@pjit
def _leaky_backward_kernel(dy, x, slope, out, parallel):
    zero = x.dtype.type(0)
    a = x.dtype.type(slope)
    if parallel:
        for i in prange(x.size):
            out[i] = _leaky_grad1(dy[i], x[i], a, zero)
    else:
        for i in range(x.size):
            out[i] = _leaky_grad1(dy[i], x[i], a, zero)


@pjit
def _elu_kernel(x, alpha, out, parallel):
    zero = x.dtype.type(0)
    a = x.dtype.type(alpha)
    if parallel:
        for i in prange(x.size):
            out[i] = _elu1(x[i], a, zero)
    else:
        for i in range(x.size):
            out[i] = _elu1(x[i], a, zero)


@pjit
def _elu_backward_kernel(dy, x, alpha, out, parallel):
    zero = x.dtype.type(0)
    a = x.dtype.type(alpha)
    if parallel:
        for i in prange(x.size):
            out[i] = _elu_grad1(dy[i], x[i], a, zero)
    else:
        for i in range(x.size):
            out[i] = _elu_grad1(dy[i], x[i], a, zero)


@pjit
def _sigmoid_kernel(x, out, parallel):
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    if parallel:
        for i in prange(x.size):
            out[i] = _sigmoid1(x[i], one, zero)
    else:
        for i in range(x.size):
            out[i] = _sigmoid1(x[i], one, zero)


@pjit
def _sigmoid_backward_kernel(dy, x, out, parallel):
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    if parallel:
        for i in prange(x.size):
            out[i] = _sigmoid_grad1(dy[i], x[i], one, zero)
    else:
        for i in range(x.size):
            out[i] = _sigmoid_grad1(dy[i], x[i], one, zero)


@pjit
def _tanh_kernel(x, out, parallel):
    if parallel:
        for i in prange(x.size):
            out[i] = math.tanh(x[i])
    else:
        for i in range(x.size):
            out[i] = math.tanh(x[i])


@pjit
def _tanh_backward_kernel(dy, x, out, parallel):
    one = x.dtype.type(1)
    if parallel:
        for i in prange(x.size):
            out[i] = _tanh_grad1(dy[i], x[i], one)
    else:
        for i in range(x.size):
            out[i] = _tanh_grad1(dy[i], x[i], one)


@pjit
def _gelu_kernel(x, out, parallel):
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    rsqrt2 = x.dtype.type(0.7071067811865476)
    if parallel:
        for i in prange(x.size):
            out[i] = _gelu1(x[i], half, one, rsqrt2)
    else:
        for i in range(x.size):
            out[i] = _gelu1(x[i], half, one, rsqrt2)


@pjit
def _gelu_backward_kernel(dy, x, out, parallel):
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    rsqrt2 = x.dtype.type(0.7071067811865476)
    rsqrt2pi = x.dtype.type(0.3989422804014327)
    if parallel:
        for i in prange(x.size):
            out[i] = _gelu_grad1(dy[i], x[i], half, one, rsqrt2, rsqrt2pi)
    else:
        for i in range(x.size):
            out[i] = _gelu_grad1(dy[i], x[i], half, one, rsqrt2, rsqrt2pi)


# ----------------------------------------------------------------------------- PReLU
# Per-channel slopes on an (N, C, S) view; a single slope is a leaky ReLU.

@pjit
def _prelu_channels_kernel(x, w, out, parallel):
    n, c, s = x.shape
    zero = x.dtype.type(0)
    if s == 1:
        x2 = x.reshape((n, c))
        o2 = out.reshape((n, c))
        if parallel:
            for i in prange(n):
                for j in range(c):
                    o2[i, j] = _leaky1(x2[i, j], w[j], zero)
        else:
            for i in range(n):
                for j in range(c):
                    o2[i, j] = _leaky1(x2[i, j], w[j], zero)
    elif parallel:
        for t in prange(n * c):
            i = t // c
            j = t - i * c
            a = w[j]
            for k in range(s):
                out[i, j, k] = _leaky1(x[i, j, k], a, zero)
    else:
        for i in range(n):
            for j in range(c):
                a = w[j]
                for k in range(s):
                    out[i, j, k] = _leaky1(x[i, j, k], a, zero)


@jit
def _prelu_rows_block(dy, x, w, dx, partial, b, lo, hi):
    zero = x.dtype.type(0)
    for i in range(lo, hi):
        for j in range(x.shape[1]):
            v = x[i, j]
            g = dy[i, j]
            if v > zero:
                dx[i, j] = g
            else:
                dx[i, j] = g * w[j]
                partial[b, j] += g * v


@jit
def _prelu_plane(dy, x, dx, a, i, j):
    zero = x.dtype.type(0)
    acc = 0.0
    for k in range(x.shape[2]):
        v = x[i, j, k]
        g = dy[i, j, k]
        if v > zero:
            dx[i, j, k] = g
        else:
            dx[i, j, k] = g * a
            acc += g * v
    return acc


@pjit
def _prelu_channels_backward_kernel(dy, x, w, dx, partial, parallel):
    """dx, and partial[b, j]: the sum of dy*x over x <= 0 in channel j of row block b (s == 1,
    blocks of ceil(n / nb) rows) or of row b (s > 1, nb == n)."""
    n, c, s = x.shape
    nb = partial.shape[0]
    if s == 1:
        x2 = x.reshape((n, c))
        g2 = dy.reshape((n, c))
        d2 = dx.reshape((n, c))
        rows = (n + nb - 1) // nb
        if parallel:
            for b in prange(nb):
                _prelu_rows_block(g2, x2, w, d2, partial, b, b * rows, min(n, (b + 1) * rows))
        else:
            for b in range(nb):
                _prelu_rows_block(g2, x2, w, d2, partial, b, b * rows, min(n, (b + 1) * rows))
    elif parallel:
        for t in prange(n * c):
            i = t // c
            j = t - i * c
            partial[i, j] = _prelu_plane(dy, x, dx, w[j], i, j)
    else:
        for i in range(n):
            for j in range(c):
                partial[i, j] = _prelu_plane(dy, x, dx, w[j], i, j)


@jit
def _prelu_flat_block(dy, x, a, dx, lo, hi):
    zero = x.dtype.type(0)
    acc = 0.0
    for i in range(lo, hi):
        v = x[i]
        g = dy[i]
        if v > zero:
            dx[i] = g
        else:
            dx[i] = g * a
            acc += g * v
    return acc


@pjit
def _prelu_single_backward_kernel(dy, x, slope, dx, partial, parallel):
    """Single slope: dx, and partial[b] = the sum of dy*x over x <= 0 in flat block b."""
    a = x.dtype.type(slope)
    nb = partial.size
    size = x.size
    step = (size + nb - 1) // nb
    if parallel:
        for b in prange(nb):
            partial[b] = _prelu_flat_block(dy, x, a, dx, b * step, min(size, (b + 1) * step))
    else:
        for b in range(nb):
            partial[b] = _prelu_flat_block(dy, x, a, dx, b * step, min(size, (b + 1) * step))


# ----------------------------------------------------------------------------- softmax
# x, out: (outer, n, inner) views. mode 0: softmax, 1: log_softmax.

@jit
def _softmax_row(x, out, r, mode):
    n = x.shape[1]
    mx = x.dtype.type(-np.inf)
    for k in range(n):
        v = x[r, k]
        mx = v if v > mx else mx
    total = x.dtype.type(0)
    if mode == 0:
        for k in range(n):
            e = math.exp(x[r, k] - mx)
            out[r, k] = e
            total += e
        inv = x.dtype.type(1) / total
        for k in range(n):
            out[r, k] *= inv
    else:
        for k in range(n):
            total += math.exp(x[r, k] - mx)
        lse = math.log(total)
        for k in range(n):
            out[r, k] = (x[r, k] - mx) - lse


@jit
def _softmax_row_backward(dy, x, dx, r, mode):
    """dx = y * (dy - sum(dy * y)) for softmax; dx = dy - y * sum(dy) for log_softmax."""
    _softmax_row(x, dx, r, 0)
    n = x.shape[1]
    acc = x.dtype.type(0)
    if mode == 0:
        for k in range(n):
            acc += dy[r, k] * dx[r, k]
        for k in range(n):
            dx[r, k] = dx[r, k] * (dy[r, k] - acc)
    else:
        for k in range(n):
            acc += dy[r, k]
        for k in range(n):
            dx[r, k] = dy[r, k] - dx[r, k] * acc


@pjit
def _softmax_rows_kernel(x, out, mode, parallel):
    if parallel:
        for r in prange(x.shape[0]):
            _softmax_row(x, out, r, mode)
    else:
        for r in range(x.shape[0]):
            _softmax_row(x, out, r, mode)


@pjit
def _softmax_rows_backward_kernel(dy, x, dx, mode, parallel):
    if parallel:
        for r in prange(x.shape[0]):
            _softmax_row_backward(dy, x, dx, r, mode)
    else:
        for r in range(x.shape[0]):
            _softmax_row_backward(dy, x, dx, r, mode)


@jit
def _softmax_block(x, out, o, lo, hi, mode):
    """Softmax over axis 1 of x[o, :, lo:hi], vectorised along the inner positions."""
    n = x.shape[1]
    w = hi - lo
    m = np.full(w, -np.inf, dtype=x.dtype)
    total = np.zeros(w, dtype=x.dtype)
    for k in range(n):
        for j in range(w):
            v = x[o, k, lo + j]
            m[j] = v if v > m[j] else m[j]
    for k in range(n):
        for j in range(w):
            e = math.exp(x[o, k, lo + j] - m[j])
            if mode == 0:
                out[o, k, lo + j] = e
            total[j] += e
    if mode == 0:
        for j in range(w):
            total[j] = x.dtype.type(1) / total[j]
        for k in range(n):
            for j in range(w):
                out[o, k, lo + j] *= total[j]
    else:
        for j in range(w):
            total[j] = math.log(total[j])
        for k in range(n):
            for j in range(w):
                out[o, k, lo + j] = (x[o, k, lo + j] - m[j]) - total[j]


@jit
def _softmax_block_backward(dy, x, dx, o, lo, hi, mode):
    _softmax_block(x, dx, o, lo, hi, 0)
    n = x.shape[1]
    w = hi - lo
    acc = np.zeros(w, dtype=x.dtype)
    if mode == 0:
        for k in range(n):
            for j in range(w):
                acc[j] += dy[o, k, lo + j] * dx[o, k, lo + j]
        for k in range(n):
            for j in range(w):
                dx[o, k, lo + j] = dx[o, k, lo + j] * (dy[o, k, lo + j] - acc[j])
    else:
        for k in range(n):
            for j in range(w):
                acc[j] += dy[o, k, lo + j]
        for k in range(n):
            for j in range(w):
                dx[o, k, lo + j] = dy[o, k, lo + j] - dx[o, k, lo + j] * acc[j]


@pjit
def _softmax_inner_kernel(x, out, mode, block, parallel):
    outer, inner = x.shape[0], x.shape[2]
    nb = (inner + block - 1) // block
    if parallel:
        for t in prange(outer * nb):
            o = t // nb
            lo = (t - o * nb) * block
            _softmax_block(x, out, o, lo, min(inner, lo + block), mode)
    else:
        for t in range(outer * nb):
            o = t // nb
            lo = (t - o * nb) * block
            _softmax_block(x, out, o, lo, min(inner, lo + block), mode)


@pjit
def _softmax_inner_backward_kernel(dy, x, dx, mode, block, parallel):
    outer, inner = x.shape[0], x.shape[2]
    nb = (inner + block - 1) // block
    if parallel:
        for t in prange(outer * nb):
            o = t // nb
            lo = (t - o * nb) * block
            _softmax_block_backward(dy, x, dx, o, lo, min(inner, lo + block), mode)
    else:
        for t in range(outer * nb):
            o = t // nb
            lo = (t - o * nb) * block
            _softmax_block_backward(dy, x, dx, o, lo, min(inner, lo + block), mode)


# ----------------------------------------------------------------------------- host functions

def _flat(a):
    return a.reshape(-1)


def _map(kernel, x, *scalars):
    out = np.empty_like(x)
    kernel(_flat(x), *scalars, _flat(out), _parallel(x))
    return out


def _map_backward(kernel, dy, x, *scalars):
    dx = np.empty_like(x)
    kernel(_flat(dy), _flat(x), *scalars, _flat(dx), _parallel(x))
    return dx


def relu(x):
    return _map(_relu_kernel, x)


def relu_backward(dy, x):
    return _map_backward(_relu_backward_kernel, dy, x)


def leaky_relu(x, negative_slope):
    return _map(_leaky_kernel, x, float(negative_slope))


def leaky_relu_backward(dy, x, negative_slope):
    return _map_backward(_leaky_backward_kernel, dy, x, float(negative_slope))


def elu(x, alpha):
    return _map(_elu_kernel, x, float(alpha))


def elu_backward(dy, x, alpha):
    return _map_backward(_elu_backward_kernel, dy, x, float(alpha))


def sigmoid(x):
    return _map(_sigmoid_kernel, x)


def sigmoid_backward(dy, x):
    return _map_backward(_sigmoid_backward_kernel, dy, x)


def tanh(x):
    return _map(_tanh_kernel, x)


def tanh_backward(dy, x):
    return _map_backward(_tanh_backward_kernel, dy, x)


def gelu(x):
    return _map(_gelu_kernel, x)


def gelu_backward(dy, x):
    return _map_backward(_gelu_backward_kernel, dy, x)


def _channel_view(x):
    n, c = x.shape[0], x.shape[1]
    return x.reshape((n, c, x.size // (n * c) if n * c else 1))


def prelu(x, weight):
    if weight.size == 1:
        return leaky_relu(x, float(weight[0]))
    out = np.empty_like(x)
    _prelu_channels_kernel(_channel_view(x), weight, _channel_view(out), _parallel(x))
    return out


def prelu_backward(dy, x, weight):
    dx = np.empty_like(x)
    if weight.size == 1:
        nb = max(1, min(256, x.size // _REDUCE_BLOCK))
        partial = np.zeros(nb)
        _prelu_single_backward_kernel(_flat(dy), _flat(x), float(weight[0]), _flat(dx), partial,
                                      _parallel(x))
        return dx, np.array([partial.sum()], dtype=x.dtype).reshape(weight.shape)
    x3 = _channel_view(x)
    n, c, s = x3.shape
    nb = max(1, min(n, 256, x.size // _REDUCE_BLOCK)) if s == 1 else n
    partial = np.zeros((nb, c))
    _prelu_channels_backward_kernel(_channel_view(dy), x3, weight, _channel_view(dx), partial,
                                    _parallel(x))
    return dx, partial.sum(axis=0).astype(x.dtype)


def _axis_view(x, axis):
    shape = x.shape
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return x.reshape((outer, shape[axis], inner))


def _softmax(x, axis, mode):
    out = np.empty_like(x)
    x3, o3 = _axis_view(x, axis), _axis_view(out, axis)
    if x3.shape[2] == 1:
        _softmax_rows_kernel(x3.reshape(x3.shape[:2]), o3.reshape(x3.shape[:2]), mode, _parallel(x))
    else:
        _softmax_inner_kernel(x3, o3, mode, _SOFTMAX_BLOCK, _parallel(x))
    return out


def _softmax_backward(dy, x, axis, mode):
    dx = np.empty_like(x)
    x3, g3, d3 = _axis_view(x, axis), _axis_view(dy, axis), _axis_view(dx, axis)
    if x3.shape[2] == 1:
        rows = x3.shape[:2]
        _softmax_rows_backward_kernel(g3.reshape(rows), x3.reshape(rows), d3.reshape(rows), mode,
                                      _parallel(x))
    else:
        _softmax_inner_backward_kernel(g3, x3, d3, mode, _SOFTMAX_BLOCK, _parallel(x))
    return dx


def softmax(x, axis):
    return _softmax(x, axis, 0)


def log_softmax(x, axis):
    return _softmax(x, axis, 1)


def softmax_backward(dy, x, axis):
    return _softmax_backward(dy, x, axis, 0)


def log_softmax_backward(dy, x, axis):
    return _softmax_backward(dy, x, axis, 1)
