"""Recurrent cells (SimpleRNN, LSTM, GRU) with PyTorch's equations, batch first.

``x`` (N, T, F); ``w_ih`` (G*H, F), ``w_hh`` (G*H, H), biases (G*H,), gates stacked in PyTorch's
order (LSTM i, f, g, o; GRU r, z, n; G = 1, 4, 3). ``*_forward`` returns ``(y, cache)``: ``y``
the last hidden state (N, H), or every one (N, T, H) with ``return_sequences``;
``*_backward(dy, cache)`` returns ``dx`` and the parameter gradients in argument order. NumPy
arrays run on the CPU (``fastnn._kernels.cpu.rnn``), CUDA arrays on the GPU
(``fastnn._kernels.cuda.rnn``, device arrays out). The cache remembers its backend: the backward
pass runs where the forward pass ran (``dy`` is copied there if needed) and checks ``dy``'s shape
and dtype against the forward output.
"""
from ._dispatch import backend, device_backend
from ._validate import check_shape


class RecurrentCache:
    """A forward pass's cache: the backend's own cache, and what checks ``dy`` for it."""

    __slots__ = ("cell", "device", "dtype", "y_shape", "inner")

    def __init__(self, cell, device, dtype, y_shape, inner):
        self.cell = cell
        self.device = device
        self.dtype = dtype
        self.y_shape = tuple(y_shape)
        self.inner = inner


def _cells(x, w_ih, w_hh, biases, gates):
    """Validated C-contiguous arrays of one float dtype, and the backend."""
    be = backend(x, w_ih, w_hh, *biases)
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
    return be, x, w_ih, w_hh, out


def _wrap(cell, be, x, result):
    y, inner = result
    return y, RecurrentCache(cell, be.name, x.dtype, y.shape, inner)


def _backward(cell, dy, cache):
    """The backend's ``<cell>_backward`` on ``dy`` checked against the forward output."""
    if not isinstance(cache, RecurrentCache) or cache.cell != cell:
        got = (f"the cache of {cache.cell}_forward" if isinstance(cache, RecurrentCache)
               else type(cache).__name__)
        raise TypeError(f"{cell}_backward needs the cache returned by {cell}_forward, got {got}")
    be = device_backend(cache.device)
    dy = be.float_array(dy, "dy", dtype=cache.dtype)
    check_shape(dy, "dy", cache.y_shape)
    return getattr(be.impl("rnn"), f"{cell}_backward")(dy, cache.inner)


def rnn_forward(x, w_ih, w_hh, b, relu=False, return_sequences=False):
    """Elman RNN ``h_t = act(x_t @ w_ih.T + h_{t-1} @ w_hh.T + b)``, act tanh (or ReLU)."""
    be, x, w_ih, w_hh, (b,) = _cells(x, w_ih, w_hh, (b,), 1)
    y_cache = be.impl("rnn").rnn_forward(x, w_ih, w_hh, b, bool(relu), bool(return_sequences))
    return _wrap("rnn", be, x, y_cache)


def rnn_backward(dy, cache):
    """``(dx, dw_ih, dw_hh, db)`` for ``rnn_forward``'s ``cache``."""
    return _backward("rnn", dy, cache)


def lstm_forward(x, w_ih, w_hh, b, return_sequences=False):
    """LSTM as ``torch.nn.LSTM``; ``b`` is the combined bias (4H,)."""
    be, x, w_ih, w_hh, (b,) = _cells(x, w_ih, w_hh, (b,), 4)
    y_cache = be.impl("rnn").lstm_forward(x, w_ih, w_hh, b, bool(return_sequences))
    return _wrap("lstm", be, x, y_cache)


def lstm_backward(dy, cache):
    """``(dx, dw_ih, dw_hh, db)`` for ``lstm_forward``'s ``cache``."""
    return _backward("lstm", dy, cache)


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, return_sequences=False):
    """GRU as ``torch.nn.GRU``; ``b_ih`` and ``b_hh`` (3H,) as PyTorch keeps them."""
    be, x, w_ih, w_hh, (b_ih, b_hh) = _cells(x, w_ih, w_hh, (b_ih, b_hh), 3)
    y_cache = be.impl("rnn").gru_forward(x, w_ih, w_hh, b_ih, b_hh, bool(return_sequences))
    return _wrap("gru", be, x, y_cache)


def gru_backward(dy, cache):
    """``(dx, dw_ih, dw_hh, db_ih, db_hh)`` for ``gru_forward``'s ``cache``."""
    return _backward("gru", dy, cache)
