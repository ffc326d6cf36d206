"""Layer-normalisation kernels against the naive reference, PyTorch and numerical gradients,
with the weight gradients' bits across thread counts."""
import numpy as np
import pytest

import fastnn
import fastnn.kernels as K
from fastnn._kernels.cpu.layernorm import SERIAL_BELOW
from tests.gradients import check_backward
from tests.naive import layernorm as ref

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}
# (x shape, normalized_shape)
CASES = [((5, 8), 8), ((3, 4, 6), (6,)), ((2, 3, 4, 5), (4, 5)), ((7,), 7)]


def _x(rng, shape, dtype, offset=3.0):
    return (rng.standard_normal(shape) * 2 + offset).astype(dtype)


def _affine(rng, shape, dtype):
    shape = (shape,) if isinstance(shape, int) else shape
    return rng.uniform(0.5, 2.0, shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,normalized", CASES)
def test_matches_naive(shape, normalized, affine, dtype, rng):
    k = 1 if isinstance(normalized, int) else len(normalized)
    x = _x(rng, shape, dtype)
    gamma, beta = _affine(rng, normalized, dtype) if affine else (None, None)
    dy = rng.standard_normal(shape).astype(dtype)
    y, mean, invstd = K.layer_norm(x, normalized, gamma, beta, eps=1e-5)
    want_y, want_mean, want_invstd = ref.layer_norm(x, k, gamma, beta)
    lead = shape[:len(shape) - k]
    assert y.shape == shape and mean.shape == invstd.shape == lead
    for a in (y, mean, invstd):
        assert a.dtype == dtype
    np.testing.assert_allclose(y, want_y, **TOL[dtype])
    np.testing.assert_allclose(mean, want_mean, **TOL[dtype])
    np.testing.assert_allclose(invstd, want_invstd, **TOL[dtype])
    dx, dgamma, dbeta = K.layer_norm_backward(dy, x, mean, invstd, gamma)
    want = ref.layer_norm_backward(dy, x, k, gamma)
    loose = {key: 10 * v for key, v in TOL[dtype].items()}
    for got, w in zip((dx, dgamma, dbeta), want):
        assert got.dtype == dtype and got.shape == w.shape
        np.testing.assert_allclose(got, w, **loose)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,normalized", [((4, 6, 10), (10,)), ((3, 5, 4, 2), (4, 2))])
def test_matches_torch(shape, normalized, dtype, rng):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    x = _x(rng, shape, dtype, offset=1.0)
    gamma, beta = _affine(rng, normalized, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    ty = F.layer_norm(tx, normalized, tg, tb, eps=1e-3)
    tdx, tdg, tdb = torch.autograd.grad(ty, (tx, tg, tb), torch.tensor(dy))
    y, mean, invstd = K.layer_norm(x, normalized, gamma, beta, eps=1e-3)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    dx, dg, db = K.layer_norm_backward(dy, x, mean, invstd, gamma)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dx, tdx.numpy(), **tol)
    np.testing.assert_allclose(dg, tdg.numpy(), **tol)
    np.testing.assert_allclose(db, tdb.numpy(), **tol)
    assert dx.dtype == dg.dtype == db.dtype == dtype


@pytest.mark.parametrize("affine", [True, False])
def test_numerical_gradient(affine, rng):
    x = _x(rng, (3, 2, 5), np.float64)
    gamma, beta = _affine(rng, (2, 5), np.float64)

    if affine:
        def forward(x_, g_, b_):
            return K.layer_norm(x_, (2, 5), g_, b_)[0]

        def backward(dy, x_, g_, b_):
            _, mean, invstd = K.layer_norm(x_, (2, 5), g_, b_)
            return K.layer_norm_backward(dy, x_, mean, invstd, g_)
        check_backward(forward, backward, [x, gamma, beta], rtol=1e-5, atol=1e-7)
    else:
        def forward(x_):
            return K.layer_norm(x_, 5)[0]

        def backward(dy, x_):
            _, mean, invstd = K.layer_norm(x_, 5)
            return K.layer_norm_backward(dy, x_, mean, invstd)[:1]
        check_backward(forward, backward, [x], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape,k", [((3000, 40), 1), ((6, 8, 1500), 1), ((40, 30, 32), 2)])
def test_parallel_path_matches_naive(shape, k, rng):
    x = _x(rng, shape, np.float64)
    normalized = shape[len(shape) - k:]
    gamma, beta = _affine(rng, normalized, np.float64)
    dy = rng.standard_normal(shape)
    assert x.size >= SERIAL_BELOW
    y, mean, invstd = K.layer_norm(x, normalized, gamma, beta)
    np.testing.assert_allclose(y, ref.layer_norm(x, k, gamma, beta)[0], rtol=1e-11, atol=1e-11)
    got = K.layer_norm_backward(dy, x, mean, invstd, gamma)
    for g, w in zip(got, ref.layer_norm_backward(dy, x, k, gamma)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)


def test_bits_do_not_depend_on_the_thread_count(rng):
    x = _x(rng, (512, 96), np.float32)
    gamma, beta = _affine(rng, 96, np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    runs = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            with K.cpu_work():
                y, mean, invstd = K.layer_norm(x, 96, gamma, beta)
                runs.append((y, mean, invstd) + K.layer_norm_backward(dy, x, mean, invstd, gamma))
    finally:
        fastnn.set_num_threads(None)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_large_offset_keeps_the_variance(rng):
    """float32 rows with mean 1e4 and std 1: two-pass float64 statistics, no cancellation."""
    x = (rng.standard_normal((50, 400)) + 1e4).astype(np.float32)
    y, mean, invstd = K.layer_norm(x, 400)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(exact.var(axis=1) + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(y.std(axis=1, dtype=np.float64), 1.0, rtol=1e-4)


def test_bad_arguments(rng):
    x = _x(rng, (4, 3, 5), np.float32)
    gamma, beta = _affine(rng, 5, np.float32)
    with pytest.raises(ValueError, match=r"normalized_shape \(3,\)"):
        K.layer_norm(x, 3)
    with pytest.raises(ValueError, match="x must end with"):
        K.layer_norm(x, (4, 5))
    with pytest.raises(TypeError, match="normalized_shape"):
        K.layer_norm(x, 1.5)
    with pytest.raises(TypeError, match="normalized_shape"):
        K.layer_norm(x, ())
    with pytest.raises(ValueError, match="gamma must have shape"):
        K.layer_norm(x, 5, gamma[:4], beta)
    with pytest.raises(TypeError, match="beta must have dtype"):
        K.layer_norm(x, 5, gamma, beta.astype(np.float64))
    with pytest.raises(ValueError, match="eps"):
        K.layer_norm(x, 5, eps=0.0)
    y, mean, invstd = K.layer_norm(x, 5, gamma, beta)
    with pytest.raises(ValueError, match="dy must have shape"):
        K.layer_norm_backward(y[:2], x, mean, invstd, gamma)
    with pytest.raises(ValueError, match="mean must have the shape"):
        K.layer_norm_backward(y, x, mean[:2], invstd[:2], gamma)
    with pytest.raises(ValueError, match="invstd must have shape"):
        K.layer_norm_backward(y, x, mean, invstd[:, :2], gamma)
    with pytest.raises(TypeError, match="mean must have dtype"):
        K.layer_norm_backward(y, x, mean.astype(np.float64), invstd, gamma)


def test_empty_batch(rng):
    x = np.zeros((0, 4), np.float32)
    y, mean, invstd = K.layer_norm(x, 4)
    assert y.shape == (0, 4) and mean.shape == (0,)
    dx, dg, db = K.layer_norm_backward(x, x, mean, invstd)
    assert dx.shape == (0, 4) and not dg.any() and not db.any()
