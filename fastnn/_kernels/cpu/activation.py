"""Activation kernels on the CPU.

Elementwise activations run one pass over a flat view of the input: one loop body, compiled for
each activation's rule, serially below ``SERIAL_BELOW`` elements (a parallel region costs more than
the work there) and in parallel above (``_jit.loops``). Softmax works on an ``(outer, n, inner)``
view of the input, with no transposing copy.

The exp-based rules call the vectorisable functions of ``vecmath`` (``vexp``, ``vexpm1``,
``vtanh``, ``verf``).

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

from ._jit import bind, jit, loops
from .vecmath import max1d, relu1, verf, vexp, vexpm1, vtanh
from ._workspace import empty_like

SERIAL_BELOW = 1 << 15  # elements; smaller arrays run on one thread
_SOFTMAX_BLOCK = 256    # inner positions per task when softmax runs over a non-last axis
_REDUCE_BLOCK = 1 << 14  # elements per partial sum in the PReLU weight gradient


def _parallel(a):
    return a.size >= SERIAL_BELOW


# ----------------------------------------------------------------------------- scalar maps
# Small helpers, inlined into the loops below (which stay vectorisable).

@jit(inline="always")
def _leaky1(v, slope, zero):
    return v if v > zero else v * slope


@jit(inline="always")
def _leaky_grad1(g, v, slope, zero):
    return g if v > zero else g * slope


@jit(inline="always")
def _sigmoid1(v, one, zero):
    # exp of a non-positive number never overflows; the two halves of the logistic meet at 0.
    e = vexp(-abs(v))
    s = one / (one + e)
    return s if v >= zero else e * s


# ----------------------------------------------------------------------------- elementwise kernels
# One loop body (``_elementwise``) compiled for each rule. A rule gives element i of the output
# from flat (1-D) arrays dy and x and a scalar parameter s (a Python float: the slope or alpha);
# forward rules ignore dy (the host passes x for it). Constants take x's dtype and are made, and
# dy[i] read, before a vector-math call: after it, they stop the loop from vectorising.

_RSQRT2 = 0.7071067811865476     # 1 / sqrt(2)
_RSQRT2PI = 0.3989422804014327   # 1 / sqrt(2 pi)


@jit(inline="always")
def _relu(i, dy, x, s):
    return relu1(x[i], x.dtype.type(0))


@jit(inline="always")
def _relu_grad(i, dy, x, s):
    zero = x.dtype.type(0)
    return zero if x[i] <= zero else dy[i]


@jit(inline="always")
def _leaky(i, dy, x, s):
    return _leaky1(x[i], x.dtype.type(s), x.dtype.type(0))


@jit(inline="always")
def _leaky_grad(i, dy, x, s):
    return _leaky_grad1(dy[i], x[i], x.dtype.type(s), x.dtype.type(0))


@jit(inline="always")
def _elu(i, dy, x, s):
    v = x[i]
    zero = x.dtype.type(0)
    e = x.dtype.type(s) * vexpm1(min(v, zero))  # unconditional (and bounded): the loop vectorises
    return v if v > zero else e


@jit(inline="always")
def _elu_grad(i, dy, x, s):
    v = x[i]
    g = dy[i]
    zero = x.dtype.type(0)
    e = g * x.dtype.type(s) * vexp(min(v, zero))
    return g if v > zero else e


@jit(inline="always")
def _sigmoid(i, dy, x, s):
    return _sigmoid1(x[i], x.dtype.type(1), x.dtype.type(0))


@jit(inline="always")
def _sigmoid_grad(i, dy, x, s):
    g = dy[i]
    one = x.dtype.type(1)
    p = _sigmoid1(x[i], one, x.dtype.type(0))
    return g * p * (one - p)


@jit(inline="always")
def _tanh(i, dy, x, s):
    return vtanh(x[i])


@jit(inline="always")
def _tanh_grad(i, dy, x, s):
    g = dy[i]
    one = x.dtype.type(1)
    t = vtanh(x[i])
    return g * (one - t * t)


@jit(inline="always")
def _gelu(i, dy, x, s):
    v = x[i]
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    rsqrt2 = x.dtype.type(_RSQRT2)
    return half * v * (one + verf(v * rsqrt2))


@jit(inline="always")
def _gelu_grad(i, dy, x, s):
    g = dy[i]
    v = x[i]
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    rsqrt2 = x.dtype.type(_RSQRT2)
    rsqrt2pi = x.dtype.type(_RSQRT2PI)
    cdf = half * (one + verf(v * rsqrt2))
    pdf = rsqrt2pi * vexp(-half * v * v)
    return g * (cdf + v * pdf)


# Names that each compiled copy of a body below binds to its own function or constant
# (``_jit.bind`` / ``specialise``); declared here so that a reader finds them.
rule = row = part = None


def _elementwise(out, dy, x, s):
    """out[i] = rule(i, dy, x, s) for every element (``rule``: bound per kernel)."""
    for i in prange(out.size):
        out[i] = rule(i, dy, x, s)


# each named after its rule (``_relu`` -> ``_relu_kernel``, ``_relu_grad`` -> ``_relu_grad_kernel``)
(_relu_kernel, _relu_grad_kernel, _leaky_kernel, _leaky_grad_kernel, _elu_kernel,
 _elu_grad_kernel, _sigmoid_kernel, _sigmoid_grad_kernel, _tanh_kernel, _tanh_grad_kernel,
 _gelu_kernel, _gelu_grad_kernel) = (
    loops(bind(_elementwise, rule.py_func.__name__ + "_kernel", rule=rule)) for rule in (
        _relu, _relu_grad, _leaky, _leaky_grad, _elu, _elu_grad, _sigmoid, _sigmoid_grad, _tanh,
        _tanh_grad, _gelu, _gelu_grad))


# ----------------------------------------------------------------------------- PReLU
# Per-channel slopes on an (N, C, S) view; a single slope is a leaky ReLU.

@loops
def _prelu_channels_kernel(x, w, out):
    n, c, s = x.shape
    zero = x.dtype.type(0)
    if s == 1:
        x2 = x.reshape((n, c))
        o2 = out.reshape((n, c))
        for i in prange(n):
            for j in range(c):
                o2[i, j] = _leaky1(x2[i, j], w[j], zero)
    else:
        for t in prange(n * c):
            i = t // c
            j = t - i * c
            a = w[j]
            for k in range(s):
                out[i, j, k] = _leaky1(x[i, j, k], a, zero)


@jit(inline="always")
def _prelu_rows_block(dy, x, w, dx, partial, b, lo, hi):
    zero = x.dtype.type(0)
    for i in range(lo, hi):
        for j in range(x.shape[1]):
            v = x[i, j]
            g = dy[i, j]
            dx[i, j] = _leaky_grad1(g, v, w[j], zero)
            partial[b, j] += g * min(v, zero)  # branch-free: x > 0 adds 0


@jit(inline="always")
def _prelu_plane(dy, x, dx, a, i, j):
    zero = x.dtype.type(0)
    acc = 0.0
    for k in range(x.shape[2]):
        v = x[i, j, k]
        g = dy[i, j, k]
        dx[i, j, k] = _leaky_grad1(g, v, a, zero)
        acc += g * min(v, zero)
    return acc


@loops
def _prelu_channels_backward_kernel(dy, x, w, dx, partial):
    """dx, and partial[b, j]: the sum of dy*x over x <= 0 in channel j of row block b (s == 1,
    blocks of ceil(n / nb) rows) or of row b (s > 1, nb == n)."""
    n, c, s = x.shape
    nb = partial.shape[0]
    if s == 1:
        x2 = x.reshape((n, c))
        g2 = dy.reshape((n, c))
        d2 = dx.reshape((n, c))
        rows = (n + nb - 1) // nb
        for b in prange(nb):
            _prelu_rows_block(g2, x2, w, d2, partial, b, b * rows, min(n, (b + 1) * rows))
    else:
        for t in prange(n * c):
            i = t // c
            j = t - i * c
            partial[i, j] = _prelu_plane(dy, x, dx, w[j], i, j)


@jit(inline="always")
def _prelu_flat_block(dy, x, a, dx):
    zero = x.dtype.type(0)
    acc = 0.0
    for i in range(x.size):
        v = x[i]
        g = dy[i]
        dx[i] = _leaky_grad1(g, v, a, zero)
        acc += g * min(v, zero)
    return acc


@loops
def _prelu_single_backward_kernel(dy, x, slope, dx, partial):
    """Single slope: dx, and partial[b] = the sum of dy*x over x <= 0 in flat block b."""
    a = x.dtype.type(slope)
    nb = partial.size
    size = x.size
    step = (size + nb - 1) // nb
    # slices, so that the element loops start at 0: numba's negative-index handling of an
    # offset index (range(lo, hi)) stops them from vectorising
    for b in prange(nb):
        lo = b * step
        hi = min(size, lo + step)
        partial[b] = _prelu_flat_block(dy[lo:hi], x[lo:hi], a, dx[lo:hi])


# ----------------------------------------------------------------------------- softmax
# x, out: (outer, n, inner) views. mode 0: softmax, 1: log_softmax.



@jit
def _softmax_row(r, dy, x, out, mode):
    """Softmax of row r (dy unused: the signature of ``_softmax_row_backward``)."""
    n = x.shape[1]
    mx = max1d(x[r])
    total = x.dtype.type(0)
    if mode == 0:
        for k in range(n):
            e = vexp(x[r, k] - mx)
            out[r, k] = e
            total += e
        inv = x.dtype.type(1) / total
        for k in range(n):
            out[r, k] *= inv
    else:
        for k in range(n):
            total += vexp(x[r, k] - mx)
        lse = math.log(total)
        for k in range(n):
            out[r, k] = (x[r, k] - mx) - lse


@jit
def _softmax_row_backward(r, dy, x, dx, mode):
    """dx = y * (dy - sum(dy * y)) for softmax; dx = dy - y * sum(dy) for log_softmax."""
    _softmax_row(r, dy, x, dx, 0)
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


def _rows(dy, x, out, mode):
    """row(r, dy, x, out, mode) for every row r of x (``row``: bound per kernel)."""
    for r in prange(x.shape[0]):
        row(r, dy, x, out, mode)


_softmax_rows_kernel = loops(bind(_rows, "_softmax_rows_kernel", row=_softmax_row))
_softmax_rows_backward_kernel = loops(bind(_rows, "_softmax_rows_backward_kernel",
                                           row=_softmax_row_backward))


@jit
def _softmax_block(dy, x, out, o, lo, hi, mode):
    """Softmax over axis 1 of x[o, :, lo:hi], vectorised along the inner positions (dy unused:
    the signature of ``_softmax_block_backward``).

    Columns are indexed with an unsigned lo + j: numba's negative-index handling of a signed
    offset index would stop the loops from vectorising."""
    n = x.shape[1]
    w = hi - lo
    m = np.full(w, -np.inf, dtype=x.dtype)
    total = np.zeros(w, dtype=x.dtype)
    for k in range(n):
        for j in range(w):
            c = np.uint64(lo + j)
            v = x[o, k, c]
            m[j] = v if v > m[j] else m[j]
    for k in range(n):
        for j in range(w):
            c = np.uint64(lo + j)
            e = vexp(x[o, k, c] - m[j])
            out[o, k, c] = e  # log_softmax overwrites it below
            total[j] += e
    if mode == 0:
        for j in range(w):
            total[j] = x.dtype.type(1) / total[j]
        for k in range(n):
            for j in range(w):
                c = np.uint64(lo + j)
                out[o, k, c] *= total[j]
    else:
        for j in range(w):
            total[j] = math.log(total[j])
        for k in range(n):
            for j in range(w):
                c = np.uint64(lo + j)
                out[o, k, c] = (x[o, k, c] - m[j]) - total[j]


@jit
def _softmax_block_backward(dy, x, dx, o, lo, hi, mode):
    _softmax_block(dy, x, dx, o, lo, hi, 0)
    n = x.shape[1]
    w = hi - lo
    acc = np.zeros(w, dtype=x.dtype)
    if mode == 0:
        for k in range(n):
            for j in range(w):
                c = np.uint64(lo + j)
                acc[j] += dy[o, k, c] * dx[o, k, c]
        for k in range(n):
            for j in range(w):
                c = np.uint64(lo + j)
                dx[o, k, c] = dx[o, k, c] * (dy[o, k, c] - acc[j])
    else:
        for k in range(n):
            for j in range(w):
                c = np.uint64(lo + j)
                acc[j] += dy[o, k, c]
        for k in range(n):
            for j in range(w):
                c = np.uint64(lo + j)
                dx[o, k, c] = dy[o, k, c] - dx[o, k, c] * acc[j]


def _inner_blocks(dy, x, out, mode, block):
    """part(dy, x, out, o, lo, hi, mode) for every block [lo, hi) of ``block`` inner positions
    of every outer index o (``part``: bound per kernel)."""
    outer, inner = x.shape[0], x.shape[2]
    nb = (inner + block - 1) // block
    for t in prange(outer * nb):
        o = t // nb
        lo = (t - o * nb) * block
        part(dy, x, out, o, lo, min(inner, lo + block), mode)


_softmax_inner_kernel = loops(bind(_inner_blocks, "_softmax_inner_kernel", part=_softmax_block))
_softmax_inner_backward_kernel = loops(bind(_inner_blocks, "_softmax_inner_backward_kernel",
                                            part=_softmax_block_backward))


# ----------------------------------------------------------------------------- host functions

def _flat(a):
    return a.reshape(-1)


def _run(kernel, dy, x, s=0.0):
    """An elementwise kernel over flat views; for a forward rule ``dy`` is ``x``."""
    out = empty_like(x)
    kernel[_parallel(x)](_flat(out), _flat(dy), _flat(x), s)
    return out


def relu(x):
    return _run(_relu_kernel, x, x)


def relu_backward(dy, x):
    return _run(_relu_grad_kernel, dy, x)


def leaky_relu(x, negative_slope):
    return _run(_leaky_kernel, x, x, float(negative_slope))


def leaky_relu_backward(dy, x, negative_slope):
    return _run(_leaky_grad_kernel, dy, x, float(negative_slope))


def elu(x, alpha):
    return _run(_elu_kernel, x, x, float(alpha))


def elu_backward(dy, x, alpha):
    return _run(_elu_grad_kernel, dy, x, float(alpha))


def sigmoid(x):
    return _run(_sigmoid_kernel, x, x)


def sigmoid_backward(dy, x):
    return _run(_sigmoid_grad_kernel, dy, x)


def tanh(x):
    return _run(_tanh_kernel, x, x)


def tanh_backward(dy, x):
    return _run(_tanh_grad_kernel, dy, x)


def gelu(x):
    return _run(_gelu_kernel, x, x)


def gelu_backward(dy, x):
    return _run(_gelu_grad_kernel, dy, x)


def _channel_view(x):
    n, c = x.shape[0], x.shape[1]
    return x.reshape((n, c, x.size // (n * c) if n * c else 1))


def prelu(x, weight):
    if weight.size == 1:
        return leaky_relu(x, float(weight[0]))
    out = empty_like(x)
    _prelu_channels_kernel[_parallel(x)](_channel_view(x), weight, _channel_view(out))
    return out


def prelu_backward(dy, x, weight):
    dx = empty_like(x)
    if weight.size == 1:
        nb = max(1, min(256, x.size // _REDUCE_BLOCK))
        partial = np.zeros(nb)
        _prelu_single_backward_kernel[_parallel(x)](_flat(dy), _flat(x), float(weight[0]),
                                                    _flat(dx), partial)
        return dx, np.array([partial.sum()], dtype=x.dtype).reshape(weight.shape)
    x3 = _channel_view(x)
    n, c, s = x3.shape
    nb = max(1, min(n, 256, x.size // _REDUCE_BLOCK)) if s == 1 else n
    partial = np.zeros((nb, c))
    _prelu_channels_backward_kernel[_parallel(x)](_channel_view(dy), x3, weight,
                                                  _channel_view(dx), partial)
    return dx, partial.sum(axis=0).astype(x.dtype)


def _axis_view(x, axis):
    shape = x.shape
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return x.reshape((outer, shape[axis], inner))


def _softmax(x, axis, mode):
    out = empty_like(x)
    x3, o3 = _axis_view(x, axis), _axis_view(out, axis)
    if x3.shape[2] == 1:
        rows = x3.shape[:2]
        _softmax_rows_kernel[_parallel(x)](x3.reshape(rows), x3.reshape(rows), o3.reshape(rows),
                                           mode)
    else:
        _softmax_inner_kernel[_parallel(x)](x3, x3, o3, mode, _SOFTMAX_BLOCK)
    return out


def _softmax_backward(dy, x, axis, mode):
    dx = empty_like(x)
    x3, g3, d3 = _axis_view(x, axis), _axis_view(dy, axis), _axis_view(dx, axis)
    if x3.shape[2] == 1:
        rows = x3.shape[:2]
        _softmax_rows_backward_kernel[_parallel(x)](g3.reshape(rows), x3.reshape(rows),
                                                    d3.reshape(rows), mode)
    else:
        _softmax_inner_backward_kernel[_parallel(x)](g3, x3, d3, mode, _SOFTMAX_BLOCK)
    return dx


def softmax(x, axis):
    return _softmax(x, axis, 0)


def log_softmax(x, axis):
    return _softmax(x, axis, 1)


def softmax_backward(dy, x, axis):
    return _softmax_backward(dy, x, axis, 0)


def log_softmax_backward(dy, x, axis):
    return _softmax_backward(dy, x, axis, 1)
