"""Pooling kernels (CUDA): max, average, global (max and average) and stochastic pooling.

Host functions mirror ``fastnn._kernels.cpu.pool`` (same names, signatures and results) on
C-contiguous device arrays ``x`` (N, C, H, W) with window arguments as int pairs. Forward kernels
run one thread per output; backward kernels either gather (one thread per input element, where
the window geometry is known) or scatter with atomic adds (max/stochastic routing by index).
Indices are int64 flat positions in an H*W plane, as PyTorch's ``return_indices=True``.
"""
import functools

import numpy as np
from numba import cuda

from . import _config as cfg
from ._random import uniform_f32, uniform_f64
from ._reduce import block_sum
from ._util import empty, flat, zeros


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _flat(a):
    return flat(a)


@cuda.jit(device=True)
def _window(o, H, W, OH, OW, sh, sw, ph, pw):
    """(base, h0, w0) of output ``o``: its plane's first input index and its window's top-left
    corner in input coordinates (negative inside the padding)."""
    p = o // (OH * OW)
    r = o - p * OH * OW
    oh = r // OW
    ow = r - oh * OW
    return p * H * W, oh * sh - ph, ow * sw - pw


@cuda.jit(device=True)
def _clipped_window(o, H, W, OH, OW, kh, kw, sh, sw, ph, pw):
    """(base, hs, he, ws, we): output ``o``'s plane start and its window's rows [hs, he) and
    columns [ws, we) that lie inside the image (the padding left out)."""
    base, h0, w0 = _window(o, H, W, OH, OW, sh, sw, ph, pw)
    return base, max(h0, 0), min(h0 + kh, H), max(w0, 0), min(w0 + kw, W)


@cuda.jit(device=True)
def _position(e, H, W):
    """(plane, row, column) of the flat input index ``e``."""
    p = e // (H * W)
    r = e - p * H * W
    ih = r // W
    return p, ih, r - ih * W


# ------------------------------------------------------------------------------------- max pool

@cuda.jit
def _max_pool_kernel(x, y, idx, H, W, OH, OW, kh, kw, sh, sw, ph, pw, neg_inf):
    """-inf padding, first maximum in scan order, NaN propagates (as PyTorch)."""
    for o in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        base, hs, he, ws, we = _clipped_window(o, H, W, OH, OW, kh, kw, sh, sw, ph, pw)
        m = neg_inf
        i = hs * W + ws
        for ih in range(hs, he):
            for iw in range(ws, we):
                v = x[base + ih * W + iw]
                if v > m or v != v:
                    m = v
                    i = ih * W + iw
        y[o] = m
        idx[o] = i


@cuda.jit
def _route_kernel(dy, idx, dx, OHW, HW, bad):
    """dx[plane][idx] += dy (atomic: windows may share an element); counts indices off the plane."""
    for o in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        i = idx[o]
        if i >= 0 and i < HW:
            p = o // OHW
            cuda.atomic.add(dx, p * HW + i, dy[o])
        else:
            cuda.atomic.add(bad, 0, 1)


def _route(dy, indices, dx_flat, HW, what="indices"):
    bad = zeros(1, np.int64)
    _route_kernel[cfg.grid(dy.size), cfg.TPB](_flat(dy), _flat(indices), dx_flat,
                                             dy.shape[2] * dy.shape[3], HW, bad)
    _check_routed(bad, HW, what)


def _check_routed(bad, HW, what="indices"):
    """Raise if the route kernel counted indices off the H*W plane (it skipped them)."""
    nbad = int(bad.copy_to_host()[0])
    if nbad:
        raise ValueError(f"{what} must lie in [0, {HW}) (flat positions in an H*W plane); "
                         f"{nbad} do not")


def max_pool2d(x, kernel, stride, padding):
    """(y, indices) of max pooling; ``x`` (N, C, H, W), -inf padding, int64 flat plane indices."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)
    y = empty((n, c, oh, ow), x.dtype)
    idx = empty((n, c, oh, ow), np.int64)
    if y.size:
        _max_pool_kernel[cfg.grid(y.size), cfg.TPB](
            _flat(x), _flat(y), _flat(idx), h, w, oh, ow, kh, kw, sh, sw, ph, pw,
            np.dtype(x.dtype).type(-np.inf))
    return y, idx


def max_pool2d_backward(dy, indices, x_shape):
    """dx of max pooling: each dy routed to its flat plane index (summed where windows share one).

    ``dy`` and ``indices`` (N, C, OH, OW) device arrays; ``x_shape`` a 4-tuple. Raises ValueError
    if an index lies outside the H*W plane (no out-of-bounds write happens).
    """
    n, c, h, w = x_shape
    dx = zeros((n, c, h, w), dy.dtype)
    if dx.size and dy.size:
        _route(dy, indices, _flat(dx), h * w)
    return dx


# ------------------------------------------------------------------------------------- avg pool

@cuda.jit
def _avg_pool_kernel(x, y, H, W, OH, OW, kh, kw, sh, sw, ph, pw, inv, zero):
    """Sum of the in-bounds window times ``inv`` = 1/(kh*kw) (zero padding counted)."""
    for o in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        base, hs, he, ws, we = _clipped_window(o, H, W, OH, OW, kh, kw, sh, sw, ph, pw)
        s = zero
        for ih in range(hs, he):
            for iw in range(ws, we):
                s += x[base + ih * W + iw]
        y[o] = s * inv


@cuda.jit(device=True)
def _window_range(i, pad, k, s, out):
    """Windows [a, b) whose extent covers input position i (padded position t = i + pad)."""
    t = i + pad
    a = (t - k + s) // s if t >= k else 0
    b = min(t // s + 1, out)
    return a, b


@cuda.jit
def _avg_pool_backward_kernel(dy, dx, H, W, OH, OW, kh, kw, sh, sw, ph, pw, inv, zero):
    """Gather form: dx[i, j] = inv * sum of dy over the windows covering (i, j); one write each."""
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        p, ih, iw = _position(e, H, W)
        a, b = _window_range(ih, ph, kh, sh, OH)
        c, d = _window_range(iw, pw, kw, sw, OW)
        base = p * OH * OW
        s = zero
        for oh in range(a, b):
            for ow in range(c, d):
                s += dy[base + oh * OW + ow]
        dx[e] = s * inv


def avg_pool2d(x, kernel, stride, padding):
    """Average pooling of ``x`` (N, C, H, W); zero padding is counted (count_include_pad=True)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)
    y = empty((n, c, oh, ow), x.dtype)
    if y.size:
        t = np.dtype(x.dtype).type
        _avg_pool_kernel[cfg.grid(y.size), cfg.TPB](
            _flat(x), _flat(y), h, w, oh, ow, kh, kw, sh, sw, ph, pw, t(1.0 / (kh * kw)), t(0))
    return y


def avg_pool2d_backward(dy, x_shape, kernel, stride, padding):
    """dx of average pooling; ``dy`` (N, C, OH, OW) matching ``x_shape`` and the window."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    dx = empty((n, c, h, w), dy.dtype)
    if dx.size:
        t = np.dtype(dy.dtype).type
        _avg_pool_backward_kernel[cfg.grid(dx.size), cfg.TPB](
            _flat(dy), _flat(dx), h, w, dy.shape[2], dy.shape[3], kh, kw, sh, sw, ph, pw,
            t(1.0 / (kh * kw)), t(0))
    return dx


# ------------------------------------------------------------------------------ global avg pool

_RT = cfg.REDUCE_TPB


@functools.lru_cache(maxsize=None)
def _plane_mean_kernel(dtype):
    sc = np.dtype(dtype).type

    @cuda.jit
    def plane_mean(x, y, P, HW, inv):
        """y[p] = mean of plane p; one block per plane, block reduction in shared memory."""
        buf = cuda.shared.array(_RT, sc)
        t = cuda.threadIdx.x
        for p in range(cuda.blockIdx.x, P, cuda.gridDim.x):
            s = sc(0)
            for j in range(t, HW, _RT):
                s += x[p * HW + j]
            s = block_sum(buf, s, _RT)
            if t == 0:
                y[p] = s * inv

    return plane_mean


@cuda.jit(device=True)
def _beats(va, ia, vb, ib):
    """Whether (vb, ib) beats (va, ia) as a plane's maximum and its index: NaN beats numbers
    and the later NaN an earlier one (as the scan ``v > m or v != v``), then the larger value,
    then the earlier index (the first maximum). The winner is one element whatever the order
    in which pairs meet, so the result does not depend on the block size."""
    a_nan = va != va
    b_nan = vb != vb
    if a_nan or b_nan:
        return b_nan and (not a_nan or ib > ia)
    return vb > va or (vb == va and ib < ia)


@functools.lru_cache(maxsize=None)
def _plane_max_kernel(dtype):
    sc = np.dtype(dtype).type

    @cuda.jit
    def plane_max(x, y, idx, P, HW, neg_inf):
        """y[p], idx[p] = the first maximum of plane p and its flat index (NaN propagates); one
        block per plane: each thread scans a strided part, a tree in shared memory combines."""
        vals = cuda.shared.array(_RT, sc)
        pos = cuda.shared.array(_RT, np.int64)
        t = cuda.threadIdx.x
        for p in range(cuda.blockIdx.x, P, cuda.gridDim.x):
            m = neg_inf
            i = HW                      # no element yet: loses every tie
            for j in range(t, HW, _RT):
                v = x[p * HW + j]
                if v > m or v != v:
                    m = v
                    i = j
            vals[t] = m
            pos[t] = i
            cuda.syncthreads()
            step = _RT // 2
            while step > 0:
                if t < step and _beats(vals[t], pos[t], vals[t + step], pos[t + step]):
                    vals[t] = vals[t + step]
                    pos[t] = pos[t + step]
                cuda.syncthreads()
                step //= 2
            if t == 0:
                y[p] = vals[0]
                idx[p] = pos[0] if pos[0] < HW else 0   # an all -inf plane: its first element
            cuda.syncthreads()

    return plane_max


def global_max_pool2d(x):
    """(y, indices), both (N, C): the maximum of each H*W plane of ``x`` (N, C, H, W) and its
    flat index; first maximum in scan order, NaN propagates (the CPU kernel's results)."""
    n, c, h, w = x.shape
    y = empty((n, c), x.dtype)
    idx = empty((n, c), np.int64)
    if y.size:
        k = _plane_max_kernel(np.dtype(x.dtype))
        k[min(n * c, cfg.max_blocks()), _RT](_flat(x), _flat(y), _flat(idx), n * c, h * w,
                                             np.dtype(x.dtype).type(-np.inf))
    return y, idx


@cuda.jit
def _plane_fill_kernel(dy, dx, HW, inv):
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        dx[e] = dy[e // HW] * inv


def global_avg_pool2d(x):
    """Mean over H and W of ``x`` (N, C, H, W) -> (N, C)."""
    n, c, h, w = x.shape
    y = empty((n, c), x.dtype)
    if y.size:
        k = _plane_mean_kernel(np.dtype(x.dtype))
        k[min(n * c, cfg.max_blocks()), _RT](_flat(x), _flat(y), n * c, h * w,
                                             np.dtype(x.dtype).type(1.0 / (h * w)))
    return y


def global_avg_pool2d_backward(dy, x_shape):
    """dx of the global mean: dy (N, C) / (H*W) broadcast over each plane."""
    n, c, h, w = x_shape
    dx = empty((n, c, h, w), dy.dtype)
    if dx.size:
        _plane_fill_kernel[cfg.grid(dx.size), cfg.TPB](_flat(dy), _flat(dx), h * w,
                                                      np.dtype(dy.dtype).type(1.0 / (h * w)))
    return dx


# ------------------------------------------------------------------------------ stochastic pool

@functools.lru_cache(maxsize=None)
def _stochastic_train_kernel(dtype):
    sc = np.dtype(dtype).type
    wide = np.dtype(dtype) == np.float64

    @cuda.jit
    def kernel(x, y, idx, H, W, OH, OW, kh, kw, sh, sw, seed):
        """Sample one element per window with probability max(a, 0) / sum(max(a, 0)).

        The draw for output o is uniform(seed, o), with the CPU kernel's arithmetic, so the
        sampled indices agree with it.
        """
        zero = sc(0)
        for o in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            base, h0, w0 = _window(o, H, W, OH, OW, sh, sw, 0, 0)
            s = zero
            for ih in range(h0, h0 + kh):
                for iw in range(w0, w0 + kw):
                    s += max(x[base + ih * W + iw], zero)
            if wide:
                u = uniform_f64(seed, o)
            else:
                u = np.float64(uniform_f32(seed, o))
            t = s * sc(u)
            i = h0 * W + w0
            last = -1
            run = zero
            found = False
            for ih in range(h0, h0 + kh):
                for iw in range(w0, w0 + kw):
                    a = x[base + ih * W + iw]
                    if a > zero and not found:
                        run += a
                        last = ih * W + iw
                        if run > t:
                            i = last
                            found = True
            if not found and last >= 0:
                i = last
            y[o] = max(x[base + i], zero)
            idx[o] = i

    return kernel


@cuda.jit
def _stochastic_eval_kernel(x, y, idx, H, W, OH, OW, kh, kw, sh, sw, zero):
    """Probability-weighted mean sum(w^2)/sum(w), w = max(a, 0) (0 if the sum is 0); idx = argmax."""
    for o in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        base, h0, w0 = _window(o, H, W, OH, OW, sh, sw, 0, 0)
        s = zero
        q = zero
        m = x[base + h0 * W + w0]
        i = h0 * W + w0
        for ih in range(h0, h0 + kh):
            for iw in range(w0, w0 + kw):
                a = x[base + ih * W + iw]
                if a > m:
                    m = a
                    i = ih * W + iw
                a = max(a, zero)
                s += a
                q += a * a
        y[o] = q / s if s > zero else zero
        idx[o] = i


@cuda.jit
def _stochastic_route_kernel(dy, x, idx, dx, OHW, HW, bad, zero):
    """Training backward: dy to the sampled element where it is positive; counts bad indices."""
    for o in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        i = idx[o]
        if i >= 0 and i < HW:
            j = (o // OHW) * HW + i
            if x[j] > zero:
                cuda.atomic.add(dx, j, dy[o])
        else:
            cuda.atomic.add(bad, 0, 1)


@cuda.jit
def _stochastic_eval_backward_kernel(dy, x, dx, H, W, OH, OW, kh, kw, sh, sw, zero, two):
    """Gather form of d/da_j of sum(w^2)/sum(w) = (2 w_j S - Q) / S^2 where a_j > 0."""
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        p, ih, iw = _position(e, H, W)
        a = x[e]
        g = zero
        if a > zero:
            # windows (no padding) covering (ih, iw)
            oa, ob = _window_range(ih, 0, kh, sh, OH)
            oc, od = _window_range(iw, 0, kw, sw, OW)
            base = p * H * W
            for oh in range(oa, ob):
                h0 = oh * sh
                for ow in range(oc, od):
                    w0 = ow * sw
                    s = zero
                    q = zero
                    for jh in range(h0, h0 + kh):
                        for jw in range(w0, w0 + kw):
                            v = max(x[base + jh * W + jw], zero)
                            s += v
                            q += v * v
                    if s > zero:
                        g += dy[(p * OH + oh) * OW + ow] / (s * s) * (two * a * s - q)
        dx[e] = g


def stochastic_pool2d(x, kernel, stride, seed, training):
    """(y, indices) of stochastic pooling (Zeiler & Fergus 2013) on ``x`` (N, C, H, W), no padding.

    Same semantics and random draws as the CPU kernel (the counter of a draw is the flat output
    index), so training-mode indices equal the CPU's for a seed.
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = _out_size(h, kh, sh, 0), _out_size(w, kw, sw, 0)
    y = empty((n, c, oh, ow), x.dtype)
    idx = empty((n, c, oh, ow), np.int64)
    if y.size:
        zero = np.dtype(x.dtype).type(0)
        if training:
            _stochastic_train_kernel(np.dtype(x.dtype))[cfg.grid(y.size), cfg.TPB](
                _flat(x), _flat(y), _flat(idx), h, w, oh, ow, kh, kw, sh, sw, np.uint64(seed))
        else:
            _stochastic_eval_kernel[cfg.grid(y.size), cfg.TPB](
                _flat(x), _flat(y), _flat(idx), h, w, oh, ow, kh, kw, sh, sw, zero)
    return y, idx


def stochastic_pool2d_backward(dy, x, indices, kernel, stride, training):
    """dx of stochastic pooling: training routes dy to the sampled (positive) element; evaluation
    is the exact derivative of the weighted mean. ``dy``/``indices`` (N, C, OH, OW), ``x`` input."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    zero = np.dtype(dy.dtype).type(0)
    if training:
        dx = zeros((n, c, h, w), dy.dtype)
        if dx.size and dy.size:
            bad = zeros(1, np.int64)
            _stochastic_route_kernel[cfg.grid(dy.size), cfg.TPB](
                _flat(dy), _flat(x), _flat(indices), _flat(dx), dy.shape[2] * dy.shape[3], h * w,
                bad, zero)
            _check_routed(bad, h * w)
        return dx
    dx = empty((n, c, h, w), dy.dtype)
    if dx.size:
        _stochastic_eval_backward_kernel[cfg.grid(dx.size), cfg.TPB](
            _flat(dy), _flat(x), _flat(dx), h, w, dy.shape[2], dy.shape[3], kh, kw, sh, sw, zero,
            np.dtype(dy.dtype).type(2))
    return dx
