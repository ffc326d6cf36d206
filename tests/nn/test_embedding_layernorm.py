"""The Embedding and LayerNorm layers: gradient checks, PyTorch's layers, save/load, and fit,
evaluate and predict on integer codes."""
import numpy as np
import pytest

import fastnn
from fastnn.nn import Dense, Embedding, Flatten, LayerNorm, ReLU, Sequential, evaluate, fit, predict
from fastnn.testing import gradcheck


def codes(shape, high, seed=0):
    return np.random.default_rng(seed).integers(0, high, shape)


def normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- gradient checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("make,x", [
    (lambda: LayerNorm(), normal((3, 5))),
    (lambda: LayerNorm((3, 4)), normal((2, 3, 4))),
    (lambda: LayerNorm(4, eps=1e-3), normal((2, 3, 4))),
    (lambda: LayerNorm(elementwise_affine=False), normal((3, 2, 6))),
], ids=["last_axis", "two_axes", "int_shape", "no_affine"])
def test_layer_norm_gradients(make, x):
    layer = make()
    assert gradcheck(layer, x)
    assert all(p.data.dtype == np.float64 for p in layer.parameters())


# The padding row gets no gradient though the lookup reads it (torch's rule): central
# differences would disagree there, so these codes avoid the padding index.
@pytest.mark.parametrize("make,x", [
    (lambda: Embedding(6, 3), codes((4, 5), 6)),
    (lambda: Embedding(6, 3, padding_idx=5), codes((4, 5), 5)),
    (lambda: Embedding(5, 2), codes((7,), 5)),
    (lambda: Sequential(Embedding(7, 4, padding_idx=0), LayerNorm(), Flatten(), Dense(3),
                        seed=0), codes((5, 3), 6) + 1),
], ids=["embedding", "padding", "one_code_per_sample", "model"])
def test_embedding_gradients(make, x):
    model = make()
    assert gradcheck(model, x)   # integer codes: the parameters' gradients only
    assert all(p.data.dtype == np.float64 for p in model.parameters())


def test_padding_row_gets_no_gradient():
    layer = Embedding(4, 3, padding_idx=1, seed=0)
    x = np.array([[1, 2, 1], [0, 1, 3]])
    layer.forward(x, training=True)
    layer.backward(np.ones((2, 3, 3), np.float32))
    np.testing.assert_array_equal(layer.weight.grad[1], 0)
    np.testing.assert_array_equal(layer.weight.grad[[0, 2, 3]], 1)


# -- against PyTorch ----------------------------------------------------------------------------
def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    x = normal((4, 3, 6)).astype(np.float32)
    dy = normal((4, 3, 6), seed=1).astype(np.float32)
    ours = LayerNorm(eps=1e-4)
    y = ours.forward(x, training=True)
    ours.gamma.data[...] = np.linspace(0.5, 2, 6, dtype=np.float32)
    ours.beta.data[...] = np.linspace(-1, 1, 6, dtype=np.float32)
    theirs = torch.nn.LayerNorm(6, eps=1e-4)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.gamma.data))
        theirs.bias.copy_(torch.tensor(ours.beta.data))
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(dy))
    y = ours.forward(x, training=True)
    dx = ours.backward(dy)
    assert y.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.gamma.grad, theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.beta.grad, theirs.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    x = codes((6, 4), 10)
    x[0, :2] = 3
    ours = Embedding(10, 5, padding_idx=3, seed=0)
    y = ours.forward(x)
    assert y.shape == (6, 4, 5) and y.dtype == np.float32
    assert not ours.weight.data[3].any()     # the padding row starts at zero
    theirs = torch.nn.Embedding(10, 5, padding_idx=3)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
    ty = theirs(torch.tensor(x))
    dy = normal(y.shape, seed=2).astype(np.float32)
    ty.backward(torch.tensor(dy))
    assert ours.backward(dy) is None          # no gradient for the codes
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-6,
                               atol=1e-6)


def test_embedding_initialisation_and_checks():
    layer = Embedding(1000, 8, padding_idx=-1, seed=0)
    assert layer.padding_idx == 999
    layer.forward(np.zeros((2, 3), np.int64))
    w = layer.weight.data
    assert w.dtype == np.float32 and w.shape == (1000, 8)
    assert not w[999].any()
    assert abs(w[:999].mean()) < 0.05 and abs(w[:999].std() - 1) < 0.05   # normal(0, 1)
    assert layer.weight.decay        # a weight, decayed as torch's optimizers do
    with pytest.raises(ValueError, match=r"index 1000 is out of range.*\[0, 1000\)"):
        layer.forward(np.array([[1, 1000, 2]]))
    # whole-number float codes (an encoder's output) are codes; any other float is refused
    np.testing.assert_array_equal(Embedding(4, 2, seed=1).forward(np.array([[0., 3.]], np.float32)),
                                  Embedding(4, 2, seed=1).forward(np.array([[0, 3]])))
    with pytest.raises(TypeError, match="integer codes.*not whole numbers"):
        Embedding(4, 2).forward(np.array([[0.5, 1.0]], np.float32))
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(4, 2, padding_idx=4)
    with pytest.raises(ValueError, match="num_embeddings"):
        Embedding(0, 2)
    with pytest.raises(TypeError, match="eps by keyword"):
        LayerNorm(1e-5)
    with pytest.raises(ValueError, match="LayerNorm over the last axes"):
        LayerNorm((3, 4)).forward(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(TypeError, match="float64 parameters"):
        ln = LayerNorm()
        ln.forward(np.zeros((2, 3)))
        ln.forward(np.zeros((2, 3), np.float32))


def test_float64_model_builds_float64_embeddings():
    model = Sequential(Embedding(5, 3), Flatten(), Dense(2), seed=0)
    model.build((4,), dtype=np.float64)
    assert model.dtype == np.float64 and model[0].weight.data.dtype == np.float64
    y = model.forward(codes((3, 4), 5))
    assert y.dtype == np.float64


# -- save and load ------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    x = codes((6, 5), 12)
    model = Sequential(Embedding(12, 4, padding_idx=0), LayerNorm(), Flatten(), Dense(3), seed=0)
    fit(model, x, np.arange(6) % 3, epochs=1, batch_size=3, seed=0)
    path = tmp_path / "model.npz"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    assert loaded[0].padding_idx == 0 and loaded[0].num_embeddings == 12
    assert loaded[1].normalized_shape is None and loaded[1].eps == 1e-5
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    ln = LayerNorm((2, 3), eps=1e-3, elementwise_affine=False)
    ln.forward(normal((2, 2, 3)).astype(np.float32))
    fastnn.save(ln, path)
    back = fastnn.load(path)
    assert back.normalized_shape == (2, 3) and back.eps == 1e-3 and not back.elementwise_affine
    x = normal((3, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(x), ln.forward(x))


# -- training on integer codes ------------------------------------------------------------------
def test_embedding_model_fits_a_toy_problem():
    """The class is the first code's group: an Embedding must learn which codes go together."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 12, (600, 4))
    y = x[:, 0] % 3
    model = Sequential(Embedding(12, 8), Flatten(), Dense(16), ReLU(), Dense(3), seed=0)
    history = fit(model, x, y, epochs=25, batch_size=32, lr=0.02, seed=0,
                  validation_split=0.2, metrics=["accuracy"])
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert evaluate(model, x, y, metrics=["accuracy"])["accuracy"] > 0.95
    assert model[0].weight.data.dtype == np.float32
    out = predict(model, x)
    np.testing.assert_array_equal(out, model.predict(x.astype(np.int32)))
    # float arrays of whole numbers are codes too; anything else is refused
    np.testing.assert_array_equal(out, model.predict(x.astype(np.float32)))
    with pytest.raises(TypeError, match="integer codes"):
        model.predict(x + 0.5)


def test_layer_norm_in_a_dense_model():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((200, 6)) * 50 + 100).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)   # unchanged by each sample's shift and scale
    model = Sequential(Dense(16), LayerNorm(), ReLU(), Dense(2), seed=0)
    fit(model, x, y, epochs=15, batch_size=20, lr=0.01, seed=0)
    assert evaluate(model, x, y, metrics=["accuracy"])["accuracy"] > 0.9
