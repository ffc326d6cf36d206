"""The tiled GEMM behind dense layers and convolutions, against NumPy."""
import numpy as np
import pytest
from numba import cuda

from cuda_helpers import SIMULATOR, to_host, tol
from fastnn._kernels.cuda import _config as cfg
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


def _modes_case(rng, amode, bmode, cmode, bias_mode, M, N, K, G, dtype):
    """Device operands in the given modes (leading dimensions padded, random offset tables) and
    the float64 NumPy result ``C[g] = A[g] @ B[g] + bias`` they stand for."""
    tab = []

    def table(values):
        tab.extend(int(v) for v in np.ravel(values))
        return len(tab) - np.size(values)

    if amode == _gemm.A_ROW:
        a = rng.standard_normal((G, M, K + 3))
        ad, pa = a[:, :, :K], (M * (K + 3), K + 3, 0, 0)
    elif amode == _gemm.A_COL:
        a = rng.standard_normal((G, K, M + 2))
        ad, pa = a[:, :, :M].transpose(0, 2, 1), (K * (M + 2), M + 2, 0, 0)
    else:
        size = M * K + 5
        a = rng.standard_normal((G, size))
        ro, co = rng.permutation(M) * K, rng.permutation(K) + 2
        ad = a[:, ro[:, None] + co[None, :]]
        pa = (size, 0, table(ro), table(co))

    H, W, sh, sw = 5, 6, 2, 3
    if bmode == _gemm.B_ROW:
        b = rng.standard_normal((G, K, N + 1))
        bd, pb = b[:, :, :N], (K * (N + 1), N + 1, 0, 0, 1, 1, 1, 1)
    elif bmode == _gemm.B_COL:
        b = rng.standard_normal((G, N, K + 2))
        bd, pb = b[:, :, :K].transpose(0, 2, 1), (N * (K + 2), K + 2, 0, 0, 1, 1, 1, 1)
    else:
        # images (2 of 3 channels of H x W); triplets (off, h, w) of columns and rows
        strided = bmode == _gemm.B_GATHER_STRIDED
        size = 2 * 3 * H * W
        b = rng.standard_normal((G, size))
        hs, ws = (sh, sw) if strided else (1, 1)
        tn = np.stack([rng.integers(0, 2, N) * 3 * H * W, rng.integers(-2, H * hs, N),
                       rng.integers(-2, W * ws, N)], 1)
        tk = np.stack([rng.integers(0, 3, K) * H * W, rng.integers(-1, 3, K),
                       rng.integers(-1, 3, K)], 1)
        bd = np.zeros((G, K, N))
        for k in range(K):
            for n in range(N):
                ih, iw = tn[n, 1] + tk[k, 1], tn[n, 2] + tk[k, 2]
                if ih < 0 or iw < 0 or ih % hs or iw % ws:
                    continue
                ih, iw = ih // hs, iw // ws
                if ih < H and iw < W:
                    bd[:, k, n] = b[:, tn[n, 0] + tk[k, 0] + ih * W + iw]
        pb = (size, 0, table(tn), table(tk), H, W, sh if strided else 1, sw if strided else 1)

    ref = ad @ bd
    bias = rng.standard_normal(G * M if bias_mode == _gemm.BIAS_M else N)
    if bias_mode == _gemm.BIAS_M:
        ref += bias.reshape(G, M, 1)
    elif bias_mode == _gemm.BIAS_N:
        ref += bias
    if cmode == _gemm.C_ROW:
        c = np.full((G, M, N + 2), np.nan)
        pc = (M * (N + 2), N + 2, 0, 0, 0, M)
        gather = lambda out: out.reshape(G, M, N + 2)[:, :, :N]   # noqa: E731
    else:
        size = M * N + 4
        c = np.full((G, size), np.nan)
        ro, co = rng.permutation(M) * N, rng.permutation(N) + 1
        pc = (size, 0, 0, table(ro), table(co), M)
        gather = lambda out: out.reshape(G, size)[:, ro[:, None] + co[None, :]]   # noqa: E731
    dev = [cuda.to_device(np.ascontiguousarray(v, dtype).ravel()) for v in (a, b, c, bias)]
    return dev, cuda.to_device(np.array(tab + [0], np.int64)), (pa, pb, pc), ref, gather


# the vector layout: runs of 4 rows and columns (2 columns with TN = 2), BK = 16 double-buffered
# slabs, k-fastest loads in groups of 8; every A and B mode, C and bias mode, split-K
@pytest.mark.parametrize("tiles,dtype", [((16, 16, 16, 4, 4), np.float32),
                                         ((16, 8, 16, 4, 2), np.float64)], ids=["t44", "t42"])
@pytest.mark.parametrize("amode", [_gemm.A_ROW, _gemm.A_COL, _gemm.A_TAB], ids=["A", "At", "Atab"])
@pytest.mark.parametrize("bmode", [_gemm.B_ROW, _gemm.B_COL, _gemm.B_GATHER,
                                   _gemm.B_GATHER_STRIDED], ids=["B", "Bt", "Bg", "Bgs"])
def test_gemm_modes_vector_layout(rng, tiles, dtype, amode, bmode):
    M, N, K, G = 21, 19, 37, 2
    cmode = (_gemm.C_ROW, _gemm.C_TAB)[(amode + bmode) % 2]
    bias_mode = (amode + 2 * bmode) % 3
    (A, B, C, bias), tab, (pa, pb, pc), ref, gather = _modes_case(
        rng, amode, bmode, cmode, bias_mode, M, N, K, G, dtype)
    for split in (1, 3):
        _gemm.launch(A, B, C, M, N, K, G, amode=amode, bmode=bmode, cmode=cmode, bias=bias,
                     bias_mode=bias_mode, tab=tab, pa=pa, pb=pb, pc=pc, split=split, tiles=tiles)
        out = to_host(C)
        np.testing.assert_allclose(gather(out), ref, **tol(dtype))
        # nothing written outside C: the padding stays NaN
        assert np.isnan(out).sum() == out.size - G * M * N
        C.copy_to_device(np.full(out.shape, np.nan, dtype))


# the tiles the hardware runs (256 threads a block: about 10-20 s each in the simulator), each in
# the mode that reads most unusually: the data gradient of a strided convolution, and a product of
# two transposed operands split along K
@pytest.mark.parametrize("tiles,dtype,modes,split", [
    (cfg.HARDWARE_GEMM_TILES[0], np.float32,
     (_gemm.A_TAB, _gemm.B_GATHER_STRIDED, _gemm.C_TAB, _gemm.BIAS_M), 1),
    (cfg.HARDWARE_GEMM_TILES[1], np.float32, (_gemm.A_COL, _gemm.B_COL, _gemm.C_ROW, _gemm.BIAS_N), 2),
    (cfg.HARDWARE_GEMM_TILES_F64[0], np.float64,
     (_gemm.A_ROW, _gemm.B_GATHER, _gemm.C_TAB, _gemm.BIAS_NONE), 1),
], ids=["f32-128x128-dgrad", "f32-64x256-tt-split", "f64-128x128-gather"])
def test_hardware_tiles(rng, tiles, dtype, modes, split):
    amode, bmode, cmode, bias_mode = modes
    M, N, K, G = tiles[0] + 2, 20, 2 * tiles[2] + 5, 1
    (A, B, C, bias), tab, (pa, pb, pc), ref, gather = _modes_case(
        rng, amode, bmode, cmode, bias_mode, M, N, K, G, dtype)
    _gemm.launch(A, B, C, M, N, K, G, amode=amode, bmode=bmode, cmode=cmode, bias=bias,
                 bias_mode=bias_mode, tab=tab, pa=pa, pb=pb, pc=pc, split=split, tiles=tiles)
    out = to_host(C)
    np.testing.assert_allclose(gather(out), ref, **tol(dtype))
    assert np.isnan(out).sum() == out.size - G * M * N


def test_gemm_tile_constraints():
    with pytest.raises(AssertionError):       # TM = 6: not whole runs of VA = 4 rows
        _gemm.gemm_kernel(np.dtype(np.float32), (24, 8, 4, 6, 2), 0, 0, 0, 0)
    with pytest.raises(AssertionError):       # gathering: NT = 4 threads, BN = 8 columns
        _gemm.gemm_kernel(np.dtype(np.float32), (4, 8, 4, 2, 4), 0, _gemm.B_GATHER, 0, 0)
