"""Dense layer on the GPU against the CPU kernels."""
import numpy as np
import pytest

import fastnn.kernels as K
from cuda_helpers import to_host, tol

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("lead", [(7,), (2, 3)])
def test_linear_forward_backward(rng, dtype, lead):
    x = rng.standard_normal(lead + (9,)).astype(dtype)
    w = rng.standard_normal((4, 9)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    for bias in (b, None):
        y = to_host(K.cuda.linear(x, w, bias))
        assert y.dtype == dtype and y.shape == lead + (4,)
        np.testing.assert_allclose(y, K.cpu.linear(x, w, bias), **tol(dtype))
    dy = rng.standard_normal(lead + (4,)).astype(dtype)
    for r, a in zip(K.cpu.linear_backward(dy, x, w), to_host(K.cuda.linear_backward(dy, x, w))):
        assert a.shape == r.shape and a.dtype == dtype
        np.testing.assert_allclose(a, r, **tol(dtype))


def test_linear_fused_relu_matches_cpu(rng, dtype):
    x = rng.standard_normal((6, 5)).astype(dtype)
    w = rng.standard_normal((4, 5)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    for bias in (b, None):
        y = to_host(K.cuda.linear(x, w, bias, activation="relu"))
        assert y.dtype == dtype and y.min() >= 0
        np.testing.assert_allclose(y, K.cpu.linear(x, w, bias, activation="relu"), **tol(dtype))
