"""Slow float64 references for recurrent cells, PyTorch's equations, batch-first (N, T, F).

Each function returns every hidden state, shape (N, T, H); the last one is ``[:, -1]``.
Weights are stacked as PyTorch stacks them (LSTM i, f, g, o; GRU r, z, n); both biases
``b_ih`` and ``b_hh`` are taken, as ``torch.nn.RNN/LSTM/GRU`` do. The initial state is zero.
"""
import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def rnn(x, w_ih, w_hh, b_ih, b_hh, activation="tanh"):
    """h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh or relu."""
    x, w_ih, w_hh, b_ih, b_hh = _f64(x, w_ih, w_hh, b_ih, b_hh)
    N, T, _ = x.shape
    H = w_hh.shape[1]
    out = np.zeros((N, T, H))
    for n in range(N):
        h = np.zeros(H)
        for t in range(T):
            pre = w_ih @ x[n, t] + b_ih + w_hh @ h + b_hh
            h = np.tanh(pre) if activation == "tanh" else np.maximum(pre, 0.0)
            out[n, t] = h
    return out


def lstm(x, w_ih, w_hh, b_ih, b_hh):
    """i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh); c = f c + i g; h = o tanh(c)."""
    x, w_ih, w_hh, b_ih, b_hh = _f64(x, w_ih, w_hh, b_ih, b_hh)
    N, T, _ = x.shape
    H = w_hh.shape[1]
    out = np.zeros((N, T, H))
    for n in range(N):
        h = np.zeros(H)
        c = np.zeros(H)
        for t in range(T):
            pre = w_ih @ x[n, t] + b_ih + w_hh @ h + b_hh
            i = _sigmoid(pre[0:H])
            f = _sigmoid(pre[H:2 * H])
            g = np.tanh(pre[2 * H:3 * H])
            o = _sigmoid(pre[3 * H:4 * H])
            c = f * c + i * g
            h = o * np.tanh(c)
            out[n, t] = h
    return out


def gru(x, w_ih, w_hh, b_ih, b_hh):
    """r, z from the summed projections; n = tanh(W_in x + b_in + r (W_hn h + b_hn));
    h = (1 - z) n + z h."""
    x, w_ih, w_hh, b_ih, b_hh = _f64(x, w_ih, w_hh, b_ih, b_hh)
    N, T, _ = x.shape
    H = w_hh.shape[1]
    out = np.zeros((N, T, H))
    for n in range(N):
        h = np.zeros(H)
        for t in range(T):
            gi = w_ih @ x[n, t] + b_ih
            gh = w_hh @ h + b_hh
            r = _sigmoid(gi[0:H] + gh[0:H])
            z = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
            nn = np.tanh(gi[2 * H:] + r * gh[2 * H:])
            h = (1.0 - z) * nn + z * h
            out[n, t] = h
    return out
