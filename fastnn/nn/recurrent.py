"""Recurrent layers: SimpleRNN, LSTM, GRU (and Bidirectional) over batch-first sequences (N, T, F).

The cells follow PyTorch's equations and gate order, so weights copied from ``torch.nn.RNN``,
``torch.nn.LSTM`` or ``torch.nn.GRU`` (single layer, ``batch_first=True``) give the same results:

- ``weight_ih`` (G*units, F) and ``weight_hh`` (G*units, units), gates stacked as PyTorch does
  (LSTM: i, f, g, o; GRU: r, z, n), so ``x_t @ weight_ih.T`` projects an input;
- SimpleRNN and LSTM keep one combined ``bias`` (PyTorch's ``bias_ih + bias_hh``); GRU keeps
  ``bias_ih`` and ``bias_hh`` as PyTorch does, because the reset gate multiplies
  ``W_hn h + b_hn`` only.

Initialisation follows Keras: Glorot-uniform input weights, orthogonal recurrent weights (each
gate's (units, units) block is orthogonal), zero biases except the LSTM forget gate's, which
starts at 1.0 (``unit_forget_bias``) so that the cell remembers by default early in training.
The initial state is zero; the sequence length T may change from call to call, F may not.
Backpropagation runs through every time step. The layers run on the CPU or the GPU
(``model.to("cuda")``, ``fit(..., device="cuda")``) through the kernels
``fastnn.kernels.rnn_forward``, ``lstm_forward``, ``gru_forward`` and their backwards.
``Bidirectional(layer, merge="concat")`` runs a copy of a layer over the reversed sequence too.
"""
import numbers

import numpy as np

from .. import kernels as K
from .._kernels._device import is_cuda_array
from . import _array, init
from ._array import accumulate
from .base import Layer, claim_values
from .._kernels._validate import is_int


class _Recurrent(Layer):
    """Shared shape checks, parameter creation and gradient accumulation of the three cells."""

    _gates = 1  # gate blocks stacked in weight_ih / weight_hh
    _bias_vectors = 1  # bias vectors of G * units values

    def __init__(self, units, return_sequences=False):
        super().__init__()
        if not is_int(units) or units < 1:
            raise ValueError(f"{type(self).__name__}: units must be a positive int, got {units!r}")
        if not isinstance(return_sequences, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}: return_sequences must be a bool, "
                            f"got {return_sequences!r}")
        self.units = int(units)
        self.return_sequences = bool(return_sequences)
        self._cache = None
        self._y_shape = None

    # -- building ---------------------------------------------------------------------------
    def build(self, input_shape, rng=None, dtype=np.float32):
        """Create the parameters for per-sample input shape ``(T, F)`` (T may be None)."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"{self!r} expects input of shape (N, T, F), got per-sample shape "
                             f"{input_shape}")
        features = input_shape[1]
        if not isinstance(features, numbers.Integral) or features < 1:
            raise ValueError(f"{self!r} needs at least one input feature, got per-sample shape "
                             f"{input_shape}")
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"{self!r}: dtype must be float32 or float64, got {dtype}")
        rng = rng if rng is not None else self._init_rng()
        H, G = self.units, self._gates * self.units
        claim_values(self, G * (int(features) + H + self._bias_vectors))
        self._params = []
        self.weight_ih = self.add_parameter(
            "weight_ih", init.glorot_uniform((G, int(features)), rng, dtype))
        recurrent = np.concatenate(
            [init.orthogonal((H, H), rng, dtype) for _ in range(self._gates)], axis=0)
        self.weight_hh = self.add_parameter("weight_hh", recurrent)
        self._build_biases(dtype)
        self.input_shape = (None, int(features))
        self.built = True

    def _build_biases(self, dtype):
        self.bias = self.add_parameter(
            "bias", np.zeros(self._gates * self.units, dtype=dtype), decay=False)

    # -- running ----------------------------------------------------------------------------
    def _expected(self):
        features = self.input_shape[1] if self.built else "F"
        return f"(N, T, {features})"

    def _check_input(self, x):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = np.asarray(x)
        if len(x.shape) != 3:
            raise ValueError(f"{self!r} expects input of shape {self._expected()}, "
                             f"got {tuple(x.shape)}")
        if x.shape[1] < 1:
            raise ValueError(f"{self!r} needs at least one time step, got input of shape "
                             f"{tuple(x.shape)}")
        if self.built and x.shape[2] != self.input_shape[1]:
            raise ValueError(f"{self!r} was built for input of shape {self._expected()}, "
                             f"got {tuple(x.shape)}")
        return super()._check_input(x)

    @property
    def dtype(self):
        return np.dtype(self.weight_ih.data.dtype)

    def _forward(self, x, training):
        # Computed in the parameters' dtype (the dtype of the first input, unless built otherwise);
        # a CUDA input must already have it (no copies on the device).
        if is_cuda_array(x):
            self._check_dtype(x, "input")
        else:
            x = np.ascontiguousarray(x, dtype=self.dtype)
        y, self._cache = self._run(x)
        self._y_shape = tuple(y.shape)
        return y

    def _check_dtype(self, a, what):
        if np.dtype(a.dtype) != self.dtype:
            raise TypeError(f"{self!r} has {self.dtype} parameters; got a {np.dtype(a.dtype)} "
                            f"CUDA {what} (feed {self.dtype} on the GPU)")

    def _backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        if not is_cuda_array(dy):
            dy = np.asarray(dy)
        if tuple(dy.shape) != self._y_shape:
            raise ValueError(f"{self!r}.backward expects dy of shape {self._y_shape} (the shape "
                             f"of the last output), got {tuple(dy.shape)}")
        if is_cuda_array(dy):
            self._check_dtype(dy, "dy")
        else:
            dy = np.ascontiguousarray(dy, dtype=self.dtype)
        dx, *grads = self._run_backward(dy, self._cache)
        for p, g in zip(self._params, grads):
            accumulate(p.grad, g)
        return dx

    def _run(self, x):
        raise NotImplementedError

    def _run_backward(self, dy, cache):
        raise NotImplementedError


class SimpleRNN(_Recurrent):
    """Fully connected recurrence, ``h_t = act(x_t W_ih^T + h_{t-1} W_hh^T + b)``.

    As ``torch.nn.RNN(nonlinearity=activation)`` with ``bias = bias_ih + bias_hh``.
    ``activation``: ``"tanh"`` (default) or ``"relu"``. Output (N, units), or (N, T, units)
    with ``return_sequences=True``. Parameters: ``weight_ih``, ``weight_hh``, ``bias``.
    """

    _gates = 1
    _ACTIVATIONS = ("tanh", "relu")

    def __init__(self, units, return_sequences=False, activation="tanh"):
        super().__init__(units, return_sequences)
        if activation not in self._ACTIVATIONS:
            raise ValueError(f"SimpleRNN: activation must be one of {self._ACTIVATIONS}, "
                             f"got {activation!r}")
        self.activation = activation

    def _run(self, x):
        return K.rnn_forward(x, self.weight_ih.data, self.weight_hh.data,
                             self.bias.data, self.activation == "relu",
                             self.return_sequences)

    def _run_backward(self, dy, cache):
        return K.rnn_backward(dy, cache)


class LSTM(_Recurrent):
    """Long short-term memory, as ``torch.nn.LSTM`` (gates i, f, g, o) with one combined bias.

    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``. The forget-gate bias starts at 1.0
    (as Keras' ``unit_forget_bias``). Output (N, units), or (N, T, units) with
    ``return_sequences=True``. Parameters: ``weight_ih`` (4*units, F), ``weight_hh``
    (4*units, units), ``bias`` (4*units,) = PyTorch's ``bias_ih + bias_hh``.
    """

    _gates = 4

    def _build_biases(self, dtype):
        b = np.zeros(4 * self.units, dtype=dtype)
        b[self.units:2 * self.units] = 1
        self.bias = self.add_parameter("bias", b, decay=False)

    def _run(self, x):
        return K.lstm_forward(x, self.weight_ih.data, self.weight_hh.data,
                              self.bias.data, self.return_sequences)

    def _run_backward(self, dy, cache):
        return K.lstm_backward(dy, cache)


class GRU(_Recurrent):
    """Gated recurrent unit, as ``torch.nn.GRU`` (gates r, z, n; Keras' ``reset_after=True``).

    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h_t = (1 - z) * n + z * h_{t-1}``.
    Output (N, units), or (N, T, units) with ``return_sequences=True``. Parameters:
    ``weight_ih`` (3*units, F), ``weight_hh`` (3*units, units), ``bias_ih`` and ``bias_hh``
    (3*units,) as PyTorch's.
    """

    _gates = 3

    _bias_vectors = 2

    def _build_biases(self, dtype):
        self.bias_ih = self.add_parameter("bias_ih", np.zeros(3 * self.units, dtype), decay=False)
        self.bias_hh = self.add_parameter("bias_hh", np.zeros(3 * self.units, dtype), decay=False)

    def _run(self, x):
        return K.gru_forward(x, self.weight_ih.data, self.weight_hh.data,
                             self.bias_ih.data, self.bias_hh.data,
                             self.return_sequences)

    def _run_backward(self, dy, cache):
        return K.gru_backward(dy, cache)


class Bidirectional(Layer):
    """A recurrent layer run both ways over the sequence, as Keras' ``Bidirectional``.

    ``layer`` (a ``SimpleRNN``, ``LSTM`` or ``GRU``) is the template: ``forward_layer`` and
    ``backward_layer`` are two copies of its configuration with weights of their own (built
    when this layer builds; the template itself is never built or run). The backward copy reads
    the sequence reversed in time; with ``return_sequences=True`` its outputs are reversed back,
    so step t of the result holds both directions at t (``torch.nn.LSTM(bidirectional=True)``'s
    output); otherwise each direction gives its last state (the backward one's is the state at
    t = 0, torch's ``h_n[1]``). ``merge``: ``"concat"`` (forward then backward along the last
    axis: 2 * units features), ``"sum"`` or ``"ave"`` (units features).

    Parameters: the forward copy's, then the backward copy's (both in the model's flat buffer).
    """

    MERGES = ("concat", "sum", "ave")

    def __init__(self, layer, merge="concat"):
        super().__init__()
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got "
                            f"{type(layer).__name__}")
        if not isinstance(merge, str) or merge not in self.MERGES:
            raise ValueError(f"Bidirectional: merge must be one of {self.MERGES}, got {merge!r}")
        self.layer = layer.clone()
        self.merge = merge
        self.forward_layer = layer.clone()
        self.backward_layer = layer.clone()
        self._cache = None
        self._y_shape = None

    def get_config(self):
        return {"layer": self.layer.clone(), "merge": self.merge}

    def children(self):
        return [self.forward_layer, self.backward_layer]

    def parameters(self):
        return self.forward_layer.parameters() + self.backward_layer.parameters()

    def build(self, input_shape, rng=None, dtype=np.float32):
        """Build both copies for per-sample input shape ``(T, F)``, forward copy first."""
        rng = rng if rng is not None else self._init_rng()
        for child in self.children():
            child.build(input_shape, rng, dtype)
        self.input_shape = self.forward_layer.input_shape
        self.built = True

    def _move_buffers(self, device):
        self._cache = None
        for child in self.children():
            child._move_buffers(device)
            child.device = device

    def _forward(self, x, training):
        if not is_cuda_array(x):  # once in the parameters' dtype, for both directions
            x = np.ascontiguousarray(x, dtype=self.forward_layer.dtype)
        yf = self.forward_layer.forward(x, training)
        yb = self.backward_layer.forward(_array.reverse_steps(x), training)
        if self.layer.return_sequences:
            yb = _array.reverse_steps(yb)
        if self.merge == "concat":
            shape = tuple(yf.shape)   # a plain tuple (a device array's may refuse index -1)
            units = shape[-1]
            y = _array.empty_like(yf, shape[:-1] + (2 * units,))
            rows = _rows(yf)
            flat_y = y.reshape(rows, 2 * units)
            _array.put_channels(flat_y, yf.reshape(rows, units), 0)
            _array.put_channels(flat_y, yb.reshape(rows, units), units)
        else:
            y = _array.copy(yf)
            _array.accumulate(y, yb)
            if self.merge == "ave":
                _array.scale(y, 0.5)
        self._cache = tuple(yf.shape)
        self._y_shape = tuple(y.shape)
        return y

    def _backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        if not is_cuda_array(dy):
            dy = np.ascontiguousarray(dy)
        if tuple(dy.shape) != self._y_shape:
            raise ValueError(f"{self!r}.backward expects dy of shape {self._y_shape} (the shape "
                             f"of the last output), got {tuple(dy.shape)}")
        shape = self._cache
        if self.merge == "concat":
            rows, units = _rows(dy), shape[-1]
            flat_dy = dy.reshape(rows, 2 * units)
            dyf = _array.take_channels(flat_dy, 0, units).reshape(shape)
            dyb = _array.take_channels(flat_dy, units, units).reshape(shape)
        else:  # each direction's output entered the merge once (halved by "ave")
            dyf, dyb = _array.copy(dy), _array.copy(dy)
            if self.merge == "ave":
                _array.scale(dyf, 0.5)
                _array.scale(dyb, 0.5)
        if self.layer.return_sequences:
            dyb = _array.reverse_steps(dyb)
        dx = self.forward_layer.backward(dyf)
        _array.accumulate(dx, _array.reverse_steps(self.backward_layer.backward(dyb)))
        return dx


def _rows(a):
    """Rows of ``a`` seen as 2-D (every axis but the last)."""
    rows = 1
    for size in tuple(a.shape)[:-1]:
        rows *= int(size)
    return rows
