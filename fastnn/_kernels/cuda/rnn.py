"""Recurrent cells (CUDA): SimpleRNN (Elman), LSTM and GRU with PyTorch's equations, batch first.

Host functions mirror ``fastnn._kernels.cpu.rnn`` (same names, signatures and results) on
C-contiguous device arrays of one float dtype: ``x`` (N, T, F), ``w_ih`` (G*H, F), ``w_hh``
(G*H, H), biases (G*H,), gates stacked in PyTorch's order (LSTM i, f, g, o; GRU r, z, n;
G = 1, 4, 3). ``*_forward`` returns ``(y, cache)`` with ``y`` the last hidden state (N, H), or
every one (N, T, H) with ``return_sequences``; ``*_backward(dy, cache)`` takes that cache (an
``RNNCache`` here, not the CPU's tuple) and returns ``dx`` and the parameter gradients in argument
order. The initial state is zero.

Work per sequence:

- forward: one GEMM projects every step's input at once, ``x.reshape(N*T, F) @ w_ih.T`` with the
  bias fused into its store (GRU: ``b_ih``), rows in batch-first order ``n*T + t``. Each step then
  runs one GEMM ``h_{t-1} @ w_hh.T`` (GRU: ``+ b_hh`` fused; none at t = 0, where h is zero) and
  one fused gate kernel over the N*H cells: nonlinearities, cell and hidden update, and the
  stores backward needs (gate activations over the projections, the cell states, the previous
  hidden states ``hp[n, t] = h_{t-1}``, GRU's ``W_hn h + b_hn``), and the output.
- backward (BPTT): per step, one fused gate-backward kernel writes the pre-activation gradients
  into the all-steps buffer (N*T, G) and a contiguous (N, G) copy for the step, then one GEMM
  ``dg_t @ w_hh`` gives dh_{t-1}. At the end: ``dx = dg @ w_ih`` (one GEMM), ``dw_ih = dg.T @ x``,
  ``dw_hh = dg_h.T @ hp`` (one GEMM each over all steps; ``hp[:, 0] = 0`` drops step 0) and the
  bias sums (column sums).

Constants reach kernels as arguments of the array dtype, so float32 kernels compute in float32.
"""
import math

import numpy as np
from numba import cuda

from . import _config as cfg
from ._gemm import matmul
from ._util import empty, flat
from .linear import column_sum


class RNNCache:
    """What a forward pass keeps for its backward pass (device arrays and sizes)."""

    __slots__ = ("cell", "shape", "x2", "w_ih", "w_hh", "gates", "hp", "h", "cs", "hn", "relu",
                 "return_sequences")

    def __init__(self, cell, shape, x2, w_ih, w_hh, gates, hp, h, return_sequences, cs=None,
                 hn=None, relu=False):
        self.cell = cell
        self.shape = shape              # (N, T, F, H)
        self.x2 = x2                    # (N*T, F) view of the input
        self.w_ih = w_ih
        self.w_hh = w_hh
        self.gates = gates              # (N*T, G): projections, then gate activations (LSTM, GRU)
        self.hp = hp                    # (N*T, H): h_{t-1} at row n*T + t (zero at t = 0)
        self.h = h                      # (N, H): the last hidden state
        self.cs = cs                    # LSTM (N*T, H): c_t
        self.hn = hn                    # GRU (N*T, H): W_hn h_{t-1} + b_hn
        self.relu = relu
        self.return_sequences = return_sequences


def _launch(kernel, n, *args):
    """One grid-stride launch over n cells (the 1-D views are made once per call, outside the
    step loops: building a device-array view costs host time on hardware)."""
    kernel[cfg.grid(n), cfg.TPB](*args)


@cuda.jit(device=True)
def _sigmoid(v, one):
    return one / (one + math.exp(-v))


@cuda.jit(device=True)
def _cell(i, H, T, t):
    """The cell a thread's index names: (sequence n, unit j, all-steps row n*T + t)."""
    n = i // H
    j = i - n * H
    return n, j, n * T + t


@cuda.jit(device=True)
def _incoming(start, dh_rec, dy, i, n, j, H, has_rec, has_dy, dys, dyt):
    """start + dh_{t} from the later step (dh_rec) + the output's gradient at step t (dy)."""
    d = start
    if has_rec:
        d += dh_rec[i]
    if has_dy:
        d += dy[n * dys + dyt * H + j]
    return d


@cuda.jit(device=True)
def _gates3(a, r, H):
    return a[r], a[r + H], a[r + 2 * H]


@cuda.jit(device=True)
def _gates4(a, r, H):
    return a[r], a[r + H], a[r + 2 * H], a[r + 3 * H]


@cuda.jit(device=True)
def _put3(a, r, H, v0, v1, v2):
    a[r] = v0
    a[r + H] = v1
    a[r + 2 * H] = v2


@cuda.jit(device=True)
def _put4(a, r, H, v0, v1, v2, v3):
    _put3(a, r, H, v0, v1, v2)
    a[r + 3 * H] = v3


@cuda.jit(device=True)
def _store_hidden(h, hp, y, i, row, n, j, t, T, H, out, wy, ys, yt, zero):
    """Every cell's last stores: h_t, the previous-state rows backward reads (zero at t = 0,
    h_t for step t + 1) and, when asked, the output."""
    h[i] = out
    if t == 0:
        hp[row * H + j] = zero
    if t + 1 < T:
        hp[(row + 1) * H + j] = out
    if wy:
        y[n * ys + yt * H + j] = out


# ------------------------------------------------------------------------------- SimpleRNN

@cuda.jit
def _rnn_fwd_kernel(xw, hw, h, hp, y, N, T, H, t, has_h, ys, yt, wy, relu, zero, one):
    """h = act(xw[n*T+t] + hw) over the (N, H) cells; also hp[n, t+1] and the output."""
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j, row = _cell(i, H, T, t)
        v = xw[row * H + j]
        if has_h:
            v += hw[i]
        if relu:
            out = zero if v < zero else v  # NaN propagates, as torch.relu
        else:
            out = math.tanh(v)
        _store_hidden(h, hp, y, i, row, n, j, t, T, H, out, wy, ys, yt, zero)


@cuda.jit
def _rnn_bwd_kernel(h, hp, dh_rec, dy, dg, dgs, N, T, H, t, has_rec, has_dy, dys, dyt, relu,
                    zero, one):
    """dpre = (dh_rec + dy) * act'(pre), act' read from the output h_t."""
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j, row = _cell(i, H, T, t)
        d = _incoming(zero, dh_rec, dy, i, n, j, H, has_rec, has_dy, dys, dyt)
        hv = hp[(row + 1) * H + j] if t + 1 < T else h[i]
        if relu:
            g = d if hv > zero else zero
        else:
            g = d * (one - hv * hv)
        dg[row * H + j] = g
        dgs[i] = g


# ------------------------------------------------------------------------------------ LSTM

@cuda.jit
def _lstm_fwd_kernel(g, hw, h, hp, y, cs, N, T, H, t, has_h, ys, yt, wy, zero, one):
    """Gates (i, f, g, o) from g[n*T+t] (+ hw), written back into g; new c and h."""
    G = 4 * H
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j, row = _cell(i, H, T, t)
        r = row * G + j
        a0, a1, a2, a3 = _gates4(g, r, H)
        if has_h:
            b0, b1, b2, b3 = _gates4(hw, n * G + j, H)
            a0 += b0
            a1 += b1
            a2 += b2
            a3 += b3
        ig = _sigmoid(a0, one)
        fg = _sigmoid(a1, one)
        gg = math.tanh(a2)
        og = _sigmoid(a3, one)
        cp = cs[(row - 1) * H + j] if t > 0 else zero
        cv = fg * cp + ig * gg
        _put4(g, r, H, ig, fg, gg, og)
        cs[row * H + j] = cv
        out = og * math.tanh(cv)
        _store_hidden(h, hp, y, i, row, n, j, t, T, H, out, wy, ys, yt, zero)


@cuda.jit
def _lstm_bwd_kernel(g, cs, dh_rec, dy, dc, dg, dgs, N, T, H, t, has_rec, has_dy, dys, dyt,
                     zero, one):
    """Pre-activation gradients from dh = dh_rec + dy and the carried dc (becomes dc_{t-1})."""
    G = 4 * H
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j, row = _cell(i, H, T, t)
        r = row * G + j
        ig, fg, gg, og = _gates4(g, r, H)
        cv = cs[row * H + j]
        cp = cs[(row - 1) * H + j] if t > 0 else zero
        tc = math.tanh(cv)
        dh = _incoming(zero, dh_rec, dy, i, n, j, H, has_rec, has_dy, dys, dyt)
        dcv = dc[i] if has_rec else zero
        dct = dcv + dh * og * (one - tc * tc)
        d0 = dct * gg * ig * (one - ig)
        d1 = dct * cp * fg * (one - fg)
        d2 = dct * ig * (one - gg * gg)
        d3 = dh * tc * og * (one - og)
        _put4(dg, r, H, d0, d1, d2, d3)
        _put4(dgs, n * G + j, H, d0, d1, d2, d3)
        dc[i] = dct * fg


# ------------------------------------------------------------------------------------- GRU

@cuda.jit
def _gru_fwd_kernel(g, hw, h, hp, y, hn, b_hh, N, T, H, t, has_h, ys, yt, wy, zero, one):
    """r, z, n from g[n*T+t] = x W_ih^T + b_ih and hw = h W_hh^T + b_hh (b_hh alone at t = 0).

    As PyTorch: n = tanh(x_n + r * (W_hn h + b_hn)); h = (1 - z) * n + z * h_prev. g is
    overwritten with (r, z, n); hn keeps W_hn h + b_hn for the backward pass.
    """
    G = 3 * H
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j, row = _cell(i, H, T, t)
        r = row * G + j
        if has_h:
            h0, h1, h2 = _gates3(hw, n * G + j, H)
            hprev = h[i]
        else:
            h0, h1, h2 = _gates3(b_hh, j, H)
            hprev = zero
        x0, x1, x2 = _gates3(g, r, H)
        rg = _sigmoid(x0 + h0, one)
        zg = _sigmoid(x1 + h1, one)
        nv = math.tanh(x2 + rg * h2)
        _put3(g, r, H, rg, zg, nv)
        hn[row * H + j] = h2
        out = nv + zg * (hprev - nv)
        _store_hidden(h, hp, y, i, row, n, j, t, T, H, out, wy, ys, yt, zero)


@cuda.jit
def _gru_bwd_kernel(g, hn, hp, dh_rec, dy, dh_carry, dgx, dgh, dgs, N, T, H, t, has_rec, has_dy,
                    dys, dyt, zero, one):
    """Input-side (dgx) and hidden-side (dgh, and its step copy dgs) pre-activation gradients;
    dh_carry becomes dh * z."""
    G = 3 * H
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j, row = _cell(i, H, T, t)
        r = row * G + j
        rg, zg, nv = _gates3(g, r, H)
        dh = _incoming(dh_carry[i] if has_rec else zero, dh_rec, dy, i, n, j, H, has_rec,
                       has_dy, dys, dyt)
        hprev = hp[row * H + j]
        dz = dh * (hprev - nv) * zg * (one - zg)
        dn = dh * (one - zg) * (one - nv * nv)
        dr = dn * hn[row * H + j] * rg * (one - rg)
        dnh = dn * rg
        _put3(dgx, r, H, dr, dz, dn)
        _put3(dgh, r, H, dr, dz, dnh)
        _put3(dgs, n * G + j, H, dr, dz, dnh)
        dh_carry[i] = dh * zg


# ------------------------------------------------------------------------------ host side

def _setup(x, w_hh, return_sequences):
    """Sizes, the (N*T, F) input view and the output (with the strides the kernels write it at)."""
    N, T, F = x.shape
    H = w_hh.shape[1]
    x2 = x.reshape((N * T, F))
    if return_sequences:
        y = empty((N, T, H), x.dtype)
        ys = T * H
    else:
        y = empty((N, H), x.dtype)
        ys = H
    return N, T, F, H, x2, y, ys


def _y_at(t, T, return_sequences):
    """(step index into y, whether step t writes y)."""
    if return_sequences:
        return t, True
    return 0, t == T - 1


def _dy_at(t, T, return_sequences):
    """(step index into dy, whether step t reads dy): dy is laid out as y."""
    return _y_at(t, T, return_sequences)


def _dy_stride(cache):
    N, T, F, H = cache.shape
    return T * H if cache.return_sequences else H


def _finish(cache, dg, dgh):
    """dx, dw_ih, dw_hh from the all-steps gate gradients (input side dg, hidden side dgh)."""
    N, T, F, H = cache.shape
    dx = matmul(dg, cache.w_ih).reshape((N, T, F))
    dw_ih = matmul(dg, cache.x2, trans_a=True)
    dw_hh = matmul(dgh, cache.hp, trans_a=True)
    return dx, dw_ih, dw_hh


def _forward(kernel, x, w_ih, w_hh, b, return_sequences, states=0, b_hh=None, flags=()):
    """The time loop every cell shares: one input GEMM over all steps, then per step the
    recurrent GEMM (``b_hh`` fused where given) and the cell's kernel, which reads its arguments
    as ``(gates, hw, h, hp, y, *states, [b_hh], N, T, H, t, has_h, ys, yt, wy, *flags, zero,
    one)``. Returns ``y``, the cache's leading fields (shape, x2, w_ih, w_hh, gates, hp, h) and
    the ``states`` extra (N*T, H) buffers the cell writes."""
    N, T, F, H, x2, y, ys = _setup(x, w_hh, return_sequences)
    dt = np.dtype(x.dtype).type
    gates = matmul(x2, w_ih, trans_b=True, bias=b, bias_axis=1)
    h = empty((N, H), x.dtype)
    hw = empty((N, w_hh.shape[0]), x.dtype)
    hp = empty((N * T, H), x.dtype)
    kept = tuple(empty((N * T, H), x.dtype) for _ in range(states))
    views = tuple(flat(a) for a in (gates, hw, h, hp, y) + kept)
    views += () if b_hh is None else (b_hh,)
    for t in range(T):
        if t > 0:
            matmul(h, w_hh, trans_b=True, out=hw, bias=b_hh, bias_axis=1)
        yt, wy = _y_at(t, T, return_sequences)
        _launch(kernel, N * H, *views, N, T, H, t, t > 0, ys, yt, wy, *flags, dt(0), dt(1))
    return y, ((N, T, F, H), x2, w_ih, w_hh, gates, hp, h), kept


def _backward(kernel, dy, cache, saved, carries=0, split=False, flags=()):
    """Backpropagation through time, the loop every cell shares: per step (last first) the cell's
    kernel, reading ``(*saved, dh_rec, dy, *carries, dg, [dgh], dgs, N, T, H, t, has_rec, has_dy,
    dys, dyt, *flags, zero, one)``, then ``dh_{t-1} = dg_t @ w_hh``. ``split`` keeps the gate
    gradients of the hidden side apart (GRU). Returns dx, dw_ih, dw_hh and the gate gradients
    of the input and hidden sides."""
    N, T, F, H = cache.shape
    dtype = cache.hp.dtype
    dt = np.dtype(dtype).type
    width = cache.w_hh.shape[0]
    dg = empty((N * T, width), dtype)
    dgh = empty((N * T, width), dtype) if split else dg
    dgs = empty((N, width), dtype)
    dh_rec = empty((N, H), dtype)
    kept = tuple(empty((N, H), dtype) for _ in range(carries))
    sums = (dg, dgh, dgs) if split else (dg, dgs)
    views = tuple(flat(a) for a in tuple(saved) + (dh_rec, dy) + kept + sums)
    dys = _dy_stride(cache)
    for t in range(T - 1, -1, -1):
        dyt, has_dy = _dy_at(t, T, cache.return_sequences)
        _launch(kernel, N * H, *views, N, T, H, t, t < T - 1, has_dy, dys, dyt, *flags,
                dt(0), dt(1))
        if t > 0:
            matmul(dgs, cache.w_hh, out=dh_rec)
    dx, dw_ih, dw_hh = _finish(cache, dg, dgh)
    return dx, dw_ih, dw_hh, dg, dgh


def rnn_forward(x, w_ih, w_hh, b, relu=False, return_sequences=False):
    """Elman RNN, ``h_t = act(x_t @ w_ih.T + h_{t-1} @ w_hh.T + b)`` with act tanh or ReLU."""
    y, (shape, x2, w_ih, w_hh, _, hp, h), _ = _forward(
        _rnn_fwd_kernel, x, w_ih, w_hh, b, return_sequences, flags=(bool(relu),))
    # the backward reads h and hp only: the projections are not kept
    return y, RNNCache("rnn", shape, x2, w_ih, w_hh, None, hp, h, bool(return_sequences),
                       relu=bool(relu))


def rnn_backward(dy, cache):
    """Backpropagation through time for ``rnn_forward``: ``(dx, dw_ih, dw_hh, db)``."""
    dx, dw_ih, dw_hh, dg, _ = _backward(_rnn_bwd_kernel, dy, cache, (cache.h, cache.hp),
                                        flags=(cache.relu,))
    return dx, dw_ih, dw_hh, column_sum(dg)


def lstm_forward(x, w_ih, w_hh, b, return_sequences=False):
    """LSTM as ``torch.nn.LSTM`` (gates i, f, g, o); ``b`` is the combined bias, shape (4H,)."""
    y, parts, (cs,) = _forward(_lstm_fwd_kernel, x, w_ih, w_hh, b, return_sequences, states=1)
    return y, RNNCache("lstm", *parts, bool(return_sequences), cs=cs)


def lstm_backward(dy, cache):
    """Backpropagation through time for ``lstm_forward``: ``(dx, dw_ih, dw_hh, db)``."""
    dx, dw_ih, dw_hh, dg, _ = _backward(_lstm_bwd_kernel, dy, cache, (cache.gates, cache.cs),
                                        carries=1)
    return dx, dw_ih, dw_hh, column_sum(dg)


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, return_sequences=False):
    """GRU as ``torch.nn.GRU`` (gates r, z, n; the reset gate scales ``W_hn h + b_hn``)."""
    y, parts, (hn,) = _forward(_gru_fwd_kernel, x, w_ih, w_hh, b_ih, return_sequences, states=1,
                               b_hh=b_hh)
    return y, RNNCache("gru", *parts, bool(return_sequences), hn=hn)


def gru_backward(dy, cache):
    """Backpropagation through time for ``gru_forward``: ``(dx, dw_ih, dw_hh, db_ih, db_hh)``."""
    dx, dw_ih, dw_hh, dgx, dgh = _backward(_gru_bwd_kernel, dy, cache,
                                           (cache.gates, cache.hn, cache.hp), carries=1,
                                           split=True)
    return dx, dw_ih, dw_hh, column_sum(dgx), column_sum(dgh)
