"""The tiled GEMM behind dense layers and convolutions, against NumPy."""
import numpy as np
import pytest
from numba import cuda

from cuda_helpers import SIMULATOR, to_host, tol
from fastnn._kernels.cuda import _gemm

pytestmark = pytest.mark.cuda


def _operands(rng, M, N, K, ta, tb, dtype):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    return a, b, ref


@pytest.mark.parametrize("ta", [False, True], ids=["A", "At"])
@pytest.mark.parametrize("tb", [False, True], ids=["B", "Bt"])
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (5, 7, 9), (13, 17, 3), (9, 16, 21)])
def test_matmul_layouts(rng, M, N, K, ta, tb):
    a, b, ref = _operands(rng, M, N, K, ta, tb, np.float32)
    out = _gemm.matmul(cuda.to_device(a), cuda.to_device(b), trans_a=ta, trans_b=tb)
    got = to_host(out)
    assert got.dtype == np.float32 and got.shape == (M, N)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_matmul_float64_and_bias(rng, dtype):
    a, b, ref = _operands(rng, 6, 10, 7, False, True, dtype)
    bias_n = rng.standard_normal(10).astype(dtype)
    bias_m = rng.standard_normal(6).astype(dtype)
    got = to_host(_gemm.matmul(cuda.to_device(a), cuda.to_device(b), trans_b=True,
                               bias=cuda.to_device(bias_n)))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref + bias_n, **tol(dtype))
    got = to_host(_gemm.matmul(cuda.to_device(a), cuda.to_device(b), trans_b=True,
                               bias=cuda.to_device(bias_m), bias_axis=0))
    np.testing.assert_allclose(got, ref + bias_m[:, None], **tol(dtype))


@pytest.mark.parametrize("split", [2, 3, 5])
def test_split_k_sums_partials_in_order(rng, split):
    M, N, K = 6, 5, 37
    a, b, ref = _operands(rng, M, N, K, False, False, np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    c = cuda.device_array(M * N, np.float32)
    _gemm.launch(cuda.to_device(a.ravel()), cuda.to_device(b.ravel()), c, M, N, K,
                 bias=cuda.to_device(bias), bias_mode=_gemm.BIAS_N,
                 pa=(0, K, 0, 0), pb=(0, N, 0, 0, 1, 1, 1, 1), pc=(0, N, 0, 0, 0, 0), split=split)
    np.testing.assert_allclose(to_host(c).reshape(M, N), ref + bias, rtol=1e-5, atol=1e-5)


def test_empty_k_gives_bias(rng):
    bias = rng.standard_normal(4).astype(np.float32)
    got = to_host(_gemm.matmul(cuda.device_array((3, 0), np.float32),
                               cuda.device_array((0, 4), np.float32), bias=cuda.to_device(bias)))
    np.testing.assert_array_equal(got, np.broadcast_to(bias, (3, 4)))


@pytest.mark.skipif(SIMULATOR, reason="full-size tiles: real GPU only (slow in the simulator)")
@pytest.mark.parametrize("M,N,K", [(200, 300, 150), (64, 64, 5000), (257, 129, 33), (1, 700, 900)])
def test_matmul_full_tiles_and_auto_split(rng, M, N, K):
    for ta, tb in ((False, False), (True, False), (False, True)):
        a, b, ref = _operands(rng, M, N, K, ta, tb, np.float32)
        got = to_host(_gemm.matmul(cuda.to_device(a), cuda.to_device(b), trans_a=ta, trans_b=tb))
        err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        assert err < 1e-6, (ta, tb, err)
