"""Bidirectional around SimpleRNN, LSTM and GRU: references, PyTorch, gradients, saving."""
import copy
import pickle

import numpy as np
import pytest

import fastnn
from fastnn.nn import Bidirectional, Dense, Layer, Sequential
from fastnn.nn.layers import Conv1D
from fastnn.nn.recurrent import GRU, LSTM, SimpleRNN
from fastnn.testing import gradcheck
from tests.gradients import check_layer_backward
from tests.naive import rnn as ref

CELLS = ["rnn", "lstm", "gru"]
MERGES = ["concat", "sum", "ave"]


def make(cell, units, return_sequences=False):
    return {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[cell](units, return_sequences)


def built(cell, units, features, merge="concat", return_sequences=False, dtype=np.float64,
          seed=0, scale=0.5):
    """A built Bidirectional whose parameters (biases included) are random in [-scale, scale]."""
    layer = Bidirectional(make(cell, units, return_sequences), merge=merge)
    rng = np.random.default_rng(seed)
    layer.build((None, features), rng, dtype)
    for p in layer.parameters():
        p.data[...] = rng.uniform(-scale, scale, p.shape)
    return layer


class Transpose(Layer):
    """(N, C, L) -> (N, L, C): a convolution's output as a sequence."""

    def _forward(self, x, training):
        return np.ascontiguousarray(x.transpose(0, 2, 1))

    def _backward(self, dy):
        return np.ascontiguousarray(dy.transpose(0, 2, 1))


def inputs(shape, dtype=np.float64, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def one_way(layer, x):
    """Naive float64 hidden states (N, T, H) of a recurrent layer."""
    w_ih, w_hh = layer.weight_ih.data, layer.weight_hh.data
    if isinstance(layer, GRU):
        return ref.gru(x, w_ih, w_hh, layer.bias_ih.data, layer.bias_hh.data)
    zero = np.zeros_like(layer.bias.data)
    if isinstance(layer, LSTM):
        return ref.lstm(x, w_ih, w_hh, layer.bias.data, zero)
    return ref.rnn(x, w_ih, w_hh, layer.bias.data, zero, layer.activation)


def reference(bi, x):
    hf = one_way(bi.forward_layer, x)
    hb = one_way(bi.backward_layer, x[:, ::-1])[:, ::-1]   # back in time order
    if bi.layer.return_sequences:
        a, b = hf, hb
    else:
        a, b = hf[:, -1], hb[:, 0]                         # the backward pass ends at t = 0
    return {"concat": np.concatenate([a, b], axis=-1), "sum": a + b, "ave": (a + b) / 2}[bi.merge]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("merge", MERGES)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_naive(cell, merge, return_sequences, dtype):
    layer = built(cell, 4, 3, merge, return_sequences, dtype)
    x = inputs((3, 5, 3), dtype)
    y = layer.forward(x)
    width = 8 if merge == "concat" else 4
    assert y.shape == ((3, 5, width) if return_sequences else (3, width)) and y.dtype == dtype
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(y, reference(layer, x), **tol)
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == dtype
    assert all(p.grad.dtype == dtype for p in layer.parameters())


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("merge", MERGES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_gradients_float64(cell, merge, return_sequences):
    layer = built(cell, 3, 2, merge, return_sequences, scale=0.8)
    x = inputs((2, 4, 2))
    check_layer_backward(layer, x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch_bidirectional(cell, return_sequences, dtype):
    """``torch.nn.LSTM(bidirectional=True)`` (and RNN, GRU) with the weights copied across."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    features, units = 3, 5
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    module = cls(features, units, batch_first=True, bidirectional=True)
    module = module.to(torch.float64 if dtype == np.float64 else torch.float32)
    layer = Bidirectional(make(cell, units, return_sequences))
    layer.build((None, features), np.random.default_rng(0), dtype)
    w = {k: v.detach().numpy() for k, v in module.named_parameters()}
    for half, suffix in ((layer.forward_layer, "_l0"), (layer.backward_layer, "_l0_reverse")):
        half.weight_ih.data[...] = w["weight_ih" + suffix]
        half.weight_hh.data[...] = w["weight_hh" + suffix]
        if cell == "gru":
            half.bias_ih.data[...] = w["bias_ih" + suffix]
            half.bias_hh.data[...] = w["bias_hh" + suffix]
        else:
            half.bias.data[...] = w["bias_ih" + suffix] + w["bias_hh" + suffix]
    x = inputs((4, 6, features), dtype)
    y = layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    out = module(xt)[0]                                      # (N, T, 2 * units)
    if not return_sequences:                                 # each direction's last state
        out = torch.cat([out[:, -1, :units], out[:, 0, units:]], dim=1)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y, out.detach().numpy(), **tol)

    dy = inputs(y.shape, dtype, seed=5)
    dx = layer.backward(dy)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    g = {k: v.grad.numpy() for k, v in module.named_parameters()}
    for half, suffix in ((layer.forward_layer, "_l0"), (layer.backward_layer, "_l0_reverse")):
        np.testing.assert_allclose(half.weight_ih.grad, g["weight_ih" + suffix], **tol)
        np.testing.assert_allclose(half.weight_hh.grad, g["weight_hh" + suffix], **tol)
        if cell == "gru":
            np.testing.assert_allclose(half.bias_hh.grad, g["bias_hh" + suffix], **tol)
        else:
            np.testing.assert_allclose(half.bias.grad, g["bias_ih" + suffix], **tol)


def test_gradcheck_in_a_model():
    model = Sequential(Conv1D(3, 2, padding="causal"), Transpose(),
                       Bidirectional(GRU(3, return_sequences=True)),
                       Bidirectional(LSTM(2), merge="sum"), Dense(2), seed=1)
    assert gradcheck(model, inputs((2, 3, 4)))


# ------------------------------------------------------------------- building, config, saving

def test_two_copies_with_their_own_weights():
    template = LSTM(4, return_sequences=True)
    layer = Bidirectional(template)
    y = layer.forward(inputs((2, 3, 5), np.float32))
    assert y.shape == (2, 3, 8) and not template.built
    assert layer.forward_layer is not layer.backward_layer
    assert not np.array_equal(layer.forward_layer.weight_ih.data,
                              layer.backward_layer.weight_ih.data)
    names = [p.name for p in layer.parameters()]
    assert names == ["LSTM.weight_ih", "LSTM.weight_hh", "LSTM.bias"] * 2
    assert layer.get_config()["merge"] == "concat"
    assert repr(layer.clone()) == repr(layer) and not layer.clone().built


def test_in_sequential_flat_buffer_and_fit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 2)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64)          # needs the first step: the backward direction
    model = Sequential(Bidirectional(SimpleRNN(8)), Dense(2), seed=0)
    history = fastnn.nn.fit(model, x, y, epochs=30, batch_size=8, seed=0, lr=0.01)
    assert model.flat is not None
    assert model.flat.size == sum(p.size for p in model.parameters()) == 2 * (8 * 2 + 64 + 8) + 16 * 2 + 2
    assert history["loss"][-1] < history["loss"][0]


@pytest.mark.parametrize("merge", MERGES)
def test_save_load_round_trip(merge, tmp_path):
    x = inputs((3, 5, 2), np.float32)
    model = Sequential(Bidirectional(GRU(4, return_sequences=True), merge=merge),
                       Bidirectional(LSTM(3)), Dense(2), seed=0)
    y = model.predict(x)
    fastnn.save(model, tmp_path / "bi.npz")
    loaded = fastnn.load(tmp_path / "bi.npz")
    assert isinstance(loaded[0], Bidirectional) and loaded[0].merge == merge
    assert isinstance(loaded[0].layer, GRU) and loaded[0].layer.return_sequences
    np.testing.assert_array_equal(loaded.predict(x), y)
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        np.testing.assert_array_equal(clone.predict(x), y)


def test_errors():
    with pytest.raises(TypeError, match="SimpleRNN, LSTM or GRU"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match="merge"):
        Bidirectional(LSTM(3), merge="mul")
    layer = Bidirectional(GRU(2))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\(N, T, F\)"):
        layer.forward(np.zeros((2, 3), np.float32))
    layer.forward(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"dy of shape \(2, 4\)"):
        layer.backward(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(N, \*, 4\)|\(N, T, 4\)"):
        layer.forward(np.zeros((2, 3, 5), np.float32))
