"""Activations, PReLU and softmax on the GPU against the CPU kernels."""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import to_host, tol

pytestmark = pytest.mark.cuda

MAPS = [("relu", {}), ("leaky_relu", {"negative_slope": 0.1}), ("elu", {"alpha": 1.3}),
        ("sigmoid", {}), ("tanh", {}), ("gelu", {})]


@pytest.mark.parametrize("name,kw", MAPS, ids=[m[0] for m in MAPS])
def test_elementwise(rng, dtype, name, kw):
    x = (rng.standard_normal((3, 4, 5)) * 4).astype(dtype)
    x[0, 0, :3] = (0.0, 40.0, -40.0)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y = to_host(getattr(K.cuda, name)(cuda.to_device(x), **kw))
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, getattr(K.cpu, name)(x, **kw), **tol(dtype))
    g = to_host(getattr(K.cuda, name + "_backward")(dy, x, **kw))
    np.testing.assert_allclose(g, getattr(K.cpu, name + "_backward")(dy, x, **kw), **tol(dtype))


@pytest.mark.parametrize("channels", [1, 4])
def test_prelu(rng, dtype, channels):
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    w = rng.standard_normal(channels).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_allclose(to_host(K.cuda.prelu(x, w)), K.cpu.prelu(x, w), **tol(dtype))
    dx, dw = to_host(K.cuda.prelu_backward(dy, x, w))
    rdx, rdw = K.cpu.prelu_backward(dy, x, w)
    np.testing.assert_allclose(dx, rdx, **tol(dtype))
    np.testing.assert_allclose(dw, rdw, **tol(dtype))
    assert dw.shape == w.shape


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(rng, dtype, axis, name):
    x = (rng.standard_normal((3, 5, 4)) * 3).astype(dtype)
    x[0, 0, 0] = 80.0   # large logits: the max shift keeps exp finite
    dy = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_allclose(to_host(getattr(K.cuda, name)(x, axis)),
                               getattr(K.cpu, name)(x, axis), **tol(dtype))
    np.testing.assert_allclose(to_host(getattr(K.cuda, name + "_backward")(dy, x, axis)),
                               getattr(K.cpu, name + "_backward")(dy, x, axis), **tol(dtype))


def test_softmax_long_rows(rng):
    """Rows longer than a block: threads stride over the row."""
    x = rng.standard_normal((2, 300)).astype(np.float32)
    np.testing.assert_allclose(to_host(K.cuda.softmax(x)), K.cpu.softmax(x), rtol=1e-5, atol=1e-7)
