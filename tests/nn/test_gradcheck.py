"""fastnn.testing.gradcheck itself, and a float64 gradient check of every layer's backward."""
import numpy as np
import pytest

from fastnn.nn import Layer, Sequential
from fastnn.nn.layers import (
    ELU, GELU, AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Conv2DTranspose, Dense, Dropout,
    Flatten, GlobalAvgPool2D, LeakyReLU, MaxPool1D, MaxPool2D, PReLU, ReLU, Reshape, Sigmoid,
    Softmax, StochasticPool2D, Tanh)
from fastnn.nn import Bidirectional, GlobalAvgPool1D, GlobalMaxPool1D, GlobalMaxPool2D
from fastnn.nn.recurrent import GRU, LSTM
from fastnn.testing import gradcheck, numerical_gradient


def away_from_zero(shape, seed=0, margin=0.1):
    """Random values with |x| >= margin (no ReLU-style kinks within eps)."""
    r = np.random.default_rng(seed)
    return np.sign(r.standard_normal(shape)) * (margin + np.abs(r.standard_normal(shape)))


def distinct(shape, seed=0):
    """A random permutation of well-separated values (no max-pool ties within eps)."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) * (4.0 / n) - 2.0).reshape(shape)


def positive(shape, seed=0):
    return 0.2 + np.abs(np.random.default_rng(seed).standard_normal(shape))


def normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# (id, layer factory, input, training)
CASES = [
    ("dense", lambda: Dense(3), normal((4, 5)), False),
    ("dense_3d_no_bias", lambda: Dense(2, use_bias=False), normal((2, 3, 4)), False),
    ("conv1d", lambda: Conv1D(3, 3, stride=2, padding=1, dilation=1), normal((2, 2, 7)), False),
    ("conv1d_groups", lambda: Conv1D(4, 2, dilation=2, groups=2), normal((2, 4, 6)), False),
    ("conv2d", lambda: Conv2D(3, (2, 3), stride=(2, 1), padding=1), normal((2, 2, 5, 4)), False),
    ("conv2d_groups_dilation", lambda: Conv2D(4, 2, dilation=2, groups=2), normal((1, 4, 5, 5)),
     False),
    ("conv2d_transpose", lambda: Conv2DTranspose(3, 3, stride=2, padding=1, output_padding=1),
     normal((2, 2, 3, 3)), False),
    ("conv2d_transpose_groups", lambda: Conv2DTranspose(4, 2, stride=1, groups=2),
     normal((1, 2, 3, 2)), False),
    ("max_pool1d", lambda: MaxPool1D(3, 2, 1), distinct((2, 2, 7)), False),
    ("max_pool2d", lambda: MaxPool2D(2), distinct((2, 2, 4, 4)), False),
    ("max_pool2d_overlap_pad", lambda: MaxPool2D(3, 2, 1), distinct((1, 2, 5, 5)), False),
    ("avg_pool1d", lambda: AvgPool1D(3, 2, 1), normal((2, 2, 7)), False),
    ("avg_pool2d", lambda: AvgPool2D(3, 2, 1), normal((1, 2, 5, 5)), False),
    ("stochastic_pool2d_eval", lambda: StochasticPool2D(2), positive((2, 2, 4, 4)), False),
    ("global_avg_pool2d", lambda: GlobalAvgPool2D(), normal((2, 3, 3, 2)), False),
    ("global_avg_pool1d", lambda: GlobalAvgPool1D(), normal((2, 3, 4)), False),
    ("global_max_pool1d", lambda: GlobalMaxPool1D(), distinct((2, 3, 5)), False),
    ("global_max_pool2d", lambda: GlobalMaxPool2D(), distinct((2, 3, 3, 2)), False),
    ("conv1d_causal_dilated", lambda: Conv1D(3, 3, stride=2, padding="causal", dilation=2),
     normal((2, 2, 8)), False),
    ("conv1d_same", lambda: Conv1D(2, 4, padding="same"), normal((2, 2, 6)), False),
    ("bidirectional_lstm_sequences", lambda: Bidirectional(LSTM(3, return_sequences=True)),
     normal((2, 4, 2)), False),
    ("bidirectional_gru_sum", lambda: Bidirectional(GRU(2), merge="sum"), normal((2, 3, 2)), False),
    ("flatten", lambda: Flatten(), normal((2, 3, 2, 2)), False),
    ("reshape", lambda: Reshape((2, -1)), normal((2, 3, 4)), False),
    ("dropout_train_fixed_mask", lambda: Dropout(0.4), normal((4, 6)), True),
    ("dropout_eval", lambda: Dropout(0.4), normal((4, 6)), False),
    ("batch_norm_dense_train", lambda: BatchNorm(), normal((6, 3)), True),
    ("batch_norm_spatial_train", lambda: BatchNorm(), normal((3, 2, 3, 3)), True),
    ("batch_norm_1d_train", lambda: BatchNorm(), normal((3, 2, 4)), True),
    ("batch_norm_eval", lambda: BatchNorm(), normal((4, 3, 2, 2)), False),
    ("relu", lambda: ReLU(), away_from_zero((3, 4)), False),
    ("leaky_relu", lambda: LeakyReLU(0.2), away_from_zero((3, 4)), False),
    ("prelu", lambda: PReLU(), away_from_zero((3, 2, 4)), False),
    ("elu", lambda: ELU(0.8), away_from_zero((3, 4)), False),
    ("sigmoid", lambda: Sigmoid(), normal((3, 4)), False),
    ("tanh", lambda: Tanh(), normal((3, 4)), False),
    ("gelu", lambda: GELU(), normal((3, 4)), False),
    ("softmax", lambda: Softmax(), normal((3, 5)), False),
    ("softmax_axis1", lambda: Softmax(axis=1), normal((2, 3, 4)), False),
]


@pytest.mark.parametrize("make,x,training", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_layer_gradients(make, x, training):
    layer = make()
    assert gradcheck(layer, x, training=training)
    assert all(p.data.dtype == np.float64 for p in layer.parameters())


def test_batch_norm_eval_with_running_stats():
    layer = BatchNorm()
    x = normal((5, 3, 2, 2))
    layer.forward(x, training=True)  # float64 layer with non-trivial running statistics
    layer.gamma.data[:] = [0.5, 2.0, -1.0]
    layer.beta.data[:] = [0.1, 0.2, 0.3]
    assert gradcheck(layer, normal((4, 3, 2, 2), seed=1), training=False)
    assert gradcheck(layer, normal((4, 3, 2, 2), seed=2), training=True)


def test_sequential_gradients():
    model = Sequential(Conv2D(3, 3, padding=1), BatchNorm(), Tanh(), AvgPool2D(2), Dropout(0.3),
                       Flatten(), Dense(4), ELU(), Dense(3), Softmax(), seed=0)
    assert gradcheck(model, normal((3, 2, 4, 4)), training=True)
    assert gradcheck(model, normal((3, 2, 4, 4), seed=1), training=False)


def test_sequential_conv_transpose_and_pools():
    model = Sequential(Conv2DTranspose(2, 2, stride=2), LeakyReLU(0.3), MaxPool2D(2),
                       Conv2D(2, 1), GlobalAvgPool2D(), seed=1)
    assert gradcheck(model, normal((2, 2, 2, 3)))


# -- the checker itself -----------------------------------------------------------------------
def test_numerical_gradient():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = numerical_gradient(lambda v: np.sum(v ** 3), x)
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-8)
    assert x[0, 1] == -2.0  # not modified
    assert numerical_gradient(lambda v: v[0] * v[1], np.array([2, 5])).tolist() == \
        pytest.approx([5.0, 2.0])


class _Scale(Layer):
    """y = w * x with a deliberately wrong gradient for the input or the weight."""

    def __init__(self, bug):
        super().__init__()
        self.bug = bug

    def build(self, input_shape, rng=None, dtype=np.float32):
        self.w = self.add_parameter("w", np.full(input_shape, 1.5, dtype))
        self.input_shape = tuple(input_shape)
        self.built = True

    def _forward(self, x, training):
        self._x = x
        return self.w.data * x

    def _backward(self, dy):
        self.w.grad += (dy * self._x).sum(axis=0) * (1.01 if self.bug == "w" else 1.0)
        dx = dy * self.w.data
        if self.bug == "x":
            dx = dx.copy()
            dx[1, 2] += 0.5
        return dx


def test_gradcheck_reports_input_mismatch():
    with pytest.raises(AssertionError, match=r"gradient of the input .* 1 of 12 elements.*"
                                             r"max abs error 5\.000e-01.*worst at index \(1, 2\)"):
        gradcheck(_Scale("x"), normal((3, 4)))


def test_gradcheck_reports_parameter_mismatch():
    with pytest.raises(AssertionError, match=r"parameter _Scale\.w .*max rel error 1\.000e-02"):
        gradcheck(_Scale("w"), normal((3, 4)))
    assert gradcheck(_Scale("w"), normal((3, 4)), check_params=False)
    assert gradcheck(_Scale(None), normal((3, 4)))


def test_gradcheck_names_layer_in_model():
    model = Sequential(Dense(3), _Scale("w"), seed=0)
    with pytest.raises(AssertionError, match=r"parameter \[1\] _Scale\.w"):
        gradcheck(model, normal((2, 4)))


def test_gradcheck_needs_float64():
    layer = Dense(2, in_features=3)
    with pytest.raises(TypeError, match="float64 parameters"):
        gradcheck(layer, normal((2, 3)))


def test_gradcheck_leaves_layer_unchanged():
    model = Sequential(Dense(4), BatchNorm(), Dropout(0.5), Dense(2), seed=0)
    x = normal((5, 3))
    model.forward(x, training=True)
    bn = model[1]
    bn.running_mean[:] = [1.0, 2.0, 3.0, 4.0]
    data, grad = model.flat.data.copy(), model.flat.grad.copy()
    stats = bn.running_mean.copy(), bn.running_var.copy()
    rngs = [layer._rng for layer in model.layers]
    state = rngs[2].bit_generator.state
    assert gradcheck(model, x, training=True)
    np.testing.assert_array_equal(model.flat.data, data)
    np.testing.assert_array_equal(model.flat.grad, grad)
    np.testing.assert_array_equal(bn.running_mean, stats[0])
    np.testing.assert_array_equal(bn.running_var, stats[1])
    assert all(layer._rng is r for layer, r in zip(model.layers, rngs))
    assert rngs[2].bit_generator.state == state


def test_dropout_mask_is_fixed_per_check():
    """Without re-seeding, dropout's changing mask would make the differences meaningless."""
    layer = Dropout(0.5)
    x = normal((3, 8))
    a = layer.forward(x, training=True)
    b = layer.forward(x, training=True)
    assert not np.array_equal(a != 0, b != 0)
    assert gradcheck(layer, x, training=True, seed=3)
