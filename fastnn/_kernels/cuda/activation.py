"""Activation kernels (CUDA): elementwise grid-stride maps, block reductions for softmax and PReLU.

Host functions mirror ``fastnn._kernels.cpu.activation`` (same names and signatures) on
C-contiguous device arrays and return device arrays of the input's dtype. Constants reach kernels
as arguments of the input's dtype, so float32 kernels compute in float32.
"""
import functools
import math

import numpy as np
from numba import cuda

from . import _config as cfg
from ._reduce import block_sum, channel_index, finish_splits, row_max_exp_sum, tree
from ._util import empty, flat

# ----------------------------------------------------------------------------- elementwise maps


@cuda.jit(device=True)
def _sigmoid1(v, one, zero):
    e = math.exp(-abs(v))
    s = one / (one + e)
    return s if v >= zero else e * s


@cuda.jit
def _relu_kernel(x, out, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = v if v > zero else zero


@cuda.jit
def _relu_backward_kernel(dy, x, out, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = dy[i] if x[i] > zero else zero


@cuda.jit
def _leaky_kernel(x, out, slope, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = v if v > zero else v * slope


@cuda.jit
def _leaky_backward_kernel(dy, x, out, slope, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        g = dy[i]
        out[i] = g if x[i] > zero else g * slope


@cuda.jit
def _elu_kernel(x, out, alpha, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = v if v > zero else alpha * math.expm1(v)


@cuda.jit
def _elu_backward_kernel(dy, x, out, alpha, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        g = dy[i]
        out[i] = g if v > zero else g * alpha * math.exp(v)


@cuda.jit
def _sigmoid_kernel(x, out, one, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = _sigmoid1(x[i], one, zero)


@cuda.jit
def _sigmoid_backward_kernel(dy, x, out, one, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = _sigmoid1(x[i], one, zero)
        out[i] = dy[i] * s * (one - s)


@cuda.jit
def _tanh_kernel(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = math.tanh(x[i])


@cuda.jit
def _tanh_backward_kernel(dy, x, out, one):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        t = math.tanh(x[i])
        out[i] = dy[i] * (one - t * t)


@cuda.jit
def _gelu_kernel(x, out, half, one, rsqrt2):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = half * v * (one + math.erf(v * rsqrt2))


@cuda.jit
def _gelu_backward_kernel(dy, x, out, half, one, rsqrt2, rsqrt2pi):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        cdf = half * (one + math.erf(v * rsqrt2))
        pdf = rsqrt2pi * math.exp(-half * v * v)
        out[i] = dy[i] * (cdf + v * pdf)


def _flat(a):
    return flat(a)


def _map(kernel, x, *scalars):
    out = empty(x.shape, x.dtype)
    if x.size:
        t = np.dtype(x.dtype).type
        kernel[cfg.grid(x.size), cfg.TPB](_flat(x), _flat(out), *(t(s) for s in scalars))
    return out


def _map_backward(kernel, dy, x, *scalars):
    out = empty(x.shape, x.dtype)
    if x.size:
        t = np.dtype(x.dtype).type
        kernel[cfg.grid(x.size), cfg.TPB](_flat(dy), _flat(x), _flat(out),
                                          *(t(s) for s in scalars))
    return out


def relu(x):
    return _map(_relu_kernel, x, 0)


def relu_inplace(y):
    """``y = max(y, 0)`` in place (the ReLU of a fused conv/dense + bias + ReLU)."""
    if y.size:
        _relu_kernel[cfg.grid(y.size), cfg.TPB](_flat(y), _flat(y), np.dtype(y.dtype).type(0))
    return y


def relu_backward(dy, x):
    return _map_backward(_relu_backward_kernel, dy, x, 0)


def leaky_relu(x, negative_slope):
    return _map(_leaky_kernel, x, negative_slope, 0)


def leaky_relu_backward(dy, x, negative_slope):
    return _map_backward(_leaky_backward_kernel, dy, x, negative_slope, 0)


def elu(x, alpha):
    return _map(_elu_kernel, x, alpha, 0)


def elu_backward(dy, x, alpha):
    return _map_backward(_elu_backward_kernel, dy, x, alpha, 0)


def sigmoid(x):
    return _map(_sigmoid_kernel, x, 1, 0)


def sigmoid_backward(dy, x):
    return _map_backward(_sigmoid_backward_kernel, dy, x, 1, 0)


def tanh(x):
    return _map(_tanh_kernel, x)


def tanh_backward(dy, x):
    return _map_backward(_tanh_backward_kernel, dy, x, 1)


_RSQRT2 = 1.0 / math.sqrt(2.0)
_RSQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu(x):
    return _map(_gelu_kernel, x, 0.5, 1, _RSQRT2)


def gelu_backward(dy, x):
    return _map_backward(_gelu_backward_kernel, dy, x, 0.5, 1, _RSQRT2, _RSQRT2PI)


# ----------------------------------------------------------------------------- PReLU

@cuda.jit
def _prelu_kernel(x, w, out, C, P, zero):
    """x viewed as (N, C, P); slope w[c] (or w[0] when w has one element)."""
    single = w.size == 1
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if v > zero:
            out[i] = v
        else:
            c = 0 if single else (i // P) % C
            out[i] = w[c] * v


_RT = cfg.REDUCE_TPB


@functools.lru_cache(maxsize=None)
def _prelu_backward_kernel(dtype):
    sc = np.dtype(dtype).type

    @cuda.jit
    def partial(dy, x, w, dx, part, N, C, P, nsplit):
        """Block (c, s): dx over its share of channel c's elements, and part[c, s] = the share's
        sum of dy * x where x <= 0 (accumulated in float64)."""
        buf = cuda.shared.array(_RT, np.float64)
        t = cuda.threadIdx.x
        c = cuda.blockIdx.x
        s = cuda.blockIdx.y
        zero = sc(0)
        slope = w[c]
        NP = N * P
        acc = np.float64(0)
        for j in range(s * _RT + t, NP, nsplit * _RT):
            i = channel_index(j, c, C, P)
            v = x[i]
            g = dy[i]
            if v > zero:
                dx[i] = g
            else:
                dx[i] = g * slope
                acc += np.float64(g * v)
        acc = tree(buf, acc, _RT, False)    # the block ends here: no barrier after the read
        if t == 0:
            part[c * nsplit + s] = acc

    return partial


def _channel_view(x):
    """(N, C, P) sizes of x seen as channels on axis 1 (a 1-D x is one channel)."""
    if x.ndim >= 2:
        n, c = x.shape[0], x.shape[1]
        return n, c, (x.size // (n * c) if n * c else 1)
    return 1, 1, x.size


def prelu(x, weight):
    out = empty(x.shape, x.dtype)
    if x.size:
        _, C, P = _channel_view(x)
        _prelu_kernel[cfg.grid(x.size), cfg.TPB](_flat(x), weight, _flat(out), C, P,
                                                 np.dtype(x.dtype).type(0))
    return out


def prelu_backward(dy, x, weight):
    dx = empty(x.shape, x.dtype)
    dw = empty(weight.shape, x.dtype)
    if weight.size == 1:
        N, C, P = 1, 1, x.size     # one slope: every element is one "channel"
    else:
        N, C, P = _channel_view(x)
    per = max(1, N * P)
    nsplit = max(1, min(cfg.max_blocks() // max(C, 1), (per + _RT - 1) // _RT))
    part = empty(C * nsplit, np.float64)
    partial = _prelu_backward_kernel(np.dtype(x.dtype))
    if C:
        partial[(C, nsplit), _RT](_flat(dy), _flat(x), weight, _flat(dx), part, N, C, P, nsplit)
        finish_splits[cfg.grid(C), cfg.TPB](part, dw, C, nsplit, nsplit, 1)
    return dx, dw


# ----------------------------------------------------------------------------- softmax

@functools.lru_cache(maxsize=None)
def _softmax_kernels(dtype):
    """Row kernels (softmax over the last axis: one block per row, block reductions) and column
    kernels (softmax over an inner axis: one thread per (outer, inner) column). mode 0 is softmax,
    mode 1 log_softmax."""
    sc = np.dtype(dtype).type
    NEG_INF = sc(-np.inf)

    @cuda.jit
    def rows(x, out, R, n, mode):
        buf = cuda.shared.array(_RT, sc)
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            base = r * n
            m, s = row_max_exp_sum(buf, x, out, base, n, mode == 0, NEG_INF, sc(0))
            if mode == 0:
                inv = sc(1) / s
                for k in range(t, n, nt):
                    out[base + k] *= inv
            else:
                lse = math.log(s)
                for k in range(t, n, nt):
                    out[base + k] = (x[base + k] - m) - lse

    @cuda.jit
    def rows_backward(dy, x, dx, R, n, mode):
        buf = cuda.shared.array(_RT, sc)
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            base = r * n
            m, s = row_max_exp_sum(buf, x, dx, base, n, False, NEG_INF, sc(0))
            inv = sc(1) / s
            acc = sc(0)
            for k in range(t, n, nt):
                if mode == 0:
                    acc += dy[base + k] * (math.exp(x[base + k] - m) * inv)
                else:
                    acc += dy[base + k]
            acc = block_sum(buf, acc, nt)
            for k in range(t, n, nt):
                y = math.exp(x[base + k] - m) * inv
                if mode == 0:
                    dx[base + k] = y * (dy[base + k] - acc)
                else:
                    dx[base + k] = dy[base + k] - y * acc

    @cuda.jit(device=True)
    def column_max_exp_sum(x, col, n, inner):
        """(base, m, s): column ``col``'s first index, max (NaN skipped) and sum of exp(x - m),
        the column's n elements lying ``inner`` apart (one thread per column)."""
        o = col // inner
        base = o * n * inner + (col - o * inner)
        m = NEG_INF
        for k in range(n):
            v = x[base + k * inner]
            m = v if v > m else m
        s = sc(0)
        for k in range(n):
            s += math.exp(x[base + k * inner] - m)
        return base, m, s

    @cuda.jit
    def cols(x, out, outer, n, inner, mode):
        for col in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
            base, m, s = column_max_exp_sum(x, col, n, inner)
            if mode == 0:
                inv = sc(1) / s
                for k in range(n):
                    out[base + k * inner] = math.exp(x[base + k * inner] - m) * inv
            else:
                lse = math.log(s)
                for k in range(n):
                    out[base + k * inner] = (x[base + k * inner] - m) - lse

    @cuda.jit
    def cols_backward(dy, x, dx, outer, n, inner, mode):
        for col in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
            base, m, s = column_max_exp_sum(x, col, n, inner)
            inv = sc(1) / s
            acc = sc(0)
            for k in range(n):
                j = base + k * inner
                if mode == 0:
                    acc += dy[j] * (math.exp(x[j] - m) * inv)
                else:
                    acc += dy[j]
            for k in range(n):
                j = base + k * inner
                y = math.exp(x[j] - m) * inv
                if mode == 0:
                    dx[j] = y * (dy[j] - acc)
                else:
                    dx[j] = dy[j] - y * acc

    return rows, cols, rows_backward, cols_backward


def _axis_sizes(x, axis):
    shape = tuple(x.shape)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, shape[axis], inner


def row_threads(n):
    """Threads per block for a row of ``n`` elements: a power of two, at most REDUCE_TPB."""
    t = 1
    while t < n and t < _RT:
        t *= 2
    return t if cfg.SIMULATOR else max(32, t)


def _run_softmax(backward, inputs, x, axis, mode):
    """Launch the row kernel (softmax over the last axis) or the column kernel of ``axis``, the
    forward or the ``backward`` one, on the flat ``inputs``; returns the new x-shaped output."""
    out = empty(x.shape, x.dtype)
    if x.size == 0:
        return out
    rows, cols = _softmax_kernels(np.dtype(x.dtype))[2 * backward:2 * backward + 2]
    outer, n, inner = _axis_sizes(x, axis)
    arrays = tuple(_flat(a) for a in inputs) + (_flat(out),)
    if inner == 1:
        rows[min(outer, cfg.max_blocks()), row_threads(n)](*arrays, outer, n, mode)
    else:
        cols[cfg.grid(outer * inner), cfg.TPB](*arrays, outer, n, inner, mode)
    return out


def softmax(x, axis):
    return _run_softmax(False, (x,), x, axis, 0)


def log_softmax(x, axis):
    return _run_softmax(False, (x,), x, axis, 1)


def softmax_backward(dy, x, axis):
    return _run_softmax(True, (dy, x), x, axis, 0)


def log_softmax_backward(dy, x, axis):
    return _run_softmax(True, (dy, x), x, axis, 1)
