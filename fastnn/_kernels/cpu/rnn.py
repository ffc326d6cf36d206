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
import numpy as np
from numba import prange

from ._jit import bind, jit, loops

#: N*H from which the per-step gate kernels run in parallel over the batch.
PARALLEL_MIN = 1 << 14


def _use_parallel(n, h):
    # sizes only: the serial and parallel copies are compiled apart, so the choice must not
    # follow the thread count (the results stay bitwise the same on any machine)
    return n >= 2 and n * h >= PARALLEL_MIN


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
def _rnn_bwd_row(n, h, dh_rec, dy, dpre, relu, zero, one):
    """dpre = (dh_rec + dy) * act'(pre), with act' read from the output h."""
    for j in range(h.shape[1]):
        d = dh_rec[n, j] + dy[n, j]
        hv = h[n, j]
        if relu:
            dpre[n, j] = d if hv > zero else zero
        else:
            dpre[n, j] = d * (one - hv * hv)


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


# ------------------------------------------------------------------------------ gate kernels

# Names that each compiled copy of a body below binds to its own function or constant
# (``_jit.bind`` / ``specialise``); declared here so that a reader finds them.
row = None


def _rows(args):
    """row(n, *args) for every batch row n of args[0] (``row``: bound per
    kernel). One tuple, not ``*args``: a dispatcher folds those in Python on every call."""
    for n in prange(args[0].shape[0]):
        row(n, *args)


# each named after its row function (``_rnn_fwd_row`` -> ``_rnn_fwd``)
_rnn_fwd, _rnn_bwd, _lstm_fwd, _lstm_bwd, _gru_fwd, _gru_bwd = (
    loops(bind(_rows, row.py_func.__name__[:-4], row=row)) for row in (
        _rnn_fwd_row, _rnn_bwd_row, _lstm_fwd_row, _lstm_bwd_row, _gru_fwd_row, _gru_bwd_row))


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


def _start(x, w_ih, w_hh):
    """Time-major input rows, every step's input projection (T, N, G*H) in one GEMM, the hidden
    states (T + 1, N, H) with h_0 = 0, and the (N, G*H) buffer for h @ w_hh.T."""
    N, T, _ = x.shape
    G, H = w_ih.shape[0], w_hh.shape[1]
    xt = _time_major(x)
    hs = np.empty((T + 1, N, H), dtype=x.dtype)
    hs[0] = 0
    return xt, (xt @ w_ih.T).reshape(T, N, G), hs, np.zeros((N, G), dtype=x.dtype)


def _forward(kernel, x, xt, w_ih, w_hh, hs, hw, return_sequences, step_args):
    """The recurrence: at step t, hw = h_t @ w_hh.T (hw stays zero for h_0 = 0), then the gate
    kernel on ``step_args(t)``. Returns ``y`` and what every backward pass needs."""
    par = _use_parallel(hs.shape[1], hs.shape[2])  # the backward pass runs as the forward
    step = kernel[par]
    w_hh_t = w_hh.T
    for t in range(hs.shape[0] - 1):
        if t > 0:
            np.dot(hs[t], w_hh_t, out=hw)
        step(step_args(t))
    return _output(hs, return_sequences), (x.shape, xt, w_ih, w_hh, hs, return_sequences, par)


def _backward(kernel, dy, run, dgx, dgh, step_args):
    """Backpropagation through time, last step first: dh_rec = dgh[t + 1] @ w_hh (zero at the
    last step), then the gate kernel on ``step_args(t, dh_rec, dy at step t)``, which writes the
    pre-activation gradients of the input side ``dgx`` and of the hidden side ``dgh`` (T, N, G;
    one array where they are equal). ``run``: from ``_forward``. Returns
    ``(dx, dw_ih, dw_hh, db_ih, db_hh)``."""
    x_shape, xt, w_ih, w_hh, hs, return_sequences, par = run
    T, N, H = dgh.shape[0], dgh.shape[1], w_hh.shape[1]
    dh_rec = np.zeros((N, H), dtype=dgh.dtype)
    dy_at = _dy_steps(dy, return_sequences, T, np.zeros((N, H), dtype=dgh.dtype))
    step = kernel[par]
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            np.dot(dgh[t + 1], w_hh, out=dh_rec)
        step(step_args(t, dh_rec, dy_at(t)))
    dx, dw_ih = _input_grads(dgx, xt, w_ih, x_shape)
    db_ih = dgx.reshape(T * N, dgx.shape[2]).sum(axis=0)
    db_hh = db_ih if dgh is dgx else dgh.reshape(T * N, dgh.shape[2]).sum(axis=0)
    return dx, dw_ih, _recurrent_grad(dgh, hs), db_ih, db_hh


def rnn_forward(x, w_ih, w_hh, b, relu=False, return_sequences=False):
    """Elman RNN, ``h_t = act(x_t @ w_ih.T + h_{t-1} @ w_hh.T + b)`` with act tanh or ReLU.

    ``b`` is the combined bias (PyTorch's ``b_ih + b_hh``), shape (H,). Returns ``(y, cache)``.
    """
    relu, zero = bool(relu), x.dtype.type(0)
    xt, xw, hs, hw = _start(x, w_ih, w_hh)
    y, run = _forward(_rnn_fwd, x, xt, w_ih, w_hh, hs, hw, return_sequences,
                      lambda t: (xw[t], hw, b, hs[t + 1], relu, zero))
    return y, (run, relu)


def rnn_backward(dy, cache):
    """Backpropagation through time for ``rnn_forward``: ``(dx, dw_ih, dw_hh, db)``."""
    run, relu = cache
    hs = run[4]
    zero, one = hs.dtype.type(0), hs.dtype.type(1)
    dpre = np.empty((hs.shape[0] - 1, hs.shape[1], hs.shape[2]), dtype=hs.dtype)
    return _backward(_rnn_bwd, dy, run, dpre, dpre,
                     lambda t, dh_rec, dyt: (hs[t + 1], dh_rec, dyt, dpre[t], relu, zero, one))[:4]


def lstm_forward(x, w_ih, w_hh, b, return_sequences=False):
    """LSTM as ``torch.nn.LSTM`` (gates i, f, g, o); ``b`` is the combined bias, shape (4H,).

    Returns ``(y, cache)``.
    """
    one = x.dtype.type(1)
    xt, gates, hs, hw = _start(x, w_ih, w_hh)  # pre-activations, overwritten by the gates
    cs = np.empty_like(hs)
    cs[0] = 0
    y, run = _forward(_lstm_fwd, x, xt, w_ih, w_hh, hs, hw, return_sequences,
                      lambda t: (gates[t], hw, b, cs[t], cs[t + 1], hs[t + 1], one))
    return y, (run, gates, cs)


def lstm_backward(dy, cache):
    """Backpropagation through time for ``lstm_forward``: ``(dx, dw_ih, dw_hh, db)``."""
    run, gates, cs = cache
    one = cs.dtype.type(1)
    dgates = np.empty_like(gates)
    dc = np.zeros(cs.shape[1:], dtype=cs.dtype)
    return _backward(_lstm_bwd, dy, run, dgates, dgates,
                     lambda t, dh_rec, dyt: (gates[t], cs[t], cs[t + 1], dh_rec, dyt, dc,
                                             dgates[t], one))[:4]


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, return_sequences=False):
    """GRU as ``torch.nn.GRU`` (gates r, z, n; the reset gate scales ``W_hn h + b_hn``).

    Both biases (3H,) are kept, as in PyTorch. Returns ``(y, cache)``.
    """
    one = x.dtype.type(1)
    xt, gates, hs, hw = _start(x, w_ih, w_hh)  # input pre-activations, overwritten by (r, z, n)
    hn = np.empty((hs.shape[0] - 1, hs.shape[1], hs.shape[2]), dtype=x.dtype)  # W_hn h + b_hn
    y, run = _forward(_gru_fwd, x, xt, w_ih, w_hh, hs, hw, return_sequences,
                      lambda t: (gates[t], hw, b_ih, b_hh, hs[t], hs[t + 1], hn[t], one))
    return y, (run, gates, hn)


def gru_backward(dy, cache):
    """Backpropagation through time for ``gru_forward``: ``(dx, dw_ih, dw_hh, db_ih, db_hh)``."""
    run, gates, hn = cache
    hs = run[4]
    one = hs.dtype.type(1)
    dgx, dgh = np.empty_like(gates), np.empty_like(gates)
    dh_carry = np.zeros(hn.shape[1:], dtype=hn.dtype)
    return _backward(_gru_bwd, dy, run, dgx, dgh,
                     lambda t, dh_rec, dyt: (gates[t], hn[t], hs[t], dh_rec, dyt, dh_carry,
                                             dgx[t], dgh[t], one))
