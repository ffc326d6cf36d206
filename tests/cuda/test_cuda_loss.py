"""Fused losses on the GPU (block reductions) against the CPU kernels."""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import to_host, tol
from fastnn._kernels.cpu import loss as cpu_loss
from fastnn._kernels.cuda import loss as gpu_loss

pytestmark = pytest.mark.cuda


def _weights(rng, n, dtype, weighted):
    return rng.random(n).astype(dtype) + 0.1 if weighted else None


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n,c", [(6, 5), (3, 40)])
def test_softmax_cross_entropy(rng, dtype, weighted, n, c):
    x = (rng.standard_normal((n, c)) * 3).astype(dtype)
    x[0, 0] = 90.0
    t = rng.integers(0, c, n).astype(np.int64)
    w = _weights(rng, n, dtype, weighted)
    loss, g = cpu_loss.softmax_cross_entropy(x, t, w)
    gloss, gg = gpu_loss.softmax_cross_entropy(cuda.to_device(x), cuda.to_device(t),
                                               None if w is None else cuda.to_device(w))
    assert isinstance(gloss, dtype.type)
    np.testing.assert_allclose(gloss, loss, **tol(dtype))
    np.testing.assert_allclose(to_host(gg), g, **tol(dtype))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "mse_loss"])
def test_elementwise_losses(rng, dtype, weighted, name):
    x = (rng.standard_normal((5, 3)) * 3).astype(dtype)
    y = rng.random((5, 3)).astype(dtype)
    w = _weights(rng, 5, dtype, weighted)
    loss, g = getattr(cpu_loss, name)(x, y, w)
    gloss, gg = getattr(gpu_loss, name)(cuda.to_device(x), cuda.to_device(y),
                                        None if w is None else cuda.to_device(w))
    assert isinstance(gloss, dtype.type)
    np.testing.assert_allclose(gloss, loss, **tol(dtype))
    np.testing.assert_allclose(to_host(gg), g, **tol(dtype))


def test_public_losses_on_device(rng):
    x = rng.standard_normal((8, 4)).astype(np.float32)
    t = rng.integers(0, 4, 8)
    loss, g = K.softmax_cross_entropy(cuda.to_device(x), cuda.to_device(t))
    ref, rg = K.cpu.softmax_cross_entropy(x, t)
    np.testing.assert_allclose(float(loss), float(ref), rtol=1e-6)
    np.testing.assert_allclose(to_host(g), rg, rtol=1e-5, atol=1e-7)
    y = rng.random((8, 4)).astype(np.float32)
    loss, g = K.mse_loss(cuda.to_device(x), cuda.to_device(y))
    np.testing.assert_allclose(float(loss), float(K.cpu.mse_loss(x, y)[0]), rtol=1e-6)
