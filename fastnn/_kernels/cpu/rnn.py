"""Recurrent cells on the CPU: SimpleRNN (Elman), LSTM and GRU with PyTorch's equations.

Host functions take validated, C-contiguous arrays of one float dtype, batch first:
``x`` (N, T, F), ``w_ih`` (G*H, F), ``w_hh`` (G*H, H), biases 1-D, with the gates stacked in
PyTorch's order (LSTM i, f, g, o; GRU r, z, n; G = 1, 4, 3). They return ``(y, cache)``: ``y`` is
the last hidden state (N, H), or every hidden state (N, T, H) when ``return_sequences``; the
matching ``*_backward(dy, cache)`` returns ``dx`` and the parameter gradients in argument order.
The initial state is zero.

Work per sequence: one GEMM projects every time step's input at once; each step then runs one
BLAS GEMM ``h @ w_hh.T`` and one fused Numba kernel (gate nonlinearities and state update in a
single pass over the (N, G*H) gates). Backpropagation through time mirrors it (one GEMM and one
fused kernel per step); the weight gradients are single GEMMs over all steps at the end.
Internally everything is time-major (T, N, ...), so each step's slice is contiguous.
The gate kernels run a ``prange`` over the batch when N*H is at least ``PARALLEL_MIN``, else
serially (a parallel region per step costs more than it saves on small batches).
"""
import numba
import numpy as np
from numba import prange

from ._jit import jit, pjit

#: N*H from which the per-step gate kernels run in parallel over the batch.
PARALLEL_MIN = 1 << 14


def _use_parallel(n, h):
    return n >= 2 and n * h >= PARALLEL_MIN and numba.get_num_threads() > 1


@jit(inline="always")
def _sigmoid(v, one):
    return one / (one + np.exp(-v))


# ------------------------------------------------------------------------------- SimpleRNN

@jit
def _rnn_fwd_row(n, xw, hw, b, h, relu, zero):
    """h = act(xw + hw + b) for batch row n; xw, hw, h (N, H)."""
    for j in range(h.shape[1]):
        v = xw[n, j] + hw[n, j] + b[j]
        if relu:
            h[n, j] = zero if v < zero else v  # NaN propagates, as torch.relu
        else:
            h[n, j] = np.tanh(v)


@jit
def _rnn_fwd_serial(xw, hw, b, h, relu, zero):
    for n in range(h.shape[0]):
        _rnn_fwd_row(n, xw, hw, b, h, relu, zero)


@pjit
def _rnn_fwd_parallel(xw, hw, b, h, relu, zero):
    for n in prange(h.shape[0]):
        _rnn_fwd_row(n, xw, hw, b, h, relu, zero)


@jit
def _rnn_bwd_row(n, h, dh_rec, dy, dpre, relu, zero, one):
    """dpre = (dh_rec + dy) * act'(pre), with act' read from the output h."""
    for j in range(h.shape[1]):
        d = dh_rec[n, j] + dy[n, j]
        hv = h[n, j]
        if relu:
            dpre[n, j] = d if hv > zero else zero
        else:
            dpre[n, j] = d * (one - hv * hv)


@jit
def _rnn_bwd_serial(h, dh_rec, dy, dpre, relu, zero, one):
    for n in range(h.shape[0]):
        _rnn_bwd_row(n, h, dh_rec, dy, dpre, relu, zero, one)


@pjit
def _rnn_bwd_parallel(h, dh_rec, dy, dpre, relu, zero, one):
    for n in prange(h.shape[0]):
        _rnn_bwd_row(n, h, dh_rec, dy, dpre, relu, zero, one)


# ------------------------------------------------------------------------------------ LSTM

@jit
def _lstm_fwd_row(n, g, hw, b, c_prev, c, h, one):
    """Gates (i, f, g, o) from pre-activations g + hw + b, written back into g; new c and h."""
    H = c.shape[1]
    for j in range(H):
        ig = _sigmoid(g[n, j] + hw[n, j] + b[j], one)
        fg = _sigmoid(g[n, H + j] + hw[n, H + j] + b[H + j], one)
        gg = np.tanh(g[n, 2 * H + j] + hw[n, 2 * H + j] + b[2 * H + j])
        og = _sigmoid(g[n, 3 * H + j] + hw[n, 3 * H + j] + b[3 * H + j], one)
        cv = fg * c_prev[n, j] + ig * gg
        g[n, j] = ig
        g[n, H + j] = fg
        g[n, 2 * H + j] = gg
        g[n, 3 * H + j] = og
        c[n, j] = cv
        h[n, j] = og * np.tanh(cv)


@jit
def _lstm_fwd_serial(g, hw, b, c_prev, c, h, one):
    for n in range(c.shape[0]):
        _lstm_fwd_row(n, g, hw, b, c_prev, c, h, one)


@pjit
def _lstm_fwd_parallel(g, hw, b, c_prev, c, h, one):
    for n in prange(c.shape[0]):
        _lstm_fwd_row(n, g, hw, b, c_prev, c, h, one)


@jit
def _lstm_bwd_row(n, g, c_prev, c, dh_rec, dy, dc, dg, one):
    """Pre-activation gradients dg from dh = dh_rec + dy and the carried dc (becomes dc_prev)."""
    H = c.shape[1]
    for j in range(H):
        ig = g[n, j]
        fg = g[n, H + j]
        gg = g[n, 2 * H + j]
        og = g[n, 3 * H + j]
        tc = np.tanh(c[n, j])
        dh = dh_rec[n, j] + dy[n, j]
        dct = dc[n, j] + dh * og * (one - tc * tc)
        dg[n, j] = dct * gg * ig * (one - ig)
        dg[n, H + j] = dct * c_prev[n, j] * fg * (one - fg)
        dg[n, 2 * H + j] = dct * ig * (one - gg * gg)
        dg[n, 3 * H + j] = dh * tc * og * (one - og)
        dc[n, j] = dct * fg


@jit
def _lstm_bwd_serial(g, c_prev, c, dh_rec, dy, dc, dg, one):
    for n in range(c.shape[0]):
        _lstm_bwd_row(n, g, c_prev, c, dh_rec, dy, dc, dg, one)


@pjit
def _lstm_bwd_parallel(g, c_prev, c, dh_rec, dy, dc, dg, one):
    for n in prange(c.shape[0]):
        _lstm_bwd_row(n, g, c_prev, c, dh_rec, dy, dc, dg, one)


# ------------------------------------------------------------------------------------- GRU

@jit
def _gru_fwd_row(n, g, hw, b_ih, b_hh, h_prev, h, hn, one):
    """r, z, n from input pre-activations g = x @ w_ih.T and hw = h_prev @ w_hh.T, plus biases.

    As PyTorch: n = tanh(x_n + r * (W_hn h + b_hn)); h = (1 - z) * n + z * h_prev.
    g is overwritten with (r, z, n); hn keeps W_hn h + b_hn for the backward pass.
    """
    H = h.shape[1]
    for j in range(H):
        r = _sigmoid(g[n, j] + b_ih[j] + hw[n, j] + b_hh[j], one)
        z = _sigmoid(g[n, H + j] + b_ih[H + j] + hw[n, H + j] + b_hh[H + j], one)
        hv = hw[n, 2 * H + j] + b_hh[2 * H + j]
        nv = np.tanh(g[n, 2 * H + j] + b_ih[2 * H + j] + r * hv)
        g[n, j] = r
        g[n, H + j] = z
        g[n, 2 * H + j] = nv
        hn[n, j] = hv
        h[n, j] = nv + z * (h_prev[n, j] - nv)


@jit
def _gru_fwd_serial(g, hw, b_ih, b_hh, h_prev, h, hn, one):
    for n in range(h.shape[0]):
        _gru_fwd_row(n, g, hw, b_ih, b_hh, h_prev, h, hn, one)


@pjit
def _gru_fwd_parallel(g, hw, b_ih, b_hh, h_prev, h, hn, one):
    for n in prange(h.shape[0]):
        _gru_fwd_row(n, g, hw, b_ih, b_hh, h_prev, h, hn, one)


@jit
def _gru_bwd_row(n, g, hn, h_prev, dh_rec, dy, dh_carry, dgx, dgh, one):
    """Input-side (dgx) and hidden-side (dgh) pre-activation gradients; dh_carry becomes dh * z."""
    H = h_prev.shape[1]
    for j in range(H):
        r = g[n, j]
        z = g[n, H + j]
        nv = g[n, 2 * H + j]
        dh = dh_carry[n, j] + dh_rec[n, j] + dy[n, j]
        dz = dh * (h_prev[n, j] - nv) * z * (one - z)
        dn = dh * (one - z) * (one - nv * nv)
        dr = dn * hn[n, j] * r * (one - r)
        dgx[n, j] = dr
        dgx[n, H + j] = dz
        dgx[n, 2 * H + j] = dn
        dgh[n, j] = dr
        dgh[n, H + j] = dz
        dgh[n, 2 * H + j] = dn * r
        dh_carry[n, j] = dh * z


@jit
def _gru_bwd_serial(g, hn, h_prev, dh_rec, dy, dh_carry, dgx, dgh, one):
    for n in range(h_prev.shape[0]):
        _gru_bwd_row(n, g, hn, h_prev, dh_rec, dy, dh_carry, dgx, dgh, one)


@pjit
def _gru_bwd_parallel(g, hn, h_prev, dh_rec, dy, dh_carry, dgx, dgh, one):
    for n in prange(h_prev.shape[0]):
        _gru_bwd_row(n, g, hn, h_prev, dh_rec, dy, dh_carry, dgx, dgh, one)


# ------------------------------------------------------------------------------ host side

def _time_major(x):
    """(N, T, F) -> contiguous (T*N, F) rows in time-major order."""
    n, t, f = x.shape
    return np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(t * n, f)


def _batch_first(a):
    """(T, N, K) -> contiguous (N, T, K)."""
    return np.ascontiguousarray(a.transpose(1, 0, 2))


def _output(hs, return_sequences):
    return _batch_first(hs[1:]) if return_sequences else hs[-1].copy()


def _dy_steps(dy, return_sequences, T, zeros):
    """dy for step t: a (N, H) contiguous array (zeros where the step has no output)."""
    if return_sequences:
        dyt = _batch_first(dy)
        return lambda t: dyt[t]
    return lambda t: dy if t == T - 1 else zeros


def _input_grads(dgates, xt, w_ih, x_shape):
    """dx (N, T, F) and dw_ih from the stacked time-major gate gradients (T, N, G)."""
    n, t, f = x_shape
    d2 = dgates.reshape(t * n, dgates.shape[2])
    dx = _batch_first((d2 @ w_ih).reshape(t, n, f))
    return dx, d2.T @ xt


def _recurrent_grad(dgates, hs):
    """dw_hh = sum_t dgates[t].T @ h[t-1] as one GEMM (h[-1] = 0 drops step 0)."""
    T, N, G = dgates.shape
    H = hs.shape[2]
    if T == 1:
        return np.zeros((G, H), dtype=dgates.dtype)
    return dgates[1:].reshape((T - 1) * N, G).T @ hs[1:T].reshape((T - 1) * N, H)


def rnn_forward(x, w_ih, w_hh, b, relu=False, return_sequences=False):
    """Elman RNN, ``h_t = act(x_t @ w_ih.T + h_{t-1} @ w_hh.T + b)`` with act tanh or ReLU.

    ``b`` is the combined bias (PyTorch's ``b_ih + b_hh``), shape (H,). Returns ``(y, cache)``.
    """
    N, T, F = x.shape
    H = w_hh.shape[1]
    dt = x.dtype.type
    xt = _time_major(x)
    xw = (xt @ w_ih.T).reshape(T, N, H)
    hs = np.empty((T + 1, N, H), dtype=x.dtype)
    hs[0] = 0
    hw = np.zeros((N, H), dtype=x.dtype)
    par = _use_parallel(N, H)
    step = _rnn_fwd_parallel if par else _rnn_fwd_serial
    w_hh_t = w_hh.T
    for t in range(T):
        if t > 0:
            np.dot(hs[t], w_hh_t, out=hw)
        step(xw[t], hw, b, hs[t + 1], bool(relu), dt(0))
    cache = (x.shape, xt, w_ih, w_hh, hs, bool(relu), return_sequences, par)
    return _output(hs, return_sequences), cache


def rnn_backward(dy, cache):
    """Backpropagation through time for ``rnn_forward``: ``(dx, dw_ih, dw_hh, db)``."""
    x_shape, xt, w_ih, w_hh, hs, relu, return_sequences, par = cache
    T, N, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    dt = hs.dtype.type
    dpre = np.empty((T, N, H), dtype=hs.dtype)
    dh_rec = np.zeros((N, H), dtype=hs.dtype)
    dy_at = _dy_steps(dy, return_sequences, T, np.zeros((N, H), dtype=hs.dtype))
    step = _rnn_bwd_parallel if par else _rnn_bwd_serial
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            np.dot(dpre[t + 1], w_hh, out=dh_rec)
        step(hs[t + 1], dh_rec, dy_at(t), dpre[t], relu, dt(0), dt(1))
    dx, dw_ih = _input_grads(dpre, xt, w_ih, x_shape)
    return dx, dw_ih, _recurrent_grad(dpre, hs), dpre.reshape(T * N, H).sum(axis=0)


def lstm_forward(x, w_ih, w_hh, b, return_sequences=False):
    """LSTM as ``torch.nn.LSTM`` (gates i, f, g, o); ``b`` is the combined bias, shape (4H,).

    Returns ``(y, cache)``.
    """
    N, T, F = x.shape
    H = w_hh.shape[1]
    one = x.dtype.type(1)
    xt = _time_major(x)
    gates = (xt @ w_ih.T).reshape(T, N, 4 * H)  # pre-activations, overwritten by the gates
    hs = np.empty((T + 1, N, H), dtype=x.dtype)
    cs = np.empty((T + 1, N, H), dtype=x.dtype)
    hs[0] = 0
    cs[0] = 0
    hw = np.zeros((N, 4 * H), dtype=x.dtype)
    par = _use_parallel(N, H)
    step = _lstm_fwd_parallel if par else _lstm_fwd_serial
    w_hh_t = w_hh.T
    for t in range(T):
        if t > 0:
            np.dot(hs[t], w_hh_t, out=hw)
        step(gates[t], hw, b, cs[t], cs[t + 1], hs[t + 1], one)
    cache = (x.shape, xt, w_ih, w_hh, gates, hs, cs, return_sequences, par)
    return _output(hs, return_sequences), cache


def lstm_backward(dy, cache):
    """Backpropagation through time for ``lstm_forward``: ``(dx, dw_ih, dw_hh, db)``."""
    x_shape, xt, w_ih, w_hh, gates, hs, cs, return_sequences, par = cache
    T, N, G = gates.shape
    H = G // 4
    one = hs.dtype.type(1)
    dgates = np.empty_like(gates)
    dh_rec = np.zeros((N, H), dtype=hs.dtype)
    dc = np.zeros((N, H), dtype=hs.dtype)
    dy_at = _dy_steps(dy, return_sequences, T, np.zeros((N, H), dtype=hs.dtype))
    step = _lstm_bwd_parallel if par else _lstm_bwd_serial
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            np.dot(dgates[t + 1], w_hh, out=dh_rec)
        step(gates[t], cs[t], cs[t + 1], dh_rec, dy_at(t), dc, dgates[t], one)
    dx, dw_ih = _input_grads(dgates, xt, w_ih, x_shape)
    return dx, dw_ih, _recurrent_grad(dgates, hs), dgates.reshape(T * N, G).sum(axis=0)


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, return_sequences=False):
    """GRU as ``torch.nn.GRU`` (gates r, z, n; the reset gate scales ``W_hn h + b_hn``).

    Both biases (3H,) are kept, as in PyTorch. Returns ``(y, cache)``.
    """
    N, T, F = x.shape
    H = w_hh.shape[1]
    one = x.dtype.type(1)
    xt = _time_major(x)
    gates = (xt @ w_ih.T).reshape(T, N, 3 * H)  # input pre-activations, overwritten by (r, z, n)
    hs = np.empty((T + 1, N, H), dtype=x.dtype)
    hs[0] = 0
    hn = np.empty((T, N, H), dtype=x.dtype)
    hw = np.zeros((N, 3 * H), dtype=x.dtype)
    par = _use_parallel(N, H)
    step = _gru_fwd_parallel if par else _gru_fwd_serial
    w_hh_t = w_hh.T
    for t in range(T):
        if t > 0:
            np.dot(hs[t], w_hh_t, out=hw)
        step(gates[t], hw, b_ih, b_hh, hs[t], hs[t + 1], hn[t], one)
    cache = (x.shape, xt, w_ih, w_hh, gates, hn, hs, return_sequences, par)
    return _output(hs, return_sequences), cache


def gru_backward(dy, cache):
    """Backpropagation through time for ``gru_forward``: ``(dx, dw_ih, dw_hh, db_ih, db_hh)``."""
    x_shape, xt, w_ih, w_hh, gates, hn, hs, return_sequences, par = cache
    T, N, G = gates.shape
    H = G // 3
    one = hs.dtype.type(1)
    dgx = np.empty_like(gates)
    dgh = np.empty_like(gates)
    dh_rec = np.zeros((N, H), dtype=hs.dtype)
    dh_carry = np.zeros((N, H), dtype=hs.dtype)
    dy_at = _dy_steps(dy, return_sequences, T, np.zeros((N, H), dtype=hs.dtype))
    step = _gru_bwd_parallel if par else _gru_bwd_serial
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            np.dot(dgh[t + 1], w_hh, out=dh_rec)
        step(gates[t], hn[t], hs[t], dh_rec, dy_at(t), dh_carry, dgx[t], dgh[t], one)
    dx, dw_ih = _input_grads(dgx, xt, w_ih, x_shape)
    db_ih = dgx.reshape(T * N, G).sum(axis=0)
    db_hh = dgh.reshape(T * N, G).sum(axis=0)
    return dx, dw_ih, _recurrent_grad(dgh, hs), db_ih, db_hh
