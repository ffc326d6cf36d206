"""Batch normalisation on the GPU against the CPU kernels (running stats updated on device)."""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import to_host, tol

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 2)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(rng, dtype, shape, training, affine):
    x = (rng.standard_normal(shape) * 2 + 30).astype(dtype)   # far from zero: variance stays exact
    c = shape[1]
    gamma = rng.standard_normal(c).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine else None
    rm = rng.standard_normal(c).astype(dtype)
    rv = (rng.random(c) + 0.5).astype(dtype)
    rm_cpu, rv_cpu = rm.copy(), rv.copy()
    rm_gpu, rv_gpu = cuda.to_device(rm), cuda.to_device(rv)
    y, cache = K.cpu.batch_norm(x, gamma, beta, rm_cpu, rv_cpu, training, 0.2, 1e-5)
    yg, gcache = K.cuda.batch_norm(x, gamma, beta, rm_gpu, rv_gpu, training, 0.2, 1e-5)
    np.testing.assert_allclose(to_host(yg), y, **tol(dtype))
    np.testing.assert_allclose(rm_gpu.copy_to_host(), rm_cpu, **tol(dtype))
    np.testing.assert_allclose(rv_gpu.copy_to_host(), rv_cpu, **tol(dtype))
    if training:
        assert not np.allclose(rm_gpu.copy_to_host(), rm)   # updated in place on the device
    dy = rng.standard_normal(shape).astype(dtype)
    ref = K.cpu.batch_norm_backward(dy, cache)
    got = K.cuda.batch_norm_backward(dy, gcache)
    for r, a in zip(ref, got):
        if r is None:
            assert a is None
        else:
            a = to_host(a)
            assert a.dtype == dtype
            np.testing.assert_allclose(a, r, rtol=1e-4 if dtype == np.float32 else 1e-9,
                                       atol=1e-4 if dtype == np.float32 else 1e-9)
