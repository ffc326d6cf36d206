"""Recurrent cells (SimpleRNN, LSTM, GRU) with PyTorch's equations, batch first.

``x`` (N, T, F); ``w_ih`` (G*H, F), ``w_hh`` (G*H, H), biases (G*H,), gates stacked in PyTorch's
order (LSTM i, f, g, o; GRU r, z, n; G = 1, 4, 3). ``*_forward`` returns ``(y, cache)``: ``y``
the last hidden state (N, H), or every one (N, T, H) with ``return_sequences``;
``*_backward(dy, cache)`` returns ``dx`` and the parameter gradients in argument order. The
cells run on the CPU (``fastnn._kernels.cpu.rnn``).
"""
from ._dispatch import backend
from ._validate import check_shape


def _cells(x, w_ih, w_hh, biases, gates):
    """Validated C-contiguous arrays of one float dtype, and the CPU implementation."""
    be = backend(x, w_ih, w_hh, *biases)
    if be.name != "cpu":
        raise TypeError("the recurrent cells run on the CPU only: pass NumPy arrays")
    x = be.float_array(x, "x", ndim=3, layout="(N, T, F)")
    if x.shape[1] < 1:
        raise ValueError(f"x needs at least one time step, got shape {tuple(x.shape)}")
    w_hh = be.float_array(w_hh, "w_hh", ndim=2, dtype=x.dtype)
    h = w_hh.shape[1]
    check_shape(w_hh, "w_hh", (gates * h, h))
    w_ih = be.float_array(w_ih, "w_ih", ndim=2, dtype=x.dtype)
    check_shape(w_ih, "w_ih", (gates * h, x.shape[2]))
    out = []
    for i, b in enumerate(biases):
        b = be.float_array(b, f"bias {i}", ndim=1, dtype=x.dtype)
        check_shape(b, f"bias {i}", (gates * h,))
        out.append(b)
    return be.impl("rnn"), x, w_ih, w_hh, out


def rnn_forward(x, w_ih, w_hh, b, relu=False, return_sequences=False):
    """Elman RNN ``h_t = act(x_t @ w_ih.T + h_{t-1} @ w_hh.T + b)``, act tanh (or ReLU)."""
    impl, x, w_ih, w_hh, (b,) = _cells(x, w_ih, w_hh, (b,), 1)
    return impl.rnn_forward(x, w_ih, w_hh, b, bool(relu), bool(return_sequences))


def rnn_backward(dy, cache):
    """``(dx, dw_ih, dw_hh, db)`` for ``rnn_forward``'s ``cache``."""
    return backend(dy).impl("rnn").rnn_backward(dy, cache)


def lstm_forward(x, w_ih, w_hh, b, return_sequences=False):
    """LSTM as ``torch.nn.LSTM``; ``b`` is the combined bias (4H,)."""
    impl, x, w_ih, w_hh, (b,) = _cells(x, w_ih, w_hh, (b,), 4)
    return impl.lstm_forward(x, w_ih, w_hh, b, bool(return_sequences))


def lstm_backward(dy, cache):
    """``(dx, dw_ih, dw_hh, db)`` for ``lstm_forward``'s ``cache``."""
    return backend(dy).impl("rnn").lstm_backward(dy, cache)


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, return_sequences=False):
    """GRU as ``torch.nn.GRU``; ``b_ih`` and ``b_hh`` (3H,) as PyTorch keeps them."""
    impl, x, w_ih, w_hh, (b_ih, b_hh) = _cells(x, w_ih, w_hh, (b_ih, b_hh), 3)
    return impl.gru_forward(x, w_ih, w_hh, b_ih, b_hh, bool(return_sequences))


def gru_backward(dy, cache):
    """``(dx, dw_ih, dw_hh, db_ih, db_hh)`` for ``gru_forward``'s ``cache``."""
    return backend(dy).impl("rnn").gru_backward(dy, cache)
