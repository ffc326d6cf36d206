"""Global pooling layers and Conv1D's causal / same padding: shapes, references, errors, config."""
import numpy as np
import pytest

from fastnn.nn import (Conv1D, Conv2D, Dense, GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D,
                       GlobalMaxPool2D, Sequential)
from tests.naive import conv as conv_ref
from tests.naive import pool as ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_pool_layers(dtype, rng):
    x1 = rng.integers(-3, 4, (3, 4, 7)).astype(dtype)       # ties: the first maximum wins
    x2 = rng.standard_normal((3, 4, 5, 2)).astype(dtype)
    for layer, x in ((GlobalMaxPool1D(), x1), (GlobalMaxPool2D(), x2)):
        y = layer.forward(x, training=True)
        ry, ridx = ref.global_max_pool2d(x)
        assert y.shape == (3, 4) and y.dtype == dtype
        np.testing.assert_array_equal(y, ry.astype(dtype))
        dy = rng.standard_normal((3, 4)).astype(dtype)
        dx = layer.backward(dy)
        assert dx.dtype == dtype
        np.testing.assert_array_equal(dx, ref.global_max_pool2d_backward(dy, ridx, x.shape))
    layer = GlobalAvgPool1D()
    y = layer.forward(x1)
    np.testing.assert_allclose(y, ref.global_avg_pool1d(x1), rtol=1e-6)
    dy = rng.standard_normal((3, 4)).astype(dtype)
    np.testing.assert_allclose(layer.backward(dy), ref.global_avg_pool1d_backward(dy, x1.shape),
                               rtol=1e-6)
    assert layer.get_config() == {} and GlobalMaxPool2D().get_config() == {}


def test_global_pool_layers_check_rank():
    with pytest.raises(ValueError, match=r"GlobalMaxPool1D expects input of shape \(N, C, L\)"):
        GlobalMaxPool1D().forward(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"GlobalMaxPool2D expects input of shape \(N, C, H, W\)"):
        GlobalMaxPool2D().forward(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"GlobalAvgPool1D expects input of shape \(N, C, L\)"):
        GlobalAvgPool1D().forward(np.zeros((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        GlobalMaxPool1D().backward(np.zeros((2, 3), np.float32))


def test_any_length_once_built(rng):
    """A causal convolution and a global pooling accept any length: the same (N, C) out."""
    conv, pool, dense = Conv1D(3, 3, padding="causal", dilation=2, seed=0), GlobalMaxPool1D(), \
        Dense(2, seed=0)
    for length in (5, 1, 12):
        h = conv.forward(rng.standard_normal((2, 2, length)).astype(np.float32))
        assert h.shape == (2, 3, length)
        assert dense.forward(pool.forward(h)).shape == (2, 2)
    model = Sequential(Conv2D(3, 3, padding="same"), GlobalAvgPool2D(), seed=0)
    assert model.forward(np.ones((1, 2, 4, 6), np.float32)).shape == (1, 3)


@pytest.mark.parametrize("stride", [1, 2])
def test_causal_conv1d_layer(stride, rng):
    """Keras' Conv1D(padding="causal", dilation_rate=2): left zeros, output t sees inputs <= t."""
    layer = Conv1D(4, 3, stride=stride, padding="causal", dilation=2, seed=0)
    x = rng.standard_normal((2, 3, 10)).astype(np.float64)
    y = layer.forward(x, training=True)
    assert y.shape == (2, 4, (10 - 1) // stride + 1)
    w, b = layer.weight.data, layer.bias.data
    np.testing.assert_allclose(y, conv_ref.conv1d_padded(x, w, b, stride, (4, 0), 2), rtol=1e-12,
                               atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    rdx, rdw, rdb = conv_ref.conv1d_padded_backward(dy, x, w, stride, (4, 0), 2)
    np.testing.assert_allclose(dx, rdx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, rdw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, rdb, rtol=1e-12, atol=1e-12)
    for t in range(y.shape[2]):   # changing inputs after t * stride leaves outputs up to t alone
        x2 = x.copy()
        x2[:, :, t * stride + 1:] = 7.0
        np.testing.assert_array_equal(layer.forward(x2)[:, :, :t + 1], y[:, :, :t + 1])


def test_causal_stack_keeps_the_length_and_the_past(rng):
    """A WaveNet-style stack (dilations 1, 2, 4): the output keeps the length and step t depends
    on inputs up to t only."""
    model = Sequential(Conv1D(4, 2, padding="causal", dilation=1),
                       Conv1D(4, 2, padding="causal", dilation=2),
                       Conv1D(2, 2, padding="causal", dilation=4), seed=0)
    x = rng.standard_normal((3, 1, 16)).astype(np.float32)
    y = model.forward(x)
    assert y.shape == (3, 2, 16)
    x2 = x.copy()
    x2[:, :, 9:] = -5.0
    np.testing.assert_array_equal(model.forward(x2)[:, :, :9], y[:, :, :9])
    assert not np.array_equal(model.forward(x2)[:, :, 9], y[:, :, 9])


def test_padding_modes_config_and_errors():
    layer = Conv1D(2, 3, padding="causal", dilation=2)
    assert layer.get_config()["padding"] == "causal" and layer.get_config()["dilation"] == 2
    assert repr(layer.clone()) == repr(layer)
    assert Conv1D(2, 4, padding="same").forward(np.ones((1, 3, 9), np.float32)).shape == (1, 2, 9)
    assert Conv1D(2, 4, padding="valid").forward(np.ones((1, 3, 9), np.float32)).shape == (1, 2, 6)
    with pytest.raises(ValueError, match="Conv1D: padding must be .*'causal'"):
        Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match="Conv2D: padding='causal' is for 1-D"):
        Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="Conv1D: padding='same' needs stride 1"):
        Conv1D(2, 3, stride=2, padding="same")
    with pytest.raises(TypeError, match="Conv1D: padding"):
        Conv1D(2, 3, padding=1.5)
    model = Sequential(Conv1D(2, 5, padding="valid", dilation=2), seed=0)
    with pytest.raises(ValueError, match="layer 0 \\(Conv1D\\)"):
        model.forward(np.ones((1, 1, 4), np.float32))   # too short for 'valid': a clear error
