"""Recurrent cells and layers on CUDA arrays: the same results as the CPU kernels and layers.

Under the simulator (CI) and unchanged on real hardware (FASTNN_REAL_GPU=1). Shapes are tiny.
"""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
import fastnn.nn as nn
from cuda_helpers import to_host

pytestmark = pytest.mark.cuda

CELLS = ["rnn", "rnn_relu", "lstm", "gru"]
GATES = {"rnn": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _tol(dtype):
    # a few steps of recurrence: rounding of float32 sums in another order compounds a little
    return dict(rtol=1e-4, atol=1e-5) if np.dtype(dtype) == np.float32 else \
        dict(rtol=1e-10, atol=1e-12)


def _args(cell, dtype, n=2, t=3, f=2, h=3, seed=0):
    rng = np.random.default_rng(seed)
    g = GATES[cell] * h
    x = rng.standard_normal((n, t, f)).astype(dtype)
    w_ih = rng.uniform(-0.6, 0.6, (g, f)).astype(dtype)
    w_hh = rng.uniform(-0.6, 0.6, (g, h)).astype(dtype)
    biases = [rng.uniform(-0.5, 0.5, g).astype(dtype) for _ in range(2 if cell == "gru" else 1)]
    return x, w_ih, w_hh, biases


def _forward(cell, arrays, return_sequences):
    x, w_ih, w_hh, biases = arrays
    if cell.startswith("rnn"):
        return K.rnn_forward(x, w_ih, w_hh, biases[0], cell == "rnn_relu", return_sequences)
    fn = K.lstm_forward if cell == "lstm" else K.gru_forward
    return fn(x, w_ih, w_hh, *biases, return_sequences=return_sequences)


def _backward(cell, dy, cache):
    return {"rnn": K.rnn_backward, "rnn_relu": K.rnn_backward, "lstm": K.lstm_backward,
            "gru": K.gru_backward}[cell](dy, cache)


def _on_device(arrays):
    x, w_ih, w_hh, biases = arrays
    return cuda.to_device(x), cuda.to_device(w_ih), cuda.to_device(w_hh), \
        [cuda.to_device(b) for b in biases]


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("cell", CELLS)
def test_cell_matches_cpu(cell, return_sequences, dtype):
    host = _args(cell, dtype)
    y, cache = _forward(cell, host, return_sequences)
    yd, cached = _forward(cell, _on_device(host), return_sequences)
    assert yd.dtype == dtype and tuple(yd.shape) == y.shape
    np.testing.assert_allclose(to_host(yd), y, **_tol(dtype))
    dy = np.random.default_rng(5).standard_normal(y.shape).astype(dtype)
    grads = _backward(cell, dy, cache)
    gradd = _backward(cell, cuda.to_device(dy), cached)
    assert len(gradd) == len(grads)
    for name, a, b in zip(["dx", "dw_ih", "dw_hh", "db", "db_hh"], grads, gradd):
        b = to_host(b)
        assert b.dtype == dtype and b.shape == a.shape, name
        np.testing.assert_allclose(b, a, err_msg=name, **_tol(dtype))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_single_step_and_single_unit(cell):
    host = _args(cell, np.float64, n=3, t=1, f=1, h=1, seed=2)
    y, cache = _forward(cell, host, True)
    yd, cached = _forward(cell, _on_device(host), True)
    np.testing.assert_allclose(to_host(yd), y, **_tol(np.float64))
    dy = np.ones_like(y)
    for a, b in zip(_backward(cell, dy, cache), _backward(cell, cuda.to_device(dy), cached)):
        np.testing.assert_allclose(to_host(b), a, **_tol(np.float64))


def test_backward_checks_dy_and_cache():
    host = _args("lstm", np.float32)
    y, cache = _forward("lstm", _on_device(host), False)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3\)"):
        K.lstm_backward(cuda.to_device(np.zeros((2, 3, 3), np.float32)), cache)
    with pytest.raises(TypeError, match="dtype float32"):
        K.lstm_backward(cuda.to_device(np.zeros((2, 3), np.float64)), cache)
    with pytest.raises(TypeError, match="lstm_forward"):
        K.gru_backward(cuda.to_device(np.zeros((2, 3), np.float32)), cache)
    # the backward pass runs where the forward pass ran: a host dy is copied to the device
    dx = K.lstm_backward(np.ones((2, 3), np.float32), cache)[0]
    assert type(dx) is not np.ndarray and tuple(dx.shape) == (2, 3, 2)


def _layer(cell, units=3, return_sequences=False):
    if cell == "rnn_relu":
        return nn.SimpleRNN(units, return_sequences, activation="relu")
    return {"rnn": nn.SimpleRNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](units, return_sequences)


def _sequences(n=6, t=3, f=2, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, t, f)).astype(dtype), rng.integers(0, 2, n)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_layer_on_cuda_predicts_as_on_cpu(cell):
    x, _ = _sequences()
    a = nn.Sequential(_layer(cell, return_sequences=True), _layer(cell), nn.Dense(2), seed=3)
    b = nn.Sequential(_layer(cell, return_sequences=True), _layer(cell), nn.Dense(2), seed=3)
    a.build(x.shape[1:])
    b.build(x.shape[1:])
    b.to("cuda")
    assert b[0].device == "cuda" and type(b[0].weight_hh.data) is not np.ndarray
    out = b.predict(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, a.predict(x), rtol=1e-4, atol=1e-5)
    # the layer alone, forward and backward on device arrays
    layer = b[0]
    xd = cuda.to_device(x)
    y = layer.forward(xd, training=True)
    assert tuple(y.shape) == (6, 3, 3)
    dx = layer.backward(cuda.to_device(np.ones((6, 3, 3), np.float32)))
    assert tuple(dx.shape) == x.shape and type(dx) is not np.ndarray
    with pytest.raises(TypeError, match="float32"):
        layer.forward(cuda.to_device(x.astype(np.float64)))
    with pytest.raises(ValueError, match="CUDA array|NumPy array"):
        a[0].forward(xd)


def _same_params(a, b, **tol):
    assert a.device == "cpu" and b.device == "cuda"
    for p, q in zip(a.parameters(), b.parameters()):
        assert type(q.data) is not np.ndarray
        np.testing.assert_allclose(to_host(q.data), p.data, err_msg=p.name, **tol)


def test_lstm_dense_fit_on_cuda_matches_cpu():
    x, y = _sequences(8)
    a = nn.Sequential(nn.LSTM(3), nn.Dense(2), seed=1)
    b = nn.Sequential(nn.LSTM(3), nn.Dense(2), seed=1)
    kw = dict(epochs=2, batch_size=4, seed=2, lr=0.05)
    ha = nn.fit(a, x, y, **kw)
    hb = nn.fit(b, x, y, device="cuda", **kw)
    _same_params(a, b, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(hb["loss"], ha["loss"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b.predict(x), a.predict(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_fit_float64_on_cuda_matches_cpu(cell):
    x, _ = _sequences(6, dtype=np.float64)
    target = x.sum(axis=(1, 2))[:, None]
    a = nn.Sequential(_layer(cell, return_sequences=True), nn.Flatten(), nn.Dense(1), seed=4)
    b = nn.Sequential(_layer(cell, return_sequences=True), nn.Flatten(), nn.Dense(1), seed=4)
    kw = dict(loss="mse", epochs=2, batch_size=3, seed=5, lr=0.05)
    nn.fit(a, x, target, **kw)
    nn.fit(b, x, target, device="cuda", **kw)
    _same_params(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("merge,return_sequences", [("concat", True), ("sum", False),
                                                    ("ave", True), ("concat", False)])
def test_bidirectional_on_cuda_matches_cpu(merge, return_sequences):
    """Bidirectional on device arrays: the time reversal and the merge run on the GPU."""
    x, _ = _sequences(n=3, t=4, f=2)
    a = nn.Bidirectional(nn.GRU(3, return_sequences=return_sequences), merge=merge)
    a.build(x.shape[1:], np.random.default_rng(0))
    b = a.clone()
    b.build(x.shape[1:], np.random.default_rng(0))
    b.to("cuda")
    assert b.forward_layer.device == b.backward_layer.device == "cuda"
    y = a.forward(x, training=True)
    yd = b.forward(cuda.to_device(x), training=True)
    assert type(yd) is not np.ndarray and tuple(yd.shape) == y.shape
    np.testing.assert_allclose(to_host(yd), y, **_tol(np.float32))
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx = a.backward(dy)
    dxd = b.backward(cuda.to_device(dy))
    np.testing.assert_allclose(to_host(dxd), dx, **_tol(np.float32))
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(to_host(q.grad), p.grad, err_msg=p.name, **_tol(np.float32))


def test_bidirectional_fit_on_cuda_matches_cpu():
    x, y = _sequences(8, t=3)
    a = nn.Sequential(nn.Bidirectional(nn.LSTM(3, return_sequences=True)),
                      nn.Bidirectional(nn.SimpleRNN(2)), nn.Dense(2), seed=1)
    b = nn.Sequential(nn.Bidirectional(nn.LSTM(3, return_sequences=True)),
                      nn.Bidirectional(nn.SimpleRNN(2)), nn.Dense(2), seed=1)
    kw = dict(epochs=2, batch_size=4, seed=2, lr=0.05)
    nn.fit(a, x, y, **kw)
    nn.fit(b, x, y, device="cuda", **kw)
    _same_params(a, b, rtol=2e-4, atol=2e-5)
