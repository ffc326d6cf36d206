"""Pooling kernels on the CPU (Numba): max, average, global average and stochastic pooling.

Host functions take validated, C-contiguous float arrays ``x`` of shape (N, C, H, W) and window
arguments as normalised int pairs ``kernel=(kh, kw)``, ``stride=(sh, sw)``, ``padding=(ph, pw)``;
the CUDA twin (``fastnn._kernels.cuda.pool``) has the same names and signatures. Every kernel runs
one ``prange`` over the N*C planes, so a plane is read and written by one thread (scatter-adds
inside a plane are race-free). Indices are flat positions in an H*W plane (int64), as PyTorch's
``return_indices=True``. 1-D pooling reuses these functions on a height-1 view.

Host functions (the CUDA twin mirrors them):
    max_pool2d(x, kernel, stride, padding) -> (y, indices)
    max_pool2d_backward(dy, indices, x_shape) -> dx          (ValueError if an index is out of plane)
    avg_pool2d(x, kernel, stride, padding) -> y
    avg_pool2d_backward(dy, x_shape, kernel, stride, padding) -> dx
    global_avg_pool2d(x) -> y (N, C);  global_avg_pool2d_backward(dy, x_shape) -> dx
    stochastic_pool2d(x, kernel, stride, seed, training) -> (y, indices)
    stochastic_pool2d_backward(dy, x, indices, kernel, stride, training) -> dx
"""
import numpy as np
from numba import prange

from ._jit import jit, pjit
from ._random import uniform_f32, uniform_f64
from ._workspace import empty


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _planes(a):
    n, c, h, w = a.shape
    return a.reshape(n * c, h, w)


# ------------------------------------------------------------------------------------- max pool

@pjit
def _max_pool_k2s2(x, y, idx):
    """2x2 windows, stride 2, no padding: four loads per output, first maximum (NaN wins)."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            r0 = 2 * oh
            r1 = r0 + 1
            for ow in range(OW):
                c0 = 2 * ow
                c1 = c0 + 1
                m = x[p, r0, c0]
                i = r0 * W + c0
                v = x[p, r0, c1]
                if (v > m) | (v != v):
                    m = v
                    i = r0 * W + c1
                v = x[p, r1, c0]
                if (v > m) | (v != v):
                    m = v
                    i = r1 * W + c0
                v = x[p, r1, c1]
                if (v > m) | (v != v):
                    m = v
                    i = r1 * W + c1
                y[p, oh, ow] = m
                idx[p, oh, ow] = i


@pjit
def _max_pool(x, y, idx, kh, kw, sh, sw, ph, pw, neg_inf):
    """Any window: -inf padding, first maximum in scan order, NaN propagates (as PyTorch)."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0 = oh * sh - ph
            hs = max(h0, 0)
            he = min(h0 + kh, H)
            for ow in range(OW):
                w0 = ow * sw - pw
                ws = max(w0, 0)
                we = min(w0 + kw, W)
                m = neg_inf
                i = hs * W + ws
                for ih in range(hs, he):
                    for iw in range(ws, we):
                        v = x[p, ih, iw]
                        if (v > m) | (v != v):
                            m = v
                            i = ih * W + iw
                y[p, oh, ow] = m
                idx[p, oh, ow] = i


@pjit
def _route(dy, idx, dx):
    """dx[plane][idx] += dy per plane; returns the count of indices outside the plane (skipped)."""
    P, OH, OW = dy.shape
    HW = dx.shape[1]
    zero = dx.dtype.type(0)
    bad = 0
    for p in prange(P):
        for j in range(HW):
            dx[p, j] = zero
        nbad = 0
        for oh in range(OH):
            for ow in range(OW):
                i = idx[p, oh, ow]
                if (i >= 0) & (i < HW):
                    dx[p, i] += dy[p, oh, ow]
                else:
                    nbad += 1
        bad += nbad
    return bad


def max_pool2d(x, kernel, stride, padding):
    """(y, indices) of max pooling; ``x`` (N, C, H, W), -inf padding, int64 flat plane indices."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)
    y = empty((n, c, oh, ow), dtype=x.dtype)
    idx = empty((n, c, oh, ow), dtype=np.int64)
    if y.size:
        if (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0):
            _max_pool_k2s2(_planes(x), _planes(y), _planes(idx))
        else:
            _max_pool(_planes(x), _planes(y), _planes(idx), kh, kw, sh, sw, ph, pw,
                      x.dtype.type(-np.inf))
    return y, idx


def max_pool2d_backward(dy, indices, x_shape):
    """dx of max pooling: each dy routed to its flat plane index (summed where windows share one).

    ``dy`` and ``indices`` (N, C, OH, OW); ``x_shape`` a 4-tuple. Raises ValueError if an index
    lies outside the H*W plane (checked while routing; no out-of-bounds write happens).
    """
    n, c, h, w = x_shape
    dx = empty((n * c, h * w), dtype=dy.dtype)
    if dx.size:
        bad = _route(_planes(dy), _planes(indices), dx)
        if bad:
            raise ValueError(f"indices must lie in [0, {h * w}) (flat positions in an H*W plane); "
                             f"{bad} do not")
    return dx.reshape(n, c, h, w)


# ------------------------------------------------------------------------------------- avg pool

@pjit
def _avg_pool_k2s2(x, y, quarter):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            r0 = 2 * oh
            r1 = r0 + 1
            for ow in range(OW):
                c0 = 2 * ow
                c1 = c0 + 1
                y[p, oh, ow] = ((x[p, r0, c0] + x[p, r0, c1]) + (x[p, r1, c0] + x[p, r1, c1])) * quarter


@pjit
def _avg_pool(x, y, kh, kw, sh, sw, ph, pw, inv):
    """Sum of the in-bounds window times ``inv`` = 1/(kh*kw) (zero padding counted)."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    zero = x.dtype.type(0)
    for p in prange(P):
        for oh in range(OH):
            h0 = oh * sh - ph
            hs = max(h0, 0)
            he = min(h0 + kh, H)
            for ow in range(OW):
                w0 = ow * sw - pw
                ws = max(w0, 0)
                we = min(w0 + kw, W)
                s = zero
                for ih in range(hs, he):
                    for iw in range(ws, we):
                        s += x[p, ih, iw]
                y[p, oh, ow] = s * inv


@jit
def _window_ranges(size, out, k, s, pad):
    """For each input position i: the first and one-past-last window whose extent covers i."""
    lo = np.empty(size, dtype=np.int64)
    hi = np.empty(size, dtype=np.int64)
    for i in range(size):
        t = i + pad                    # position in the padded input
        a = (t - k + s) // s if t >= k else 0   # first o with o*s + k > t
        b = t // s + 1                 # one past the last o with o*s <= t
        lo[i] = a
        hi[i] = min(b, out)
    return lo, hi


@pjit
def _avg_pool_backward(dy, dx, hlo, hhi, wlo, whi, inv):
    """Gather form: dx[i, j] = inv * sum of dy over the windows covering (i, j); one write each."""
    P, OH, OW = dy.shape
    H, W = dx.shape[1], dx.shape[2]
    zero = dx.dtype.type(0)
    for p in prange(P):
        for ih in range(H):
            a, b = hlo[ih], hhi[ih]
            for iw in range(W):
                s = zero
                for oh in range(a, b):
                    for ow in range(wlo[iw], whi[iw]):
                        s += dy[p, oh, ow]
                dx[p, ih, iw] = s * inv


def avg_pool2d(x, kernel, stride, padding):
    """Average pooling of ``x`` (N, C, H, W); zero padding is counted (count_include_pad=True)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)
    y = empty((n, c, oh, ow), dtype=x.dtype)
    if y.size:
        if (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0):
            _avg_pool_k2s2(_planes(x), _planes(y), x.dtype.type(0.25))
        else:
            _avg_pool(_planes(x), _planes(y), kh, kw, sh, sw, ph, pw, x.dtype.type(1.0 / (kh * kw)))
    return y


def avg_pool2d_backward(dy, x_shape, kernel, stride, padding):
    """dx of average pooling; ``dy`` (N, C, OH, OW) matching ``x_shape`` and the window."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    dx = empty((n, c, h, w), dtype=dy.dtype)
    if dx.size:
        hlo, hhi = _window_ranges(h, dy.shape[2], kh, sh, ph)
        wlo, whi = _window_ranges(w, dy.shape[3], kw, sw, pw)
        _avg_pool_backward(_planes(dy), _planes(dx), hlo, hhi, wlo, whi,
                           dy.dtype.type(1.0 / (kh * kw)))
    return dx


# ------------------------------------------------------------------------------ global avg pool

@pjit
def _plane_mean(x, y, inv):
    P, HW = x.shape
    zero = x.dtype.type(0)
    for p in prange(P):
        s = zero
        for j in range(HW):
            s += x[p, j]
        y[p] = s * inv


@pjit
def _plane_fill(dy, dx, inv):
    P, HW = dx.shape
    for p in prange(P):
        g = dy[p] * inv
        for j in range(HW):
            dx[p, j] = g


def global_avg_pool2d(x):
    """Mean over H and W of ``x`` (N, C, H, W) -> (N, C)."""
    n, c, h, w = x.shape
    y = empty(n * c, dtype=x.dtype)
    if y.size:
        _plane_mean(x.reshape(n * c, h * w), y, x.dtype.type(1.0 / (h * w)))
    return y.reshape(n, c)


def global_avg_pool2d_backward(dy, x_shape):
    """dx of the global mean: dy (N, C) / (H*W) broadcast over each plane."""
    n, c, h, w = x_shape
    dx = empty((n * c, h * w), dtype=dy.dtype)
    if dx.size:
        _plane_fill(dy.reshape(n * c), dx, dy.dtype.type(1.0 / (h * w)))
    return dx.reshape(n, c, h, w)


# ------------------------------------------------------------------------------ stochastic pool

@pjit
def _stochastic_train(x, y, idx, kh, kw, sh, sw, seed, wide):
    """Sample one element per window with probability max(a, 0) / sum(max(a, 0)).

    Draw u = uniform(seed, flat output index) (float32 or float64 as the input, ``wide``), set
    t = u * S, and take the first element whose running sum of weights exceeds t (the last positive
    element if rounding leaves none). A window with S = 0 takes its first element; y = max(a_i, 0).
    """
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        zero = x.dtype.type(0)
        base = np.int64(p) * OH * OW
        for oh in range(OH):
            h0 = oh * sh
            for ow in range(OW):
                w0 = ow * sw
                s = zero
                for ih in range(h0, h0 + kh):
                    for iw in range(w0, w0 + kw):
                        s += max(x[p, ih, iw], zero)
                counter = base + oh * OW + ow
                if wide:
                    u = uniform_f64(seed, counter)
                else:
                    u = np.float64(uniform_f32(seed, counter))
                t = s * x.dtype.type(u)
                i = h0 * W + w0
                last = -1
                run = zero
                found = False
                for ih in range(h0, h0 + kh):
                    for iw in range(w0, w0 + kw):
                        a = x[p, ih, iw]
                        if (a > zero) & (not found):
                            run += a
                            last = ih * W + iw
                            if run > t:
                                i = last
                                found = True
                if (not found) & (last >= 0):
                    i = last
                y[p, oh, ow] = max(x[p, i // W, i % W], zero)
                idx[p, oh, ow] = i


@pjit
def _stochastic_eval(x, y, idx, kh, kw, sh, sw):
    """Probability-weighted mean sum(w^2)/sum(w), w = max(a, 0) (0 if the sum is 0); idx = argmax."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        zero = x.dtype.type(0)
        for oh in range(OH):
            h0 = oh * sh
            for ow in range(OW):
                w0 = ow * sw
                s = zero
                q = zero
                m = x[p, h0, w0]
                i = h0 * W + w0
                for ih in range(h0, h0 + kh):
                    for iw in range(w0, w0 + kw):
                        a = x[p, ih, iw]
                        if a > m:
                            m = a
                            i = ih * W + iw
                        a = max(a, zero)
                        s += a
                        q += a * a
                y[p, oh, ow] = q / s if s > zero else zero
                idx[p, oh, ow] = i


@pjit
def _stochastic_route(dy, x, idx, dx):
    """Training backward: dy to the sampled element where it is positive; counts bad indices."""
    P, OH, OW = dy.shape
    HW = dx.shape[1]
    W = x.shape[2]
    bad = 0
    for p in prange(P):
        zero = dx.dtype.type(0)
        for j in range(HW):
            dx[p, j] = zero
        nbad = 0
        for oh in range(OH):
            for ow in range(OW):
                i = idx[p, oh, ow]
                if (i >= 0) & (i < HW):
                    if x[p, i // W, i % W] > zero:
                        dx[p, i] += dy[p, oh, ow]
                else:
                    nbad += 1
        bad += nbad
    return bad


@pjit
def _stochastic_eval_backward(dy, x, dx, kh, kw, sh, sw):
    """d/da_j of sum(w^2)/sum(w) = (2 w_j S - Q) / S^2 where a_j > 0 (0 elsewhere and if S = 0)."""
    P, OH, OW = dy.shape
    H, W = x.shape[1], x.shape[2]
    for p in prange(P):
        zero = dx.dtype.type(0)
        two = dx.dtype.type(2)
        for ih in range(H):
            for iw in range(W):
                dx[p, ih, iw] = zero
        for oh in range(OH):
            h0 = oh * sh
            for ow in range(OW):
                w0 = ow * sw
                s = zero
                q = zero
                for ih in range(h0, h0 + kh):
                    for iw in range(w0, w0 + kw):
                        a = max(x[p, ih, iw], zero)
                        s += a
                        q += a * a
                if s > zero:
                    g = dy[p, oh, ow] / (s * s)
                    for ih in range(h0, h0 + kh):
                        for iw in range(w0, w0 + kw):
                            a = x[p, ih, iw]
                            if a > zero:
                                dx[p, ih, iw] += g * (two * a * s - q)


def stochastic_pool2d(x, kernel, stride, seed, training):
    """(y, indices) of stochastic pooling (Zeiler & Fergus 2013) on ``x`` (N, C, H, W), no padding.

    Negative activations weigh 0 (the method expects ReLU outputs). Training: one element per
    window sampled with probability proportional to its weight, y = its weight, the counter of the
    draw is the flat output index (results do not depend on the thread count); a window of zero
    weight yields 0 and its first element. Evaluation: y = sum(w^2) / sum(w), indices = the window's
    first maximum. ``seed`` is an int in [0, 2**64).
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = _out_size(h, kh, sh, 0), _out_size(w, kw, sw, 0)
    y = empty((n, c, oh, ow), dtype=x.dtype)
    idx = empty((n, c, oh, ow), dtype=np.int64)
    if y.size:
        if training:
            _stochastic_train(_planes(x), _planes(y), _planes(idx), kh, kw, sh, sw,
                              np.uint64(seed), x.dtype == np.float64)
        else:
            _stochastic_eval(_planes(x), _planes(y), _planes(idx), kh, kw, sh, sw)
    return y, idx


def stochastic_pool2d_backward(dy, x, indices, kernel, stride, training):
    """dx of stochastic pooling: training routes dy to the sampled (positive) element; evaluation
    is the exact derivative of the weighted mean. ``dy``/``indices`` (N, C, OH, OW), ``x`` input."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    dx = empty((n * c, h * w), dtype=dy.dtype)
    if dx.size:
        if training:
            bad = _stochastic_route(_planes(dy), _planes(x), _planes(indices), dx)
            if bad:
                raise ValueError(f"indices must lie in [0, {h * w}) (flat positions in an H*W "
                                 f"plane); {bad} do not")
        else:
            _stochastic_eval_backward(_planes(dy), _planes(x), dx.reshape(n * c, h, w),
                                      kh, kw, sh, sw)
    return dx.reshape(n, c, h, w)
