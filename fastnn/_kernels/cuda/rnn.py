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
def _rnn_fwd_kernel(xw, hw, h, hp, y, N, T, H, t, has_h, relu, ys, yt, wy, zero):
    """h = act(xw[n*T+t] + hw) over the (N, H) cells; also hp[n, t+1] and the output."""
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n = i // H
        j = i - n * H
        row = n * T + t
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
        n = i // H
        j = i - n * H
        row = n * T + t
        d = zero
        if has_rec:
            d += dh_rec[i]
        if has_dy:
            d += dy[n * dys + dyt * H + j]
        hv = hp[(row + 1) * H + j] if t + 1 < T else h[i]
        if relu:
            g = d if hv > zero else zero
        else:
            g = d * (one - hv * hv)
        dg[row * H + j] = g
        dgs[i] = g


# ------------------------------------------------------------------------------------ LSTM

@cuda.jit
def _lstm_fwd_kernel(g, hw, h, cs, hp, y, N, T, H, t, has_h, ys, yt, wy, zero, one):
    """Gates (i, f, g, o) from g[n*T+t] (+ hw), written back into g; new c and h."""
    G = 4 * H
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n = i // H
        j = i - n * H
        row = n * T + t
        r = row * G + j
        a0 = g[r]
        a1 = g[r + H]
        a2 = g[r + 2 * H]
        a3 = g[r + 3 * H]
        if has_h:
            q = n * G + j
            a0 += hw[q]
            a1 += hw[q + H]
            a2 += hw[q + 2 * H]
            a3 += hw[q + 3 * H]
        ig = _sigmoid(a0, one)
        fg = _sigmoid(a1, one)
        gg = math.tanh(a2)
        og = _sigmoid(a3, one)
        cp = cs[(row - 1) * H + j] if t > 0 else zero
        cv = fg * cp + ig * gg
        g[r] = ig
        g[r + H] = fg
        g[r + 2 * H] = gg
        g[r + 3 * H] = og
        cs[row * H + j] = cv
        out = og * math.tanh(cv)
        _store_hidden(h, hp, y, i, row, n, j, t, T, H, out, wy, ys, yt, zero)


@cuda.jit
def _lstm_bwd_kernel(g, cs, dh_rec, dy, dc, dg, dgs, N, T, H, t, has_rec, has_dy, dys, dyt,
                     zero, one):
    """Pre-activation gradients from dh = dh_rec + dy and the carried dc (becomes dc_{t-1})."""
    G = 4 * H
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n = i // H
        j = i - n * H
        row = n * T + t
        r = row * G + j
        ig = g[r]
        fg = g[r + H]
        gg = g[r + 2 * H]
        og = g[r + 3 * H]
        cv = cs[row * H + j]
        cp = cs[(row - 1) * H + j] if t > 0 else zero
        tc = math.tanh(cv)
        dh = zero
        dcv = zero
        if has_rec:
            dh += dh_rec[i]
            dcv = dc[i]
        if has_dy:
            dh += dy[n * dys + dyt * H + j]
        dct = dcv + dh * og * (one - tc * tc)
        d0 = dct * gg * ig * (one - ig)
        d1 = dct * cp * fg * (one - fg)
        d2 = dct * ig * (one - gg * gg)
        d3 = dh * tc * og * (one - og)
        dg[r] = d0
        dg[r + H] = d1
        dg[r + 2 * H] = d2
        dg[r + 3 * H] = d3
        q = n * G + j
        dgs[q] = d0
        dgs[q + H] = d1
        dgs[q + 2 * H] = d2
        dgs[q + 3 * H] = d3
        dc[i] = dct * fg


# ------------------------------------------------------------------------------------- GRU

@cuda.jit
def _gru_fwd_kernel(g, hw, b_hh, h, hn, hp, y, N, T, H, t, has_h, ys, yt, wy, zero, one):
    """r, z, n from g[n*T+t] = x W_ih^T + b_ih and hw = h W_hh^T + b_hh (b_hh alone at t = 0).

    As PyTorch: n = tanh(x_n + r * (W_hn h + b_hn)); h = (1 - z) * n + z * h_prev. g is
    overwritten with (r, z, n); hn keeps W_hn h + b_hn for the backward pass.
    """
    G = 3 * H
    for i in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n = i // H
        j = i - n * H
        row = n * T + t
        r = row * G + j
        if has_h:
            q = n * G + j
            h0 = hw[q]
            h1 = hw[q + H]
            h2 = hw[q + 2 * H]
            hprev = h[i]
        else:
            h0 = b_hh[j]
            h1 = b_hh[H + j]
            h2 = b_hh[2 * H + j]
            hprev = zero
        rg = _sigmoid(g[r] + h0, one)
        zg = _sigmoid(g[r + H] + h1, one)
        nv = math.tanh(g[r + 2 * H] + rg * h2)
        g[r] = rg
        g[r + H] = zg
        g[r + 2 * H] = nv
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
        n = i // H
        j = i - n * H
        row = n * T + t
        r = row * G + j
        rg = g[r]
        zg = g[r + H]
        nv = g[r + 2 * H]
        dh = zero
        if has_rec:
            dh += dh_carry[i]
            dh += dh_rec[i]
        if has_dy:
            dh += dy[n * dys + dyt * H + j]
        hprev = hp[row * H + j]
        dz = dh * (hprev - nv) * zg * (one - zg)
        dn = dh * (one - zg) * (one - nv * nv)
        dr = dn * hn[row * H + j] * rg * (one - rg)
        dnh = dn * rg
        dgx[r] = dr
        dgx[r + H] = dz
        dgx[r + 2 * H] = dn
        dgh[r] = dr
        dgh[r + H] = dz
        dgh[r + 2 * H] = dnh
        q = n * G + j
        dgs[q] = dr
        dgs[q + H] = dz
        dgs[q + 2 * H] = dnh
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


def rnn_forward(x, w_ih, w_hh, b, relu=False, return_sequences=False):
    """Elman RNN, ``h_t = act(x_t @ w_ih.T + h_{t-1} @ w_hh.T + b)`` with act tanh or ReLU."""
    N, T, F, H, x2, y, ys = _setup(x, w_hh, return_sequences)
    dt = np.dtype(x.dtype).type
    xw = matmul(x2, w_ih, trans_b=True, bias=b, bias_axis=1)
    h = empty((N, H), x.dtype)
    hw = empty((N, H), x.dtype)
    hp = empty((N * T, H), x.dtype)
    f_xw, f_hw, f_h, f_hp, f_y = (flat(a) for a in (xw, hw, h, hp, y))
    for t in range(T):
        if t > 0:
            matmul(h, w_hh, trans_b=True, out=hw)
        yt, wy = _y_at(t, T, return_sequences)
        _launch(_rnn_fwd_kernel, N * H, f_xw, f_hw, f_h, f_hp, f_y, N, T, H,
                t, t > 0, bool(relu), ys, yt, wy, dt(0))
    cache = RNNCache("rnn", (N, T, F, H), x2, w_ih, w_hh, None, hp, h, bool(return_sequences),
                     relu=bool(relu))
    return y, cache


def rnn_backward(dy, cache):
    """Backpropagation through time for ``rnn_forward``: ``(dx, dw_ih, dw_hh, db)``."""
    N, T, F, H = cache.shape
    dtype = cache.hp.dtype
    dt = np.dtype(dtype).type
    dg = empty((N * T, H), dtype)
    dgs = empty((N, H), dtype)
    dh_rec = empty((N, H), dtype)
    dys = _dy_stride(cache)
    c_h, c_hp, f_dh_rec, f_dy, f_dg, f_dgs = (
        flat(a) for a in (cache.h, cache.hp, dh_rec, dy, dg, dgs))
    for t in range(T - 1, -1, -1):
        dyt, has_dy = _dy_at(t, T, cache.return_sequences)
        _launch(_rnn_bwd_kernel, N * H, c_h, c_hp, f_dh_rec, f_dy,
                f_dg, f_dgs, N, T, H, t, t < T - 1, has_dy, dys, dyt, cache.relu, dt(0),
                dt(1))
        if t > 0:
            matmul(dgs, cache.w_hh, out=dh_rec)
    dx, dw_ih, dw_hh = _finish(cache, dg, dg)
    return dx, dw_ih, dw_hh, column_sum(dg)


def lstm_forward(x, w_ih, w_hh, b, return_sequences=False):
    """LSTM as ``torch.nn.LSTM`` (gates i, f, g, o); ``b`` is the combined bias, shape (4H,)."""
    N, T, F, H, x2, y, ys = _setup(x, w_hh, return_sequences)
    dt = np.dtype(x.dtype).type
    gates = matmul(x2, w_ih, trans_b=True, bias=b, bias_axis=1)
    h = empty((N, H), x.dtype)
    hw = empty((N, 4 * H), x.dtype)
    hp = empty((N * T, H), x.dtype)
    cs = empty((N * T, H), x.dtype)
    f_gates, f_hw, f_h, f_cs, f_hp, f_y = (flat(a) for a in (gates, hw, h, cs, hp, y))
    for t in range(T):
        if t > 0:
            matmul(h, w_hh, trans_b=True, out=hw)
        yt, wy = _y_at(t, T, return_sequences)
        _launch(_lstm_fwd_kernel, N * H, f_gates, f_hw, f_h, f_cs, f_hp,
                f_y, N, T, H, t, t > 0, ys, yt, wy, dt(0), dt(1))
    cache = RNNCache("lstm", (N, T, F, H), x2, w_ih, w_hh, gates, hp, h, bool(return_sequences),
                     cs=cs)
    return y, cache


def lstm_backward(dy, cache):
    """Backpropagation through time for ``lstm_forward``: ``(dx, dw_ih, dw_hh, db)``."""
    N, T, F, H = cache.shape
    dtype = cache.hp.dtype
    dt = np.dtype(dtype).type
    dg = empty((N * T, 4 * H), dtype)
    dgs = empty((N, 4 * H), dtype)
    dh_rec = empty((N, H), dtype)
    dc = empty((N, H), dtype)
    dys = _dy_stride(cache)
    c_gates, c_cs, f_dh_rec, f_dy, f_dc, f_dg, f_dgs = (
        flat(a) for a in (cache.gates, cache.cs, dh_rec, dy, dc, dg, dgs))
    for t in range(T - 1, -1, -1):
        dyt, has_dy = _dy_at(t, T, cache.return_sequences)
        _launch(_lstm_bwd_kernel, N * H, c_gates, c_cs, f_dh_rec,
                f_dy, f_dc, f_dg, f_dgs, N, T, H, t, t < T - 1, has_dy, dys, dyt,
                dt(0), dt(1))
        if t > 0:
            matmul(dgs, cache.w_hh, out=dh_rec)
    dx, dw_ih, dw_hh = _finish(cache, dg, dg)
    return dx, dw_ih, dw_hh, column_sum(dg)


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, return_sequences=False):
    """GRU as ``torch.nn.GRU`` (gates r, z, n; the reset gate scales ``W_hn h + b_hn``)."""
    N, T, F, H, x2, y, ys = _setup(x, w_hh, return_sequences)
    dt = np.dtype(x.dtype).type
    gates = matmul(x2, w_ih, trans_b=True, bias=b_ih, bias_axis=1)
    h = empty((N, H), x.dtype)
    hw = empty((N, 3 * H), x.dtype)
    hp = empty((N * T, H), x.dtype)
    hn = empty((N * T, H), x.dtype)
    f_gates, f_hw, f_h, f_hn, f_hp, f_y = (flat(a) for a in (gates, hw, h, hn, hp, y))
    for t in range(T):
        if t > 0:
            matmul(h, w_hh, trans_b=True, out=hw, bias=b_hh, bias_axis=1)
        yt, wy = _y_at(t, T, return_sequences)
        _launch(_gru_fwd_kernel, N * H, f_gates, f_hw, b_hh, f_h, f_hn, f_hp,
                f_y, N, T, H, t, t > 0, ys, yt, wy, dt(0), dt(1))
    cache = RNNCache("gru", (N, T, F, H), x2, w_ih, w_hh, gates, hp, h, bool(return_sequences),
                     hn=hn)
    return y, cache


def gru_backward(dy, cache):
    """Backpropagation through time for ``gru_forward``: ``(dx, dw_ih, dw_hh, db_ih, db_hh)``."""
    N, T, F, H = cache.shape
    dtype = cache.hp.dtype
    dt = np.dtype(dtype).type
    dgx = empty((N * T, 3 * H), dtype)
    dgh = empty((N * T, 3 * H), dtype)
    dgs = empty((N, 3 * H), dtype)
    dh_rec = empty((N, H), dtype)
    dh_carry = empty((N, H), dtype)
    dys = _dy_stride(cache)
    c_gates, c_hn, c_hp, f_dh_rec, f_dy, f_dh_carry, f_dgx, f_dgh, f_dgs = (
        flat(a) for a in (cache.gates, cache.hn, cache.hp, dh_rec, dy, dh_carry, dgx, dgh, dgs))
    for t in range(T - 1, -1, -1):
        dyt, has_dy = _dy_at(t, T, cache.return_sequences)
        _launch(_gru_bwd_kernel, N * H, c_gates, c_hn, c_hp,
                f_dh_rec, f_dy, f_dh_carry, f_dgx, f_dgh, f_dgs, N, T, H,
                t, t < T - 1, has_dy, dys, dyt, dt(0), dt(1))
        if t > 0:
            matmul(dgs, cache.w_hh, out=dh_rec)
    dx, dw_ih, dw_hh = _finish(cache, dgx, dgh)
    return dx, dw_ih, dw_hh, column_sum(dgx), column_sum(dgh)
