"""SimpleRNN, LSTM and GRU: naive references, gradients, PyTorch, dtypes, shapes, training."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._kernels.cpu import rnn as rnn_kernels
from fastnn.nn import Sequential
from fastnn.nn.recurrent import GRU, LSTM, SimpleRNN
from tests.gradients import check_layer_backward
from tests.naive import rnn as ref

CELLS = ["rnn", "rnn_relu", "lstm", "gru"]


def make(cell, units, return_sequences=False):
    if cell == "rnn":
        return SimpleRNN(units, return_sequences)
    if cell == "rnn_relu":
        return SimpleRNN(units, return_sequences, activation="relu")
    return {"lstm": LSTM, "gru": GRU}[cell](units, return_sequences)


def built(cell, units, features, dtype=np.float64, return_sequences=False, seed=0, scale=0.5):
    """A built layer whose parameters (biases included) are random in [-scale, scale]."""
    layer = make(cell, units, return_sequences)
    rng = np.random.default_rng(seed)
    layer.build((None, features), rng, dtype)
    for p in layer.parameters():
        p.data[...] = rng.uniform(-scale, scale, p.shape)
    return layer


def reference(layer, x):
    """Naive float64 output of ``layer`` on ``x`` (torch-style two biases)."""
    w_ih, w_hh = layer.weight_ih.data, layer.weight_hh.data
    if isinstance(layer, GRU):
        hs = ref.gru(x, w_ih, w_hh, layer.bias_ih.data, layer.bias_hh.data)
    else:
        zero = np.zeros_like(layer.bias.data)
        if isinstance(layer, LSTM):
            hs = ref.lstm(x, w_ih, w_hh, layer.bias.data, zero)
        else:
            hs = ref.rnn(x, w_ih, w_hh, layer.bias.data, zero, layer.activation)
    return hs if layer.return_sequences else hs[:, -1]


def inputs(shape, dtype=np.float64, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------------ forward vs naive

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_naive(cell, return_sequences, dtype):
    layer = built(cell, 5, 3, dtype, return_sequences)
    x = inputs((4, 6, 3), dtype)
    y = layer.forward(x)
    want = reference(layer, x)
    assert y.shape == want.shape == ((4, 6, 5) if return_sequences else (4, 5))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(y, want, **tol)


@given(cell=st.sampled_from(CELLS), n=st.integers(1, 4), t=st.integers(1, 5),
       f=st.integers(1, 4), h=st.integers(1, 5), return_sequences=st.booleans())
def test_forward_matches_naive_any_shape(cell, n, t, f, h, return_sequences):
    layer = built(cell, h, f, np.float64, return_sequences, seed=n * 7 + t)
    x = inputs((n, t, f), seed=f + h)
    np.testing.assert_allclose(layer.forward(x), reference(layer, x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ gradients

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_gradients_float64(cell, return_sequences):
    layer = built(cell, 3, 2, np.float64, return_sequences, scale=0.8)
    x = inputs((2, 4, 2))
    check_layer_backward(layer, x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_backward_accumulates(cell):
    layer = built(cell, 4, 3)
    x = inputs((2, 5, 3))
    dy = inputs((2, 4), seed=2)
    layer.forward(x)
    dx1 = layer.backward(dy)
    first = [p.grad.copy() for p in layer.parameters()]
    dx2 = layer.backward(dy)
    np.testing.assert_array_equal(dx1, dx2)
    for p, g in zip(layer.parameters(), first):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-14)
        assert np.any(g != 0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_parallel_kernels_match_serial(cell, return_sequences, monkeypatch):
    x = inputs((6, 4, 3))
    results = []
    for threshold in (1 << 62, 1):
        monkeypatch.setattr(rnn_kernels, "PARALLEL_MIN", threshold)
        layer = built(cell, 5, 3, return_sequences=return_sequences)
        y = layer.forward(x)
        dx = layer.backward(inputs(y.shape, seed=3))
        results.append([y, dx] + [p.grad for p in layer.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------------- PyTorch

def torch_pair(cell, features, units, dtype, return_sequences, seed=0):
    """A torch module and a fastnn layer holding the same weights."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    if cell.startswith("rnn"):
        module = torch.nn.RNN(features, units, batch_first=True,
                              nonlinearity="relu" if cell == "rnn_relu" else "tanh")
    else:
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](features, units,
                                                                   batch_first=True)
    module = module.to(tdtype)
    layer = make(cell, units, return_sequences)
    layer.build((None, features), np.random.default_rng(seed), dtype)
    w = {k: v.detach().numpy() for k, v in module.named_parameters()}
    layer.weight_ih.data[...] = w["weight_ih_l0"]
    layer.weight_hh.data[...] = w["weight_hh_l0"]
    if cell == "gru":
        layer.bias_ih.data[...] = w["bias_ih_l0"]
        layer.bias_hh.data[...] = w["bias_hh_l0"]
    else:
        layer.bias.data[...] = w["bias_ih_l0"] + w["bias_hh_l0"]
    return torch, module, layer


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch(cell, return_sequences, dtype):
    torch, module, layer = torch_pair(cell, 4, 6, dtype, return_sequences)
    x = inputs((3, 7, 4), dtype)
    y = layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    out = module(xt)[0]
    out = out if return_sequences else out[:, -1]
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y, out.detach().numpy(), **tol)

    dy = inputs(y.shape, dtype, seed=5)
    dx = layer.backward(dy)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    g = {k: v.grad.numpy() for k, v in module.named_parameters()}
    np.testing.assert_allclose(layer.weight_ih.grad, g["weight_ih_l0"], **tol)
    np.testing.assert_allclose(layer.weight_hh.grad, g["weight_hh_l0"], **tol)
    if cell == "gru":
        np.testing.assert_allclose(layer.bias_ih.grad, g["bias_ih_l0"], **tol)
        np.testing.assert_allclose(layer.bias_hh.grad, g["bias_hh_l0"], **tol)
    else:  # the combined bias gets the gradient of either torch bias
        np.testing.assert_allclose(layer.bias.grad, g["bias_ih_l0"], **tol)


# ------------------------------------------------------------------------ dtypes and shapes

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_dtype_preserved(cell, dtype, return_sequences):
    layer = make(cell, 4, return_sequences)
    x = inputs((2, 3, 5), dtype)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == dtype
    for p in layer.parameters():
        assert p.data.dtype == p.grad.dtype == dtype
        assert np.all(np.isfinite(p.grad))


def test_other_dtype_input_uses_parameter_dtype():
    layer = LSTM(3)
    layer.forward(inputs((2, 4, 2), np.float32))
    y = layer.forward(inputs((2, 4, 2), np.float64))
    assert y.dtype == np.float32
    assert layer.backward(np.ones((2, 3))).dtype == np.float32


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_wrong_input_shapes(cls):
    name = cls.__name__
    layer = cls(3)
    with pytest.raises(ValueError, match=rf"{name}\(.*\(N, T, F\)"):
        layer.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=rf"{name}\(.*\(N, T, F\)"):
        layer.forward(np.zeros((2, 4, 3, 1), np.float32))
    assert not layer.built
    layer.forward(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match=rf"{name}\(.*\(N, T, 5\)"):
        layer.forward(np.zeros((2, 4, 6), np.float32))
    with pytest.raises(ValueError, match=rf"{name}\(.*\(N, T, 5\)"):
        layer.forward(np.zeros((8, 5), np.float32))
    with pytest.raises(ValueError, match="time step"):
        layer.forward(np.zeros((2, 0, 5), np.float32))
    layer.forward(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match=rf"{name}\(.*dy of shape \(2, 3\)"):
        layer.backward(np.zeros((2, 4, 3), np.float32))


def test_backward_before_forward_and_bad_arguments():
    with pytest.raises(RuntimeError, match="before forward"):
        LSTM(2).backward(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="units"):
        GRU(0)
    with pytest.raises(ValueError, match="units"):
        LSTM(2.5)
    with pytest.raises(TypeError, match="return_sequences"):
        LSTM(2, return_sequences="yes")
    with pytest.raises(ValueError, match="activation"):
        SimpleRNN(2, activation="sigmoid")
    with pytest.raises(TypeError, match="float"):
        GRU(2).forward(np.zeros((1, 2, 3), np.int64))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sequence_length_may_change(cell):
    layer = built(cell, 4, 3, return_sequences=True)
    for t in (5, 2, 9):
        x = inputs((3, t, 3), seed=t)
        y = layer.forward(x)
        assert y.shape == (3, t, 4)
        np.testing.assert_allclose(y, reference(layer, x), rtol=1e-12, atol=1e-12)
        assert layer.backward(np.ones_like(y)).shape == x.shape


def test_noncontiguous_input():
    layer = built("lstm", 4, 3)
    x = inputs((6, 3, 5))[::2].transpose(0, 2, 1)  # (3, 5, 3), not contiguous
    assert not x.flags.c_contiguous
    np.testing.assert_allclose(layer.forward(x), reference(layer, x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- init, config, Sequential

@pytest.mark.parametrize("cls,gates", [(SimpleRNN, 1), (LSTM, 4), (GRU, 3)])
def test_initialisation(cls, gates):
    layer = cls(6)
    layer.build((None, 10), np.random.default_rng(0), np.float64)
    w_ih, w_hh = layer.weight_ih.data, layer.weight_hh.data
    assert w_ih.shape == (gates * 6, 10) and w_hh.shape == (gates * 6, 6)
    assert np.abs(w_ih).max() <= np.sqrt(6 / (10 + gates * 6))
    for k in range(gates):  # each gate's recurrent block is orthogonal
        block = w_hh[6 * k:6 * (k + 1)]
        np.testing.assert_allclose(block @ block.T, np.eye(6), atol=1e-12)
    biases = [p for p in layer.parameters() if "bias" in p.name]
    assert all(not p.decay for p in biases)
    assert layer.weight_ih.decay and layer.weight_hh.decay
    if cls is LSTM:
        np.testing.assert_array_equal(layer.bias.data, np.repeat([0.0, 1.0, 0.0, 0.0], 6))
    else:
        assert all(np.all(p.data == 0) for p in biases)


def test_config_clone_and_seed():
    layer = SimpleRNN(3, return_sequences=True, activation="relu")
    assert layer.get_config() == {"units": 3, "return_sequences": True, "activation": "relu"}
    twin = layer.clone()
    assert repr(twin) == repr(layer) and not twin.built
    a = Sequential(LSTM(4), seed=3)
    b = Sequential(LSTM(4), seed=3)
    x = inputs((2, 3, 2), np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


def test_in_sequential_with_flat_buffer():
    model = Sequential(LSTM(4, return_sequences=True), GRU(3, return_sequences=True),
                       SimpleRNN(2), seed=0)
    x = inputs((3, 5, 2), np.float32)
    y = model.forward(x, training=True)
    assert y.shape == (3, 2) and model.flat is not None
    model.zero_grad()
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32
    flat = model.flat.grad.copy()
    assert np.all(np.isfinite(flat)) and np.count_nonzero(flat) > 0.9 * flat.size
    # The flat gradient holds exactly what each layer's own backward produces.
    per_layer = []
    h = x
    for layer in model.layers:
        h = layer.forward(h)
    dy = np.ones_like(h)
    for layer in reversed(model.layers):
        for p in layer.parameters():
            p.grad[...] = 0
        dy = layer.backward(dy)
        per_layer = [p.grad.copy() for p in layer.parameters()] + per_layer
    np.testing.assert_allclose(np.concatenate([g.ravel() for g in per_layer]), flat, rtol=1e-6)


# -------------------------------------------------------------------------------- training

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_learns_to_sum_a_sequence(cell):
    """A recurrent layer plus a linear readout learns y = sum_t x_t with Adam."""
    rng = np.random.default_rng(0)
    layer = make(cell, 8)
    x = rng.uniform(-0.5, 0.5, (128, 6, 1)).astype(np.float32)
    target = x.sum(axis=(1, 2))[:, None]
    h = layer.forward(x)
    w = (rng.standard_normal((8, 1)) * 0.3).astype(np.float32)
    c = np.zeros(1, np.float32)
    params = layer.parameters()
    state = [(np.zeros_like(a), np.zeros_like(a)) for a in [p.data for p in params] + [w, c]]
    losses = []
    for step in range(1, 301):
        for p in params:
            p.grad[...] = 0
        h = layer.forward(x, training=True)
        err = h @ w + c - target
        losses.append(float(np.mean(err ** 2)))
        dout = (2 / len(x)) * err
        grads = [None] * len(params) + [h.T @ dout, dout.sum(0)]
        layer.backward(dout @ w.T)
        grads[:len(params)] = [p.grad for p in params]
        for a, g, (m, v) in zip([p.data for p in params] + [w, c], grads, state):
            m[...] = 0.9 * m + 0.1 * g
            v[...] = 0.999 * v + 0.001 * g * g
            a -= (0.01 * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
                  ).astype(a.dtype)
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
