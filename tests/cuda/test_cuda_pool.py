"""Pooling on the GPU against the CPU kernels (indices and stochastic samples exactly)."""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import to_host, tol

pytestmark = pytest.mark.cuda

CASES = [((2, 3, 6, 6), 2, None, 0), ((1, 2, 7, 5), 3, 2, 1), ((2, 1, 5, 6), (3, 2), (1, 2), (1, 0))]


@pytest.mark.parametrize("shape,k,s,p", CASES)
def test_max_and_avg_pool2d(rng, dtype, shape, k, s, p):
    x = rng.standard_normal(shape).astype(dtype)
    y, idx = K.cpu.max_pool2d(x, k, s, p)
    yg, ig = to_host(K.cuda.max_pool2d(x, k, s, p))
    np.testing.assert_array_equal(yg, y)
    np.testing.assert_array_equal(ig, idx)
    assert yg.dtype == dtype and ig.dtype == np.int64
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(to_host(K.cuda.max_pool2d_backward(dy, idx, x.shape)),
                               K.cpu.max_pool2d_backward(dy, idx, x.shape), **tol(dtype))
    a = K.cpu.avg_pool2d(x, k, s, p)
    np.testing.assert_allclose(to_host(K.cuda.avg_pool2d(x, k, s, p)), a, **tol(dtype))
    np.testing.assert_allclose(to_host(K.cuda.avg_pool2d_backward(dy, x.shape, k, s, p)),
                               K.cpu.avg_pool2d_backward(dy, x.shape, k, s, p), **tol(dtype))


def test_pool1d(rng):
    x = rng.standard_normal((2, 3, 9)).astype(np.float32)
    y, idx = K.cpu.max_pool1d(x, 3, 2, 1)
    yg, ig = to_host(K.cuda.max_pool1d(cuda.to_device(x), 3, 2, 1))
    np.testing.assert_array_equal(yg, y)
    np.testing.assert_array_equal(ig, idx)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(to_host(K.cuda.max_pool1d_backward(dy, idx, x.shape)),
                               K.cpu.max_pool1d_backward(dy, idx, x.shape), **tol(np.float32))
    np.testing.assert_allclose(to_host(K.cuda.avg_pool1d(x, 2)), K.cpu.avg_pool1d(x, 2),
                               **tol(np.float32))
    dy = rng.standard_normal(K.cpu.avg_pool1d(x, 2).shape).astype(np.float32)
    np.testing.assert_allclose(to_host(K.cuda.avg_pool1d_backward(dy, x.shape, 2)),
                               K.cpu.avg_pool1d_backward(dy, x.shape, 2), **tol(np.float32))


def test_max_pool_backward_rejects_bad_indices(rng):
    dy = rng.standard_normal((1, 1, 2, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="indices"):
        K.cuda.max_pool2d_backward(dy, np.full((1, 1, 2, 2), 16, np.int64), (1, 1, 4, 4))


def test_global_avg_pool(rng, dtype):
    x = rng.standard_normal((2, 3, 5, 4)).astype(dtype)
    np.testing.assert_allclose(to_host(K.cuda.global_avg_pool2d(x)), K.cpu.global_avg_pool2d(x),
                               **tol(dtype))
    dy = rng.standard_normal((2, 3)).astype(dtype)
    np.testing.assert_allclose(to_host(K.cuda.global_avg_pool2d_backward(dy, x.shape)),
                               K.cpu.global_avg_pool2d_backward(dy, x.shape), **tol(dtype))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("k,s", [(2, None), (3, 2)])
def test_stochastic_pool_matches_cpu_samples(rng, dtype, training, k, s):
    x = (np.abs(rng.standard_normal((2, 2, 7, 6))) * (rng.random((2, 2, 7, 6)) > 0.3)).astype(dtype)
    y, idx = K.cpu.stochastic_pool2d(x, k, s, seed=7, training=training)
    yg, ig = to_host(K.cuda.stochastic_pool2d(x, k, s, seed=7, training=training))
    np.testing.assert_array_equal(ig, idx)
    np.testing.assert_allclose(yg, y, **tol(dtype))
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(
        to_host(K.cuda.stochastic_pool2d_backward(dy, x, idx, k, s, training=training)),
        K.cpu.stochastic_pool2d_backward(dy, x, idx, k, s, training=training), **tol(dtype))


def test_global_max_and_avg_pool_match_cpu(rng, dtype):
    """One block per plane: indices equal the CPU's (first maximum; ties, NaN and -inf)."""
    x = rng.integers(-2, 3, (2, 3, 3, 5)).astype(dtype)      # ties in most planes
    x[0, 0] = -np.inf
    x[0, 1, 1, 2] = np.nan
    x[1, 2, 2, 4] = np.nan
    x[1, 2, 0, 1] = np.nan                                  # two NaN: the later one, as the CPU
    y, idx = K.cpu.global_max_pool2d(x)
    yg, ig = to_host(K.cuda.global_max_pool2d(x))
    assert yg.dtype == dtype and ig.dtype == np.int64 and yg.shape == (2, 3)
    np.testing.assert_array_equal(ig, idx)
    np.testing.assert_array_equal(yg, y)                    # NaN compare equal here
    dy = rng.standard_normal((2, 3)).astype(dtype)
    np.testing.assert_array_equal(to_host(K.cuda.global_max_pool2d_backward(dy, idx, x.shape)),
                                  K.cpu.global_max_pool2d_backward(dy, idx, x.shape))
    x1 = rng.standard_normal((2, 3, 19)).astype(dtype)      # longer than a block's threads
    y1, i1 = K.cpu.global_max_pool1d(x1)
    yg1, ig1 = to_host(K.cuda.global_max_pool1d(cuda.to_device(x1)))
    np.testing.assert_array_equal(ig1, i1)
    np.testing.assert_array_equal(yg1, y1)
    np.testing.assert_array_equal(to_host(K.cuda.global_max_pool1d_backward(dy, i1, x1.shape)),
                                  K.cpu.global_max_pool1d_backward(dy, i1, x1.shape))
    np.testing.assert_allclose(to_host(K.cuda.global_avg_pool1d(x1)), K.cpu.global_avg_pool1d(x1),
                               **tol(dtype))
    np.testing.assert_allclose(to_host(K.cuda.global_avg_pool1d_backward(dy, x1.shape)),
                               K.cpu.global_avg_pool1d_backward(dy, x1.shape), **tol(dtype))


def test_global_pool_layers_on_device(rng):
    import fastnn.nn as nn
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    for layer, xs in ((nn.GlobalMaxPool2D(), x), (nn.GlobalMaxPool1D(), x[:, :, 0]),
                      (nn.GlobalAvgPool1D(), x[:, :, 0])):
        xs = np.ascontiguousarray(xs)
        want = layer.forward(xs)
        dwant = layer.backward(np.ones_like(want))
        got = layer.forward(cuda.to_device(xs))
        np.testing.assert_allclose(to_host(got), want, **tol(np.float32))
        dx = layer.backward(cuda.to_device(np.ones_like(want)))
        np.testing.assert_allclose(to_host(dx), dwant, **tol(np.float32))
