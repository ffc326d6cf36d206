"""Dropout on the GPU: the counter-based generator gives the CPU's mask for a seed."""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import to_host

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("p,seed", [(0.3, 0), (0.5, 12345), (0.0, 7), (0.9, 2 ** 64 - 1)])
def test_dropout_mask_equals_cpu(rng, dtype, p, seed):
    x = rng.standard_normal((4, 9)).astype(dtype)
    y, mask = K.cpu.dropout(x, p, seed)
    yg, mg = to_host(K.cuda.dropout(cuda.to_device(x), p, seed))
    assert mg.dtype == np.uint8 and yg.dtype == dtype
    np.testing.assert_array_equal(mg, mask)
    np.testing.assert_allclose(yg, y, rtol=1e-6, atol=0)
    dy = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_allclose(to_host(K.cuda.dropout_backward(dy, mg, p)),
                               K.cpu.dropout_backward(dy, mask, p), rtol=1e-6, atol=0)
