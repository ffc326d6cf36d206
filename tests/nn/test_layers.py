"""The layers of ``fastnn.nn`` and ``Sequential``: forward against references, batch norm,
dropout, shapes and errors, dtypes, initialisers, and ReLU fusion."""
import json
import math

import numpy as np
import pytest

from fastnn import kernels as K
from fastnn.nn import Sequential
from fastnn.nn import init
from fastnn.nn.layers import (
    ELU, GELU, AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Conv2DTranspose, Dense, Dropout,
    Flatten, GlobalAvgPool2D, LeakyReLU, MaxPool1D, MaxPool2D, PReLU, ReLU, Reshape, Sigmoid,
    Softmax, StochasticPool2D, Tanh)


def _erf(x):
    return np.vectorize(math.erf)(x)


# -- forward against references ---------------------------------------------------------------
def test_dense_forward_and_shapes(rng):
    layer = Dense(5)
    assert not layer.built and layer.parameters() == []
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = layer.forward(x)
    assert layer.built and layer.input_shape == (3,)
    assert layer.weight.shape == (5, 3) and layer.bias.shape == (5,)
    assert y.shape == (4, 5) and y.dtype == np.float32
    ref = x.astype(np.float64) @ layer.weight.data.T.astype(np.float64) + layer.bias.data
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_dense_leading_axes(rng):
    layer = Dense(4, seed=0)
    x = rng.standard_normal((2, 3, 6))
    y = layer.forward(x)
    assert y.shape == (2, 3, 4) and y.dtype == np.float64
    assert layer.input_shape == (None, 6)
    ref = x @ layer.weight.data.T + layer.bias.data
    np.testing.assert_allclose(y, ref, rtol=1e-12)
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape
    np.testing.assert_allclose(layer.bias.grad, np.full(4, 6.0))
    layer.forward(rng.standard_normal((5, 7, 6)))  # other leading sizes are fine


def test_dense_no_bias(rng):
    layer = Dense(3, use_bias=False)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x), x @ layer.weight.data.T, rtol=1e-5, atol=1e-6)
    assert [p.name for p in layer.parameters()] == ["Dense.weight"]


def _torch_ref(fn, x, w, b, **kw):
    torch = pytest.importorskip("torch")
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a, np.float64))
    return fn(t(x), t(w), t(b), **kw).numpy()


@pytest.mark.parametrize("stride,padding,dilation,groups",
                         [(1, 0, 1, 1), (2, 1, 1, 2), (1, 2, 2, 1)])
def test_conv2d_forward_torch(rng, stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    layer = Conv2D(4, 3, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = rng.standard_normal((2, 2, 7, 6))
    y = layer.forward(x)
    ref = _torch_ref(torch.nn.functional.conv2d, x, layer.weight.data, layer.bias.data,
                     stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


def test_conv1d_forward_torch(rng):
    torch = pytest.importorskip("torch")
    layer = Conv1D(3, 4, stride=2, padding=1, dilation=1)
    x = rng.standard_normal((2, 2, 11))
    y = layer.forward(x)
    ref = _torch_ref(torch.nn.functional.conv1d, x, layer.weight.data, layer.bias.data,
                     stride=2, padding=1)
    assert layer.weight.shape == (3, 2, 4) and layer.input_shape == (2, None)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stride,padding,output_padding,groups", [(1, 0, 0, 1), (2, 1, 1, 2)])
def test_conv2d_transpose_forward_torch(rng, stride, padding, output_padding, groups):
    torch = pytest.importorskip("torch")
    layer = Conv2DTranspose(4, 3, stride=stride, padding=padding, output_padding=output_padding,
                            groups=groups)
    x = rng.standard_normal((2, 2, 4, 5))
    y = layer.forward(x)
    assert layer.weight.shape == (2, 4 // groups, 3, 3)
    ref = _torch_ref(torch.nn.functional.conv_transpose2d, x, layer.weight.data, layer.bias.data,
                     stride=stride, padding=padding, output_padding=output_padding, groups=groups)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)
    out = (4 - 1) * stride - 2 * padding + 3 + output_padding
    assert y.shape == (2, 4, out, (5 - 1) * stride - 2 * padding + 3 + output_padding)


def test_conv_kernel_agreement(rng):
    layer = Conv2D(3, (2, 3), stride=(1, 2), padding=(1, 0), seed=0)
    x = rng.standard_normal((2, 4, 6, 7)).astype(np.float32)
    y = layer.forward(x)
    ref = K.conv2d(x, layer.weight.data, layer.bias.data, stride=(1, 2), padding=(1, 0))
    np.testing.assert_array_equal(y, ref)
    assert y.dtype == np.float32


@pytest.mark.parametrize("cls,kernel,nd", [
    (MaxPool2D, "max_pool2d", 2), (AvgPool2D, "avg_pool2d", 2),
    (MaxPool1D, "max_pool1d", 1), (AvgPool1D, "avg_pool1d", 1)])
def test_pools_match_kernels(rng, cls, kernel, nd):
    x = rng.standard_normal((2, 3) + (7,) * nd).astype(np.float32)
    layer = cls(3, stride=2, padding=1)
    y = layer.forward(x)
    ref = getattr(K, kernel)(x, 3, 2, 1)
    ref = ref[0] if isinstance(ref, tuple) else ref
    np.testing.assert_array_equal(y, ref)
    assert y.shape == (2, 3) + (4,) * nd
    assert cls(2).forward(x).shape == (2, 3) + (3,) * nd  # stride defaults to pool_size


def test_max_pool_numpy_and_backward(rng):
    x = rng.standard_normal((2, 3, 4, 6))
    layer = MaxPool2D(2)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5)))
    dx = layer.backward(np.ones_like(y))
    assert dx.sum() == y.size and set(np.unique(dx)) <= {0.0, 1.0}
    assert np.all(x[dx == 1] == np.repeat(np.repeat(y, 2, 2), 2, 3)[dx == 1])


def test_global_avg_pool(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    layer = GlobalAvgPool2D()
    np.testing.assert_allclose(layer.forward(x), x.mean(axis=(2, 3)), rtol=1e-12)
    dx = layer.backward(np.ones((2, 3)))
    np.testing.assert_allclose(dx, np.full(x.shape, 1 / 20))
    assert layer.forward(rng.standard_normal((1, 5, 2, 2))).shape == (1, 5)  # any C, H, W


def test_stochastic_pool_train_and_eval(rng):
    x = np.abs(rng.standard_normal((2, 2, 4, 4)))
    layer = StochasticPool2D(2, seed=3)
    ye = layer.forward(x, training=False)
    w = x.reshape(2, 2, 2, 2, 2, 2)
    np.testing.assert_allclose(ye, (w ** 2).sum(axis=(3, 5)) / w.sum(axis=(3, 5)), rtol=1e-12)
    yt = layer.forward(x, training=True)
    windows = w.transpose(0, 1, 2, 4, 3, 5).reshape(2, 2, 2, 2, 4)
    assert np.all(np.any(windows == yt[..., None], axis=-1))  # each output is one window element
    draws = [layer.forward(x, training=True) for _ in range(8)]
    assert any(not np.array_equal(draws[0], d) for d in draws[1:])  # a new seed per call
    again = StochasticPool2D(2, seed=3)
    np.testing.assert_array_equal(again.forward(x, training=True), yt)
    np.testing.assert_array_equal(again.forward(x, training=False), ye)


ACTIVATIONS = [
    (ReLU(), lambda x: np.maximum(x, 0)),
    (LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (ELU(0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    (Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (Tanh(), np.tanh),
    (GELU(), lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2)))),
    (Softmax(), lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)),
    (Softmax(axis=1), lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)),
]


@pytest.mark.parametrize("layer,ref", ACTIVATIONS, ids=[repr(a[0]) for a in ACTIVATIONS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations(layer, ref, dtype, rng):
    layer = layer.clone()
    x = (3 * rng.standard_normal((3, 4, 5))).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref(x.astype(np.float64)), rtol=tol, atol=tol)
    layer.forward(rng.standard_normal((2, 7, 1)).astype(dtype))  # any sizes of the same rank


def test_prelu(rng):
    layer = PReLU()
    x = rng.standard_normal((2, 3, 4))
    y = layer.forward(x)
    assert layer.weight.shape == (3,) and np.all(layer.weight.data == 0.25)
    assert layer.input_shape == (3, None) and layer.weight.decay is False
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.25 * x))
    layer.weight.data[:] = [0.1, 0.2, 0.3]
    y = layer.forward(x)
    np.testing.assert_allclose(y, np.where(x > 0, x, np.array([0.1, 0.2, 0.3])[:, None] * x))
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, np.sum(np.where(x > 0, 0, x) * dy, axis=(0, 2)))
    np.testing.assert_allclose(dx, np.where(x > 0, dy, np.array([0.1, 0.2, 0.3])[:, None] * dy))


def test_flatten_reshape(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    f = Flatten()
    y = f.forward(x)
    assert y.shape == (2, 60) and y.dtype == np.float32
    np.testing.assert_array_equal(f.backward(y), x)
    r = Reshape((5, -1))
    z = r.forward(y)
    assert z.shape == (2, 5, 12)
    np.testing.assert_array_equal(r.backward(z), y)
    with pytest.raises(ValueError, match=r"Reshape\(shape=\(7, -1\)\) cannot reshape"):
        Reshape((7, -1)).forward(y)
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape((-1, -1))


# -- batch norm -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (4, 3, 2, 3)])
def test_batch_norm_train_eval(rng, shape):
    x = 2 + 3 * rng.standard_normal(shape)
    layer = BatchNorm(momentum=0.2)
    y = layer.forward(x, training=True)
    axes = (0,) + tuple(range(2, len(shape)))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    bshape = (1, 3) + (1,) * (len(shape) - 2)
    np.testing.assert_allclose(y, (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5),
                               rtol=1e-10, atol=1e-10)
    m = x.size // 3
    np.testing.assert_allclose(layer.running_mean, 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.8 + 0.2 * var * m / (m - 1), rtol=1e-12)
    assert [p.name for p in layer.parameters()] == ["BatchNorm.gamma", "BatchNorm.beta"]
    assert all(p.decay is False for p in layer.parameters())
    assert set(layer.buffers()) == {"running_mean", "running_var"}
    assert layer.input_shape == (3,) + (None,) * (len(shape) - 2)
    before = layer.running_mean.copy()
    ye = layer.forward(x, training=False)  # evaluation: running statistics, unchanged
    np.testing.assert_array_equal(layer.running_mean, before)
    rm, rv = layer.running_mean.reshape(bshape), layer.running_var.reshape(bshape)
    np.testing.assert_allclose(ye, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-10)


def test_batch_norm_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 3, 4, 4)).astype(np.float32)
    layer = BatchNorm(momentum=0.1, eps=1e-3)
    ref = torch.nn.BatchNorm2d(3, momentum=0.1, eps=1e-3)
    for _ in range(2):
        y = layer.forward(x, training=True)
        yt = ref.train()(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(y, yt, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-5)
    np.testing.assert_allclose(layer.forward(x), ref.eval()(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


# -- dropout and train/eval -------------------------------------------------------------------
def test_dropout_train_eval(rng):
    x = rng.standard_normal((50, 40)).astype(np.float32) + 5
    layer = Dropout(0.25, seed=1)
    assert layer.forward(x, training=False) is x
    assert layer.backward(x) is x
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    kept = y != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    dx = layer.backward(np.ones_like(y))
    np.testing.assert_allclose(dx, kept / np.float32(0.75), rtol=1e-6)
    y2 = layer.forward(x, training=True)
    assert not np.array_equal(y2 != 0, kept)  # a new mask each call
    np.testing.assert_array_equal(Dropout(0.25, seed=1).forward(x, training=True), y)
    assert Dropout(0.0).forward(x, training=True) is x
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)


# -- building, shapes, errors -----------------------------------------------------------------
def test_eager_build(rng):
    d = Dense(4, in_features=3, seed=0)
    assert d.built and d.input_shape == (3,) and d.weight.shape == (4, 3)
    assert d.weight.data.dtype == np.float32
    np.testing.assert_array_equal(d.weight.data, Dense(4, in_features=3, seed=0).weight.data)
    assert d.forward(np.ones((2, 3), np.float32)).shape == (2, 4)
    c = Conv2D(5, 3, in_channels=2, groups=1)
    assert c.built and c.input_shape == (2, None, None) and c.weight.shape == (5, 2, 3, 3)
    assert c.forward(rng.standard_normal((1, 2, 5, 5)).astype(np.float32)).shape == (1, 5, 3, 3)
    assert c.forward(rng.standard_normal((3, 2, 9, 4)).astype(np.float32)).shape == (3, 5, 7, 2)
    t = Conv2DTranspose(6, 2, stride=2, groups=2, in_channels=4)
    assert t.weight.shape == (4, 3, 2, 2) and t.input_shape == (4, None, None)
    c1 = Conv1D(2, 3, in_channels=4)
    assert c1.input_shape == (4, None) and c1.weight.shape == (2, 4, 3)


@pytest.mark.parametrize("layer,good,bad,want", [
    (Dense(4), (2, 3), (2, 5), r"Dense\(units=4.*\(N, 3\), got \(2, 5\)"),
    (Dense(4, in_features=3), (2, 3), (2, 3, 1), r"Dense.*\(N, 3\)"),
    (Conv2D(2, 3, in_channels=3), (1, 3, 5, 5), (1, 4, 5, 5),
     r"Conv2D.*\(N, 3, \*, \*\), got \(1, 4"),
    (Conv1D(2, 3), (1, 2, 6), (1, 2, 6, 1), r"Conv1D.*\(N, 2, \*\)"),
    (Conv2DTranspose(2, 2), (1, 3, 2, 2), (1, 2, 2, 2), r"Conv2DTranspose.*\(N, 3, \*, \*\)"),
    (BatchNorm(), (4, 3, 2, 2), (4, 2, 2, 2), r"BatchNorm.*\(N, 3, \*, \*\)"),
    (PReLU(), (2, 5), (2, 4), r"PReLU.*\(N, 5\)"),
    (MaxPool2D(2), (1, 1, 4, 4), (1, 4, 4), r"MaxPool2D.*\(N, \*, \*, \*\)"),
    (ReLU(), (2, 3), (2, 3, 3), r"ReLU.*\(N, \*\)"),
])
def test_wrong_shape_names_layer_and_expected_shape(layer, good, bad, want):
    layer.forward(np.ones(good, np.float32))
    with pytest.raises(ValueError, match=want):
        layer.forward(np.ones(bad, np.float32))


@pytest.mark.parametrize("layer,shape,want", [
    (Conv2D(2, 3), (2, 3, 4), r"Conv2D expects input of shape \(N, C, H, W\)"),
    (Conv1D(2, 3), (2, 3), r"Conv1D expects input of shape \(N, C, L\)"),
    (MaxPool1D(2), (2, 3, 4, 4), r"MaxPool1D expects input of shape \(N, C, L\)"),
    (GlobalAvgPool2D(), (2, 3), r"GlobalAvgPool2D expects input of shape \(N, C, H, W\)"),
    (BatchNorm(), (2,), r"BatchNorm expects input of shape"),
    (Conv2D(4, 1, groups=2), (1, 3, 2, 2), "groups=2 must divide the 3 input channels"),
])
def test_bad_first_input(layer, shape, want):
    with pytest.raises(ValueError, match=want):
        layer.forward(np.ones(shape, np.float32))


def test_constructor_validation():
    with pytest.raises(ValueError, match="Dense: units"):
        Dense(0)
    with pytest.raises(TypeError, match="Dense: units"):
        Dense(2.5)
    with pytest.raises(ValueError, match="Conv2D: groups=2 must divide filters=3"):
        Conv2D(3, 3, groups=2)
    with pytest.raises(ValueError, match="Conv2D: kernel_size"):
        Conv2D(3, 0)
    with pytest.raises(ValueError, match="Conv1D: padding"):
        Conv1D(3, 2, padding=-1)
    with pytest.raises(ValueError, match="MaxPool2D: padding"):
        MaxPool2D(2, padding=2)
    with pytest.raises(ValueError, match="unknown initializer"):
        Dense(3, kernel_initializer="nope")
    with pytest.raises(ValueError, match="BatchNorm: momentum"):
        BatchNorm(momentum=1.5)
    with pytest.raises(TypeError, match="seed"):
        Dense(3, seed="x")


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        ReLU().backward(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="before forward"):
        Dense(2, in_features=2).backward(np.ones((2, 2), np.float32))


# -- dtypes -----------------------------------------------------------------------------------
def _all_layers():
    return [Dense(3), Conv2D(2, 3, padding=1), Conv2DTranspose(2, 2), MaxPool2D(2), AvgPool2D(2),
            StochasticPool2D(2), GlobalAvgPool2D(), Flatten(), Reshape((-1,)), Dropout(0.5),
            BatchNorm(), ReLU(), LeakyReLU(), PReLU(), ELU(), Sigmoid(), Tanh(), GELU(), Softmax()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [False, True])
def test_dtype_kept(rng, dtype, training):
    for layer in _all_layers():
        x = np.abs(rng.standard_normal((2, 2, 4, 4))).astype(dtype)
        y = layer.forward(x, training=training)
        assert y.dtype == dtype, layer
        for p in layer.parameters():
            assert p.data.dtype == dtype and p.grad.dtype == dtype
        dx = layer.backward(np.ones(y.shape, dtype))
        assert dx.dtype == dtype and dx.shape == x.shape, layer


def test_float32_default_and_dtype_mismatch():
    d = Dense(2, in_features=3)
    assert d.weight.data.dtype == np.float32
    with pytest.raises(TypeError, match="Dense has float32 parameters; got float64"):
        d.forward(np.ones((1, 3)))
    with pytest.raises(TypeError, match="float array"):
        Dense(2).forward(np.ones((1, 3), np.int64))


def test_backward_accumulates(rng):
    layer = Conv2D(2, 2)
    x = rng.standard_normal((2, 3, 4, 4))
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    layer.backward(dy)
    once = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * once[0])
    np.testing.assert_allclose(layer.bias.grad, 2 * once[1])


# -- initialisers -----------------------------------------------------------------------------
def test_default_and_named_initializers():
    d = Dense(200, in_features=100, seed=0)
    assert np.abs(d.weight.data).max() <= np.sqrt(6 / 100)  # He-uniform
    assert d.weight.data.var() == pytest.approx(2 / 100, rel=0.05)
    assert not d.bias.data.any() and d.bias.decay is False and d.weight.decay is True
    g = Dense(200, in_features=100, kernel_initializer="glorot_uniform", seed=0)
    assert g.weight.data.var() == pytest.approx(2 / 300, rel=0.05)
    c = Conv2D(8, 3, in_channels=4, kernel_initializer="he_normal", seed=0)
    assert c.weight.data.std() == pytest.approx(np.sqrt(2 / 36), rel=0.15)
    o = Dense(4, in_features=4, kernel_initializer=init.orthogonal, seed=1)
    np.testing.assert_allclose(o.weight.data @ o.weight.data.T, np.eye(4), atol=1e-6)


def test_get_config_and_clone():
    layers = [Dense(3, kernel_initializer="glorot_normal", in_features=2, seed=4),
              Conv2DTranspose(4, (2, 3), stride=2, output_padding=1, seed=1), MaxPool1D(3, 2, 1),
              Dropout(0.3, seed=2), BatchNorm(0.05, 1e-3), LeakyReLU(0.1), Softmax(axis=1),
              Reshape((2, -1)), StochasticPool2D(2, seed=3)]
    for layer in layers:
        config = layer.get_config()
        json.dumps(config)
        twin = layer.clone()
        assert type(twin) is type(layer) and twin.get_config() == config
    assert layers[0].get_config() == {"units": 3, "use_bias": True, "kernel_initializer":
                                      "glorot_normal", "in_features": 2, "seed": 4}
    np.testing.assert_array_equal(layers[0].clone().weight.data, layers[0].weight.data)


# -- Sequential -------------------------------------------------------------------------------
def _convnet(seed):
    return Sequential(Conv2D(4, 3, padding=1), BatchNorm(), ReLU(), MaxPool2D(2), Dropout(0.2),
                      Flatten(), Dense(8), PReLU(), Dense(3), seed=seed)


def test_sequential_seed_reproducible(rng):
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    a, b, c = _convnet(0), _convnet(0), _convnet(1)
    ya, yb, yc = (m.forward(x, training=True) for m in (a, b, c))
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.data.tobytes() == q.data.tobytes()
    assert ya.tobytes() == yb.tobytes()  # dropout masks come from the model's seed too
    assert not np.array_equal(a.flat.data, c.flat.data)


def test_sequential_flat_buffer(rng):
    model = _convnet(0)
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    y = model.forward(x, training=True)
    params = model.parameters()
    assert model.flat is not None and model.flat.size == sum(p.size for p in params)
    for p in params:
        assert np.shares_memory(p.data, model.flat.data)
        assert np.shares_memory(p.grad, model.flat.grad)
    model.backward(np.ones_like(y))
    assert np.abs(model.flat.grad).sum() > 0
    np.testing.assert_array_equal(
        np.concatenate([p.grad.ravel() for p in params]), model.flat.grad)
    model.flat.data[:] = 0  # the layers see the buffer
    assert not model[0].weight.data.any() and not model[-1].bias.data.any()
    model.zero_grad()
    assert not any(p.grad.any() for p in params)


def test_sequential_gradient_flow_and_shapes(rng):
    model = Sequential(Conv1D(3, 3), ReLU(), AvgPool1D(2), Flatten(), Dense(2), Softmax(), seed=0)
    x = rng.standard_normal((4, 2, 10))
    y = model.forward(x)
    assert y.shape == (4, 2) and y.dtype == np.float64
    np.testing.assert_allclose(y.sum(axis=1), 1.0)
    assert model[0].input_shape == (2, None) and model[4].input_shape == (12,)
    assert model.backward(rng.standard_normal(y.shape)).shape == x.shape


def test_backward_without_input_gradient_skips_dx_and_keeps_parameter_gradients():
    from fastnn.nn import Conv2D, Dense, Flatten, ReLU, Reshape, Sequential
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    grads = []
    for input_grad in (True, False):
        model = Sequential(Reshape((1, 8, 8)), Conv2D(3, 3), ReLU(), Flatten(), Dense(5), seed=0)
        out = model.forward(x, training=True)
        dx = model.backward(np.ones_like(out), input_grad=input_grad)
        assert (dx is None) == (not input_grad)
        if input_grad:
            assert dx.shape == x.shape
        grads.append(model.flat.grad.copy())
    np.testing.assert_array_equal(grads[0], grads[1])


def test_kernels_skip_the_input_gradient_on_request():
    from fastnn import kernels as K
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    full, part = K.conv2d_backward(dy, x, w), K.conv2d_backward(dy, x, w, input_grad=False)
    assert part[0] is None
    np.testing.assert_array_equal(full[1], part[1])
    np.testing.assert_array_equal(full[2], part[2])
    x1, w1, dy1 = x[:, :, 0], w[:, :, 0], dy[:, :, 0]
    assert K.conv1d_backward(dy1, x1, w1, input_grad=False)[0] is None
    xd, wd, dyd = x.reshape(2, -1), rng.standard_normal((5, 108)).astype(np.float32), \
        rng.standard_normal((2, 5)).astype(np.float32)
    full, part = K.linear_backward(dyd, xd, wd), K.linear_backward(dyd, xd, wd, input_grad=False)
    assert part[0] is None
    np.testing.assert_array_equal(full[1], part[1])


def _unfused_forward(model, x, training):
    for layer in model.layers:
        x = layer.forward(x, training)
    return x


def _fusable_net(transposed=False):
    first = Conv2DTranspose(3, 3) if transposed else Conv2D(3, 3, padding=1)
    return Sequential(first, ReLU(), Flatten(), Dense(7), ReLU(), Dense(4), ReLU(), seed=3)


@pytest.mark.parametrize("transposed", [False, True])
def test_sequential_fuses_relu_into_the_layer_before_with_the_same_result(rng, transposed,
                                                                          monkeypatch):
    x = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    fused, plain = _fusable_net(transposed), _fusable_net(transposed)
    fused.forward(x[:1])
    plain.forward(x[:1])
    calls = []
    relu = K.relu
    monkeypatch.setattr(K, "relu", lambda a: calls.append(a.shape) or relu(a))
    y = fused.forward(x, training=True)
    assert len(calls) == (1 if transposed else 0)  # the transposed conv has no fused ReLU
    y_plain = _unfused_forward(plain, x, training=True)
    np.testing.assert_array_equal(y, y_plain)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(fused.backward(dy), plain.backward(dy))
    np.testing.assert_array_equal(fused.flat.grad, plain.flat.grad)


def test_a_fused_relu_treats_nan_and_zeros_as_the_relu_layer_does():
    def net():
        model = Sequential(Dense(3, in_features=2), ReLU())
        model.layers[0].weight.data[...] = [[1, 0], [0, 1], [-1, -1]]
        return model
    x = np.array([[np.nan, 1.0], [2.0, -3.0]], np.float32)
    fused, plain = net(), net()
    y = fused.forward(x, training=True)
    np.testing.assert_array_equal(y, _unfused_forward(plain, x, True))
    assert np.isnan(y[0, 0]) and y[1, 1] == 0 and y[1, 2] == 1
    np.testing.assert_array_equal(fused.backward(np.ones_like(y)), plain.backward(np.ones_like(y)))


def test_a_subclass_with_its_own_forward_is_not_fused(rng):
    class Scaled(Dense):
        def _forward(self, x, training):
            return super()._forward(x, training) * 2

    model = Sequential(Scaled(3, in_features=2, seed=0), ReLU())
    x = rng.standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), np.maximum(model[0].forward(x), 0))


def test_a_relu_subclass_with_its_own_forward_is_not_fused(rng):
    class HalfReLU(ReLU):
        def _forward(self, x, training):
            return super()._forward(x, training) * 0.5

    model = Sequential(Dense(3, in_features=2, seed=0), HalfReLU())
    x = rng.standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), np.maximum(model[0].forward(x), 0) * 0.5)
