"""Global max and average pooling (1-D and 2-D) against float64 references, PyTorch and gradients."""
import numpy as np
import pytest

import fastnn
from fastnn import kernels as K
from tests.gradients import check_backward
from tests.naive import pool as ref

TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
SHAPES_2D = [(2, 3, 4, 5), (1, 1, 1, 1), (3, 2, 1, 7), (2, 4, 9, 1)]
SHAPES_1D = [(2, 3, 7), (1, 1, 1), (4, 2, 33)]


def ties(shape, rng, dtype):
    """Small integers: most planes hold their maximum more than once."""
    return rng.integers(-2, 3, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES_2D)
def test_global_max_pool2d_matches_naive(shape, dtype, rng):
    for x in (rng.standard_normal(shape).astype(dtype), ties(shape, rng, dtype)):
        y, idx = K.global_max_pool2d(x)
        ry, ridx = ref.global_max_pool2d(x)
        assert y.shape == idx.shape == shape[:2]
        assert y.dtype == dtype and idx.dtype == np.int64
        np.testing.assert_array_equal(y, ry.astype(dtype))
        np.testing.assert_array_equal(idx, ridx)
        dy = rng.standard_normal(shape[:2]).astype(dtype)
        dx = K.global_max_pool2d_backward(dy, idx, shape)
        assert dx.dtype == dtype and dx.shape == shape
        np.testing.assert_allclose(dx, ref.global_max_pool2d_backward(dy, ridx, shape), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES_1D)
def test_global_max_pool1d_matches_naive(shape, dtype, rng):
    for x in (rng.standard_normal(shape).astype(dtype), ties(shape, rng, dtype)):
        y, idx = K.global_max_pool1d(x)
        ry, ridx = ref.global_max_pool2d(x)
        assert y.dtype == dtype and idx.dtype == np.int64
        np.testing.assert_array_equal(y, ry.astype(dtype))
        np.testing.assert_array_equal(idx, ridx)
        dy = rng.standard_normal(shape[:2]).astype(dtype)
        dx = K.global_max_pool1d_backward(dy, idx, shape)
        assert dx.dtype == dtype and dx.shape == shape
        np.testing.assert_allclose(dx, ref.global_max_pool2d_backward(dy, ridx, shape), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES_1D)
def test_global_avg_pool1d_matches_naive(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    y = K.global_avg_pool1d(x)
    assert y.dtype == dtype and y.shape == shape[:2]
    np.testing.assert_allclose(y, ref.global_avg_pool1d(x), **TOL[dtype])
    dy = rng.standard_normal(shape[:2]).astype(dtype)
    dx = K.global_avg_pool1d_backward(dy, shape)
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, ref.global_avg_pool1d_backward(dy, shape), **TOL[dtype])


def test_numerical_gradients(rng):
    x2 = rng.permutation(2 * 3 * 4 * 3).reshape(2, 3, 4, 3) * 0.1   # no ties
    x1 = rng.permutation(2 * 3 * 5).reshape(2, 3, 5) * 0.1
    check_backward(lambda v: K.global_max_pool2d(v)[0],
                   lambda d, v: (K.global_max_pool2d_backward(d, K.global_max_pool2d(v)[1],
                                                              v.shape),), [x2])
    check_backward(lambda v: K.global_max_pool1d(v)[0],
                   lambda d, v: (K.global_max_pool1d_backward(d, K.global_max_pool1d(v)[1],
                                                              v.shape),), [x1])
    check_backward(K.global_avg_pool1d, lambda d, v: (K.global_avg_pool1d_backward(d, v.shape),),
                   [rng.standard_normal((2, 3, 5))])


def test_nan_and_inf():
    x = np.array([[[1.0, np.nan, 3.0, np.nan, 0.5], [-np.inf] * 5, [2.0, np.inf, np.inf, 1, 0]]])
    y, idx = K.global_max_pool1d(x)
    assert np.isnan(y[0, 0]) and idx[0, 0] == 3          # NaN propagates (the last one, as max_pool)
    assert y[0, 1] == -np.inf and idx[0, 1] == 0         # an all -inf row: its first element
    assert y[0, 2] == np.inf and idx[0, 2] == 1          # the first of two maxima
    max1d, _ = K.max_pool1d(x, 5)
    np.testing.assert_array_equal(y, max1d[:, :, 0])     # the same as one window over the row


# ------------------------------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_with_ties(dtype, rng):
    """Values, indices and gradients of ``F.adaptive_max_pool1d/2d(x, 1)``: a tie sends the whole
    gradient to the first maximal element."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for shape, fn, ours, back in (
            ((3, 4, 6), F.adaptive_max_pool1d, K.global_max_pool1d, K.global_max_pool1d_backward),
            ((3, 4, 3, 5), F.adaptive_max_pool2d, K.global_max_pool2d,
             K.global_max_pool2d_backward)):
        x = ties(shape, rng, dtype)
        x[0, 0] = 1.0                                       # a plane of equal values
        xt = torch.tensor(x, requires_grad=True)
        ty, tidx = fn(xt, 1, return_indices=True)
        y, idx = ours(x)
        np.testing.assert_array_equal(y, ty.detach().numpy().reshape(shape[:2]))
        np.testing.assert_array_equal(idx, tidx.numpy().reshape(shape[:2]))
        dy = rng.standard_normal(shape[:2]).astype(dtype)
        ty.backward(torch.tensor(dy).reshape(ty.shape))
        np.testing.assert_array_equal(back(dy, idx, shape), xt.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avg_pool1d_matches_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4, 7)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool1d(xt, 1)[:, :, 0]
    np.testing.assert_allclose(K.global_avg_pool1d(x), ty.detach().numpy(), **TOL[dtype])
    dy = rng.standard_normal((3, 4)).astype(dtype)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(K.global_avg_pool1d_backward(dy, x.shape), xt.grad.numpy(),
                               **TOL[dtype])


# ------------------------------------------------------------------------- arguments, threads

def test_empty_batch_and_non_contiguous(rng):
    y, idx = K.global_max_pool2d(np.zeros((0, 3, 2, 2), np.float32))
    assert y.shape == idx.shape == (0, 3)
    assert K.global_max_pool2d_backward(y, idx, (0, 3, 2, 2)).shape == (0, 3, 2, 2)
    assert K.global_avg_pool1d(np.zeros((0, 2, 4), np.float32)).shape == (0, 2)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    xt = np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(0, 2, 1)   # (3, 5, 4), strided
    assert not xt.flags.c_contiguous
    for fn in (lambda v: K.global_max_pool1d(v)[0], lambda v: K.global_max_pool1d(v)[1],
               K.global_avg_pool1d):
        np.testing.assert_array_equal(fn(xt), fn(x))


def test_bad_arguments(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="x must be 4-D"):
        K.global_max_pool2d(x[0])
    with pytest.raises(ValueError, match="x must be 3-D"):
        K.global_max_pool1d(x)
    with pytest.raises(ValueError, match="positive L"):
        K.global_avg_pool1d(np.zeros((2, 3, 0), np.float32))
    with pytest.raises(ValueError, match="positive H and W"):
        K.global_max_pool2d(np.zeros((2, 3, 0, 4), np.float32))
    with pytest.raises(TypeError, match="x"):
        K.global_max_pool1d(np.zeros((2, 3, 4), np.int32))
    y, idx = K.global_max_pool2d(x)
    with pytest.raises(ValueError, match="dy"):
        K.global_max_pool2d_backward(y[:1], idx, x.shape)
    with pytest.raises(ValueError, match="indices"):
        K.global_max_pool2d_backward(y, idx[:, :2], x.shape)
    with pytest.raises(TypeError, match="indices"):
        K.global_max_pool2d_backward(y, idx.astype(np.float32), x.shape)
    with pytest.raises(ValueError, match="indices"):
        K.global_max_pool2d_backward(y, idx + 16, x.shape)
    with pytest.raises(TypeError, match="x_shape"):
        K.global_max_pool1d_backward(y, idx, x.shape)
    with pytest.raises(ValueError, match="dy"):
        K.global_avg_pool1d_backward(np.zeros((2, 4), np.float32), (2, 3, 5))


def test_same_bits_with_one_and_two_threads(rng):
    """Each plane is reduced by one thread in a fixed order: the thread count changes nothing."""
    x = rng.standard_normal((8, 16, 9, 11)).astype(np.float32)
    x1 = x.reshape(8, 16, 99)
    dy = rng.standard_normal((8, 16)).astype(np.float32)
    runs = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            with K.cpu_work():
                y2, i2 = K.global_max_pool2d(x)
                y1, i1 = K.global_max_pool1d(x1)
                runs.append([y2, i2, K.global_max_pool2d_backward(dy, i2, x.shape), y1, i1,
                             K.global_avg_pool1d(x1), K.global_avg_pool1d_backward(dy, x1.shape)])
    finally:
        fastnn.set_num_threads(None)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
