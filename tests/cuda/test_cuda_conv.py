"""Convolutions on the GPU (implicit GEMM) against the CPU kernels."""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import SIMULATOR, to_host, tol

pytestmark = pytest.mark.cuda

# x shape, w shape (C_out, C_in/groups, kh, kw), stride, padding, dilation, groups
CASES = [
    ((2, 3, 5, 6), (4, 3, 3, 3), 1, 1, 1, 1),
    ((1, 4, 7, 5), (6, 2, 3, 2), (2, 1), (0, 1), (1, 2), 2),
    ((2, 2, 6, 6), (3, 2, 1, 1), 1, 0, 1, 1),
    ((1, 2, 8, 7), (3, 2, 3, 3), (2, 3), (1, 2), (2, 1), 1),
]


def _data(rng, xs, ws, dtype):
    return (rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype),
            rng.standard_normal(ws[0]).astype(dtype))


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES)
def test_conv2d_forward_and_backward(rng, xs, ws, s, p, d, g):
    x, w, b = _data(rng, xs, ws, np.float32)
    for bias in (b, None):
        ref = K.cpu.conv2d(x, w, bias, s, p, d, g)
        got = to_host(K.cuda.conv2d(x, w, bias, s, p, d, g))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, **tol(np.float32))
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    for r, a in zip(K.cpu.conv2d_backward(dy, x, w, s, p, d, g),
                    to_host(K.cuda.conv2d_backward(dy, x, w, s, p, d, g))):
        assert a.shape == r.shape
        np.testing.assert_allclose(a, r, **tol(np.float32))


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES[:2] + CASES[3:])
def test_conv_transpose2d(rng, xs, ws, s, p, d, g):
    x, w0, _ = _data(rng, xs, ws, np.float32)
    w = rng.standard_normal((xs[1], ws[0] // g, ws[2], ws[3])).astype(np.float32)
    b = rng.standard_normal(ws[0] // g * g).astype(np.float32)
    sp = (s, s) if np.isscalar(s) else s
    op = tuple(min(v - 1, 1) for v in sp)   # largest valid output padding up to 1
    ref = K.cpu.conv_transpose2d(x, w, b, s, p, op, g, d)
    got = to_host(K.cuda.conv_transpose2d(x, w, b, s, p, op, g, d))
    np.testing.assert_allclose(got, ref, **tol(np.float32))
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    for r, a in zip(K.cpu.conv_transpose2d_backward(dy, x, w, s, p, op, g, d),
                    to_host(K.cuda.conv_transpose2d_backward(dy, x, w, s, p, op, g, d))):
        np.testing.assert_allclose(a, r, **tol(np.float32))


def test_conv1d(rng):
    x = rng.standard_normal((2, 3, 11)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    ref = K.cpu.conv1d(x, w, b, stride=2, padding=1, dilation=2)
    got = to_host(K.cuda.conv1d(cuda.to_device(x), w, b, stride=2, padding=1, dilation=2))
    np.testing.assert_allclose(got, ref, **tol(np.float32))
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    for r, a in zip(K.cpu.conv1d_backward(dy, x, w, stride=2, padding=1, dilation=2),
                    to_host(K.cuda.conv1d_backward(dy, x, w, stride=2, padding=1, dilation=2))):
        np.testing.assert_allclose(a, r, **tol(np.float32))


def test_float64_stays_float64(rng):
    x, w, b = _data(rng, (1, 2, 5, 5), (3, 2, 3, 3), np.float64)
    got = to_host(K.cuda.conv2d(x, w, b, padding=1))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, K.cpu.conv2d(x, w, b, padding=1), **tol(np.float64))
    dy = rng.standard_normal(got.shape)
    for r, a in zip(K.cpu.conv2d_backward(dy, x, w, padding=1),
                    to_host(K.cuda.conv2d_backward(dy, x, w, padding=1))):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, r, **tol(np.float64))


@pytest.mark.skipif(SIMULATOR, reason="full-size tiles and split-K: real GPU only")
def test_conv_full_tiles(rng):
    x, w, b = _data(rng, (4, 16, 20, 20), (24, 16, 3, 3), np.float32)
    ref = K.cpu.conv2d(x, w, b, padding=1)
    got = to_host(K.cuda.conv2d(x, w, b, padding=1))
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-6
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    for r, a in zip(K.cpu.conv2d_backward(dy, x, w, padding=1),
                    to_host(K.cuda.conv2d_backward(dy, x, w, padding=1))):
        assert np.linalg.norm(a - r) / np.linalg.norm(r) < 1e-6


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES[:2])
def test_conv2d_fused_relu_matches_cpu(rng, xs, ws, s, p, d, g):
    x, w, b = _data(rng, xs, ws, np.float32)
    for bias in (b, None):
        ref = K.cpu.conv2d(x, w, bias, s, p, d, g, activation="relu")
        got = to_host(K.cuda.conv2d(x, w, bias, s, p, d, g, activation="relu"))
        assert got.dtype == np.float32 and got.min() >= 0
        np.testing.assert_allclose(got, ref, **tol(np.float32))


@pytest.mark.parametrize("padding,stride,dilation", [("causal", 1, 2), ("causal", 2, 3),
                                                     ("same", 1, 2)])
def test_conv1d_padding_modes(rng, padding, stride, dilation):
    """Causal (left zeros only) and 'same' (the odd zero after): the same results as the CPU."""
    x = rng.standard_normal((2, 4, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 4)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    geo = dict(stride=stride, padding=padding, dilation=dilation, groups=2)
    ref = K.cpu.conv1d(x, w, b, **geo)
    got = to_host(K.cuda.conv1d(cuda.to_device(x), w, b, **geo))
    assert got.shape == ref.shape == (2, 6, (9 - 1) // stride + 1)
    np.testing.assert_allclose(got, ref, **tol(np.float32))
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    for r, a in zip(K.cpu.conv1d_backward(dy, x, w, **geo),
                    to_host(K.cuda.conv1d_backward(dy, x, w, **geo))):
        np.testing.assert_allclose(a, r, **tol(np.float32))
