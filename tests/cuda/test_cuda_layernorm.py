"""Layer normalisation on the GPU against the CPU kernels (tiny shapes for the simulator)."""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import to_host, tol

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("shape,normalized", [((3, 5), 5), ((2, 2, 3, 2), (3, 2)),
                                              ((40, 3), 3)])   # 40 rows: two gradient chunks
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(rng, dtype, shape, normalized, affine):
    x = (rng.standard_normal(shape) * 2 + 30).astype(dtype)
    nshape = (normalized,) if isinstance(normalized, int) else normalized
    gamma = rng.uniform(0.5, 2, nshape).astype(dtype) if affine else None
    beta = rng.standard_normal(nshape).astype(dtype) if affine else None
    y, mean, invstd = K.cpu.layer_norm(x, normalized, gamma, beta, 1e-5)
    got = K.cuda.layer_norm(cuda.to_device(x), normalized, gamma, beta, 1e-5)
    for r, g in zip((y, mean, invstd), got):
        g = to_host(g)
        assert g.dtype == dtype and g.shape == r.shape
        np.testing.assert_allclose(g, r, **tol(dtype))
    dy = rng.standard_normal(shape).astype(dtype)
    ref = K.cpu.layer_norm_backward(dy, x, mean, invstd, gamma)
    back = K.cuda.layer_norm_backward(cuda.to_device(dy), cuda.to_device(x), got[1], got[2],
                                      gamma)
    for r, g in zip(ref, back):
        g = to_host(g)
        assert g.dtype == dtype and g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=1e-4 if dtype == np.float32 else 1e-9,
                                   atol=1e-4 if dtype == np.float32 else 1e-9)
