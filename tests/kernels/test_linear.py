"""Linear (dense) kernels against the naive reference, PyTorch, numerical gradients and
properties."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn.kernels as K
from tests.gradients import check_backward
from tests.naive import linear as ref


def _data(rng, lead, n_in, n_out, dtype):
    x = rng.standard_normal(lead + (n_in,)).astype(dtype)
    w = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    dy = rng.standard_normal(lead + (n_out,)).astype(dtype)
    return x, w, b, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead", [(5,), (2, 3), ()])
def test_linear_matches_naive(lead, dtype, rng):
    x, w, b, dy = _data(rng, lead, 7, 4, dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    y = K.linear(x, w, b)
    assert y.dtype == dtype and y.shape == lead + (4,)
    np.testing.assert_allclose(y, ref.linear(x, w, b), **tol)
    np.testing.assert_allclose(K.linear(x, w), ref.linear(x, w), **tol)
    dx, dw, db = K.linear_backward(dy, x, w)
    rdx, rdw, rdb = ref.linear_backward(dy, x, w)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (4,)
    np.testing.assert_allclose(dx, rdx, **tol)
    np.testing.assert_allclose(dw, rdw, **tol)
    np.testing.assert_allclose(db, rdb, **tol)


def test_linear_numerical_gradient(rng):
    x, w, b, _ = _data(rng, (3, 2), 4, 3, np.float64)
    check_backward(K.linear, lambda dy, x_, w_, b_: K.linear_backward(dy, x_, w_), [x, w, b])


@given(st.lists(st.integers(1, 4), max_size=3), st.integers(1, 6), st.integers(1, 6),
       st.booleans())
def test_linear_shapes_property(lead, n_in, n_out, bias):
    rng = np.random.default_rng(n_in * 7 + n_out)
    x, w, b, dy = _data(rng, tuple(lead), n_in, n_out, np.float64)
    b = b if bias else None
    np.testing.assert_allclose(K.linear(x, w, b), ref.linear(x, w, b), rtol=1e-12, atol=1e-12)
    for got, want in zip(K.linear_backward(dy, x, w), ref.linear_backward(dy, x, w)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_matches_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    x, w, b, dy = _data(rng, (16, 3), 20, 11, dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb)
    grads = torch.autograd.grad(ty, (tx, tw, tb), torch.tensor(dy))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(K.linear(x, w, b), ty.detach().numpy(), **tol)
    for got, want in zip(K.linear_backward(dy, x, w), grads):
        np.testing.assert_allclose(got, want.numpy(), **tol)


def test_bias_gradient_accumulates_precisely():
    """db over a large float32 batch is summed in float64 before rounding."""
    dy = np.full((200_000, 2), 0.1, dtype=np.float32)
    x = np.zeros((200_000, 3), np.float32)
    _, _, db = K.linear_backward(dy, x, np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(db, 200_000 * np.float64(np.float32(0.1)), rtol=1e-7)


def test_non_contiguous_inputs(rng):
    x = rng.standard_normal((8, 10))[:, ::2]
    w = rng.standard_normal((5, 3)).T
    np.testing.assert_allclose(K.linear(x, w), x @ w.T, rtol=1e-12)


def test_bad_arguments():
    x = np.ones((4, 3), np.float32)
    w = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="w must have shape"):
        K.linear(x, np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="w must be 2-D"):
        K.linear(x, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="b must have shape"):
        K.linear(x, w, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="w must have dtype"):
        K.linear(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="x must be a float"):
        K.linear(x.astype(np.int32), w)
    with pytest.raises(ValueError, match="x must be at least 1-D"):
        K.linear(np.float32(1.0), w)
    with pytest.raises(ValueError, match="dy must have shape"):
        K.linear_backward(np.ones((4, 3), np.float32), x, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_relu_is_relu_of_the_product(dtype, rng):
    x = rng.standard_normal((70, 33)).astype(dtype)
    w = rng.standard_normal((40, 33)).astype(dtype)
    b = rng.standard_normal(40).astype(dtype)
    for bias in (b, None):
        y = K.linear(x, w, bias, activation="relu")
        assert y.dtype == dtype and y.shape == (70, 40)
        np.testing.assert_array_equal(y, K.relu(K.linear(x, w, bias)))
    big = rng.standard_normal((512, 256)).astype(dtype)  # the row-block (parallel) product
    wb = rng.standard_normal((256, 256)).astype(dtype)
    np.testing.assert_array_equal(K.linear(big, wb, wb[0], activation="relu"),
                                  K.relu(K.linear(big, wb, wb[0])))
    assert K.linear(x[:0], w, b, activation="relu").shape == (0, 40)
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        K.linear(x, w, b, activation="sigmoid")
