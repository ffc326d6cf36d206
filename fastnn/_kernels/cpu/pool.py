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
    global_max_pool2d(x) -> (y, indices) (N, C)   (its gradient: max_pool2d_backward)
    stochastic_pool2d(x, kernel, stride, seed, training) -> (y, indices)
    stochastic_pool2d_backward(dy, x, indices, kernel, stride, training) -> dx
"""
import numpy as np
from numba import prange

from ._jit import bind, jit, pjit
from ._random import uniform_f32, uniform_f64
from ._workspace import empty


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _planes(a):
    n, c, h, w = a.shape
    return a.reshape(n * c, h, w)


# ------------------------------------------------------------------------ max and average pool
# Window rules: each writes output (p, oh, ow) of plane p, and its flat plane index if it has one
# (the others get a dummy ``idx``), from the window rows [hs, he) and columns [ws, we) or, for
# the 2x2 rules, the window at row r0 and column c0. One loop body per window shape
# (``_windows``, ``_pairs``) is compiled for each rule; ``arg`` is the rule's parameter.

@jit(inline="always")
def _first_max(v, j, m, i):
    """(v, j) if v is above the running maximum m or NaN (NaN wins, as in PyTorch), else (m, i)."""
    if (v > m) | (v != v):
        return v, j
    return m, i


@jit(inline="always")
def _max_window(x, y, idx, p, oh, ow, hs, he, ws, we, neg_inf):
    """-inf padding, first maximum in scan order, NaN propagates (as PyTorch)."""
    W = x.shape[2]
    m = neg_inf
    i = hs * W + ws
    for ih in range(hs, he):
        for iw in range(ws, we):
            m, i = _first_max(x[p, ih, iw], ih * W + iw, m, i)
    y[p, oh, ow] = m
    idx[p, oh, ow] = i


@jit(inline="always")
def _avg_window(x, y, idx, p, oh, ow, hs, he, ws, we, inv):
    """Sum of the in-bounds window times ``inv`` = 1/(kh*kw) (zero padding counted)."""
    s = x.dtype.type(0)
    for ih in range(hs, he):
        for iw in range(ws, we):
            s += x[p, ih, iw]
    y[p, oh, ow] = s * inv


# Names that each compiled copy of a body below binds to its own function or constant
# (``_jit.bind`` / ``specialise``); declared here so that a reader finds them.
window = keep = None


def _windows(x, y, idx, kh, kw, sh, sw, ph, pw, arg):
    """window(..., arg) for every output of every plane (``window``: bound per kernel)."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0 = oh * sh - ph
            hs = max(h0, 0)
            he = min(h0 + kh, H)
            for ow in range(OW):
                w0 = ow * sw - pw
                window(x, y, idx, p, oh, ow, hs, he, max(w0, 0), min(w0 + kw, W), arg)


@jit(inline="always")
def _max_pair(x, y, idx, p, oh, ow, r0, c0, arg):
    """2x2 window: four loads, first maximum (NaN wins)."""
    W = x.shape[2]
    r1 = r0 + 1
    c1 = c0 + 1
    m, i = _first_max(x[p, r0, c1], r0 * W + c1, x[p, r0, c0], r0 * W + c0)
    m, i = _first_max(x[p, r1, c0], r1 * W + c0, m, i)
    m, i = _first_max(x[p, r1, c1], r1 * W + c1, m, i)
    y[p, oh, ow] = m
    idx[p, oh, ow] = i


@jit(inline="always")
def _avg_pair(x, y, idx, p, oh, ow, r0, c0, quarter):
    r1 = r0 + 1
    c1 = c0 + 1
    y[p, oh, ow] = ((x[p, r0, c0] + x[p, r0, c1]) + (x[p, r1, c0] + x[p, r1, c1])) * quarter


def _pairs(x, y, idx, arg):
    """window(..., arg) for 2x2 windows of stride 2, no padding (``window``: bound per kernel)."""
    P = x.shape[0]
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            for ow in range(OW):
                window(x, y, idx, p, oh, ow, 2 * oh, 2 * ow, arg)


_max_pool = pjit(bind(_windows, "_max_pool", window=_max_window))
_max_pool_k2s2 = pjit(bind(_pairs, "_max_pool_k2s2", window=_max_pair))
_avg_pool = pjit(bind(_windows, "_avg_pool", window=_avg_window))
_avg_pool_k2s2 = pjit(bind(_pairs, "_avg_pool_k2s2", window=_avg_pair))
_NO_INDEX = np.zeros((1, 1, 1), dtype=np.int64)  # ``idx`` of the rules that write none


@jit(inline="always")
def _always(x, p, i):
    return True


@jit(inline="always")
def _positive(x, p, i):
    W = x.shape[2]
    return x[p, i // W, i % W] > x.dtype.type(0)


def _route_planes(dy, x, idx, dx):
    """dx[plane][idx] += dy per plane where ``keep(x, plane, idx)`` (``keep``: bound per kernel);
    returns the count of indices outside the plane (skipped)."""
    P, OH, OW = dy.shape
    HW = dx.shape[1]
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
                    if keep(x, p, i):
                        dx[p, i] += dy[p, oh, ow]
                else:
                    nbad += 1
        bad += nbad
    return bad


_route = pjit(bind(_route_planes, "_route", keep=_always))
_stochastic_route = pjit(bind(_route_planes, "_stochastic_route", keep=_positive))


def _pool(x, kernel, stride, padding, general, pair, arg, indices):
    """Pooling of ``x`` (N, C, H, W) by the bound kernels ``general`` and ``pair`` (2x2 windows of
    stride 2 without padding, when not None): y, and with ``indices`` (y, int64 flat plane
    indices)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)
    y = empty((n, c, oh, ow), dtype=x.dtype)
    idx = empty((n, c, oh, ow), dtype=np.int64) if indices else None
    if y.size:
        i3 = _planes(idx) if indices else _NO_INDEX
        if pair is not None and (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0):
            pair(_planes(x), _planes(y), i3, arg)
        else:
            general(_planes(x), _planes(y), i3, kh, kw, sh, sw, ph, pw, arg)
    return (y, idx) if indices else y


def _check_routed(bad, plane):
    if bad:
        raise ValueError(f"indices must lie in [0, {plane}) (flat positions in an H*W plane); "
                         f"{bad} do not")


def max_pool2d(x, kernel, stride, padding):
    """(y, indices) of max pooling; ``x`` (N, C, H, W), -inf padding, int64 flat plane indices."""
    return _pool(x, kernel, stride, padding, _max_pool, _max_pool_k2s2, x.dtype.type(-np.inf),
                 True)


def global_max_pool2d(x):
    """(y, indices), both (N, C): the maximum of each H*W plane of ``x`` (N, C, H, W) and its
    flat index; first maximum in scan order, NaN propagates (one window per plane)."""
    n, c, h, w = x.shape
    y, idx = _pool(x, (h, w), (h, w), (0, 0), _max_pool, None, x.dtype.type(-np.inf), True)
    return y.reshape(n, c), idx.reshape(n, c)


def max_pool2d_backward(dy, indices, x_shape):
    """dx of max pooling: each dy routed to its flat plane index (summed where windows share one).

    ``dy`` and ``indices`` (N, C, OH, OW); ``x_shape`` a 4-tuple. Raises ValueError if an index
    lies outside the H*W plane (checked while routing; no out-of-bounds write happens).
    """
    n, c, h, w = x_shape
    dx = empty((n * c, h * w), dtype=dy.dtype)
    if dx.size:
        _check_routed(_route(_planes(dy), _planes(dy), _planes(indices), dx), h * w)
    return dx.reshape(n, c, h, w)


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
    inv = x.dtype.type(1.0 / (kernel[0] * kernel[1]))
    return _pool(x, kernel, stride, padding, _avg_pool, _avg_pool_k2s2, inv, False)


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

@jit(inline="always")
def _sample_window(x, y, idx, p, oh, ow, hs, he, ws, we, arg):
    """Sample one element per window with probability max(a, 0) / sum(max(a, 0)).

    Draw u = uniform(seed, flat output index) (float32 or float64 as the input, ``wide``; ``arg``
    is (seed, wide)), set t = u * S, and take the first element whose running sum of weights
    exceeds t (the last positive element if rounding leaves none). A window with S = 0 takes its
    first element; y = max(a_i, 0).
    """
    seed, wide = arg
    W = x.shape[2]
    OH, OW = y.shape[1], y.shape[2]
    zero = x.dtype.type(0)
    s = zero
    for ih in range(hs, he):
        for iw in range(ws, we):
            s += max(x[p, ih, iw], zero)
    counter = np.int64(p) * OH * OW + oh * OW + ow
    if wide:
        u = uniform_f64(seed, counter)
    else:
        u = np.float64(uniform_f32(seed, counter))
    t = s * x.dtype.type(u)
    i = hs * W + ws
    last = -1
    run = zero
    found = False
    for ih in range(hs, he):
        for iw in range(ws, we):
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


@jit(inline="always")
def _weighted_window(x, y, idx, p, oh, ow, hs, he, ws, we, arg):
    """Probability-weighted mean sum(w^2)/sum(w), w = max(a, 0) (0 if the sum is 0); idx = argmax."""
    W = x.shape[2]
    zero = x.dtype.type(0)
    s = zero
    q = zero
    m = x[p, hs, ws]
    i = hs * W + ws
    for ih in range(hs, he):
        for iw in range(ws, we):
            a = x[p, ih, iw]
            if a > m:
                m = a
                i = ih * W + iw
            a = max(a, zero)
            s += a
            q += a * a
    y[p, oh, ow] = q / s if s > zero else zero
    idx[p, oh, ow] = i


# no padding: the windows lie inside the plane
_stochastic_train = pjit(bind(_windows, "_stochastic_train", window=_sample_window))
_stochastic_eval = pjit(bind(_windows, "_stochastic_eval", window=_weighted_window))


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
    if training:
        run, arg = _stochastic_train, (np.uint64(seed), bool(x.dtype == np.float64))
    else:
        run, arg = _stochastic_eval, x.dtype.type(0)
    return _pool(x, kernel, stride, (0, 0), run, None, arg, True)


def stochastic_pool2d_backward(dy, x, indices, kernel, stride, training):
    """dx of stochastic pooling: training routes dy to the sampled (positive) element; evaluation
    is the exact derivative of the weighted mean. ``dy``/``indices`` (N, C, OH, OW), ``x`` input."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    dx = empty((n * c, h * w), dtype=dy.dtype)
    if dx.size:
        if training:
            _check_routed(_stochastic_route(_planes(dy), _planes(x), _planes(indices), dx), h * w)
        else:
            _stochastic_eval_backward(_planes(dy), _planes(x), dx.reshape(n * c, h, w),
                                      kh, kw, sh, sw)
    return dx.reshape(n, c, h, w)
