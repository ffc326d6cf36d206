"""Convolution kernels (conv1d, conv2d, transposed conv2d) against naive references, PyTorch,
numerical gradients and properties."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn.kernels as K
from fastnn._kernels.cpu import conv as cpu_conv
from tests.gradients import check_backward
from tests.naive import conv as ref

F64 = dict(rtol=1e-10, atol=1e-10)


def _f32_tol(want):
    """float32 results against a float64 reference: relative to the reference's scale."""
    scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
    return dict(rtol=2e-4, atol=2e-5 * scale)


def _close(got, want, dtype):
    assert got.dtype == dtype
    assert got.shape == np.shape(want)
    tol = F64 if dtype == np.float64 else _f32_tol(want)
    np.testing.assert_allclose(got, want, **tol)


def _conv_data(rng, n, c, hw, co, k, groups, dtype):
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    w = rng.standard_normal((co, c // groups) + k).astype(dtype)
    b = rng.standard_normal(co).astype(dtype)
    return x, w, b


# (N, C_in, (H, W), C_out, (kh, kw), stride, padding, dilation, groups): covers every internal
# path (long and short reductions, unit and larger strides, few output channels), 1x1 kernels,
# kernel == input, stride > kernel, batch of one, odd sizes, groups, depthwise, dilation.
CASES = [
    (2, 1, (12, 12), 6, (5, 5), 1, 0, 1, 1),       # LeNet-like first layer
    (3, 6, (8, 8), 16, (5, 5), 1, 0, 1, 1),        # LeNet-like second layer
    (2, 8, (7, 9), 16, (3, 3), 1, 1, 1, 1),        # 3x3 same padding, odd sizes
    (1, 12, (6, 5), 8, (3, 3), 2, 1, 1, 1),        # strided, batch of one
    (2, 4, (9, 9), 5, (3, 3), 3, 0, 1, 1),         # stride == kernel
    (2, 3, (10, 11), 4, (2, 2), 4, 1, 1, 1),       # stride > kernel
    (2, 16, (5, 5), 8, (1, 1), 1, 0, 1, 1),        # 1x1
    (2, 6, (5, 4), 3, (5, 4), 1, 0, 1, 1),         # kernel == input
    (2, 8, (9, 9), 16, (3, 3), 1, 2, 2, 1),        # dilation
    (2, 6, (8, 7), 6, (3, 3), (1, 2), (2, 0), (2, 1), 3),  # groups, asymmetric everything
    (3, 8, (6, 6), 8, (3, 3), 1, 1, 1, 8),         # depthwise
    (2, 12, (7, 7), 2, (3, 3), 1, 1, 1, 1),        # few output channels, long reduction
    (2, 10, (7, 6), 4, (3, 3), 2, 1, 1, 2),        # groups, strided, long reduction
    (1, 2, (3, 3), 3, (3, 3), 1, 4, 1, 1),         # padding larger than the kernel
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_conv2d_matches_naive(case, dtype, rng):
    n, c, hw, co, k, stride, padding, dilation, groups = case
    x, w, b = _conv_data(rng, n, c, hw, co, k, groups, dtype)
    geo = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = K.conv2d(x, w, b, **geo)
    _close(y, ref.conv2d(x, w, b, **geo), dtype)
    _close(K.conv2d(x, w, **geo), ref.conv2d(x, w, **geo), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    for got, want in zip(K.conv2d_backward(dy, x, w, **geo), ref.conv2d_backward(dy, x, w, **geo)):
        _close(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_conv_transpose2d_matches_naive(case, dtype, rng):
    n, c_out, hw, c_in, k, stride, padding, dilation, groups = case
    # the transposed op maps c_in -> c_out; output_padding as large as torch allows
    s, d = np.broadcast_to(stride, 2), np.broadcast_to(dilation, 2)
    op = tuple(int(max(si, di) - 1) for si, di in zip(s, d))
    x = rng.standard_normal((n, c_in) + tuple(max(1, v // 2) for v in hw)).astype(dtype)
    w = rng.standard_normal((c_in, c_out // groups) + k).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    geo = dict(stride=stride, padding=0, output_padding=op, groups=groups, dilation=dilation)
    want = ref.conv_transpose2d(x, w, b, **geo)
    y = K.conv_transpose2d(x, w, b, **geo)
    _close(y, want, dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = K.conv_transpose2d_backward(dy, x, w, **geo)
    for g, r in zip(got, ref.conv_transpose2d_backward(dy, x, w, **geo)):
        _close(g, r, dtype)


@pytest.mark.parametrize("path", ["nt", "rows", "shift"])
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[8], CASES[9]])
def test_every_internal_path_agrees(case, path, monkeypatch, rng):
    """Force each forward strategy (and small weight-gradient segments) on the same inputs."""
    n, c, hw, co, k, stride, padding, dilation, groups = case
    if path == "shift" and stride != 1:
        pytest.skip("the shift path is for unit stride")
    forced = {"nt": 0, "rows": 1, "shift": 2}[path]
    monkeypatch.setattr(cpu_conv, "_forward_path", lambda K, cog, stride: forced)
    monkeypatch.setattr(cpu_conv, "_SEGMENT", 16)
    monkeypatch.setattr(cpu_conv, "_BLOCK_BYTES", 1024)
    x, w, b = _conv_data(rng, n, c, hw, co, k, groups, np.float64)
    geo = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = K.conv2d(x, w, b, **geo)
    np.testing.assert_allclose(y, ref.conv2d(x, w, b, **geo), **F64)
    for bias in (b, None):  # the fused ReLU epilogue of every path
        np.testing.assert_array_equal(K.conv2d(x, w, bias, activation="relu", **geo),
                                      np.maximum(K.conv2d(x, w, bias, **geo), 0))
    dy = rng.standard_normal(y.shape)
    for got, want in zip(K.conv2d_backward(dy, x, w, **geo), ref.conv2d_backward(dy, x, w, **geo)):
        np.testing.assert_allclose(got, want, **F64)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[9], CASES[11]])
def test_conv2d_numerical_gradient(case, rng):
    n, c, hw, co, k, stride, padding, dilation, groups = case
    co = groups * max(1, min(co, 4) // groups)
    x, w, b = _conv_data(rng, 1, c, tuple(min(v, 7) for v in hw), co, k, groups, np.float64)
    geo = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check_backward(lambda x_, w_, b_: K.conv2d(x_, w_, b_, **geo),
                   lambda dy, x_, w_, b_: K.conv2d_backward(dy, x_, w_, **geo), [x, w, b])


@pytest.mark.parametrize("geo", [dict(stride=1, padding=1, output_padding=0, groups=1, dilation=1),
                                 dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1),
                                 dict(stride=1, padding=0, output_padding=1, groups=1, dilation=2),
                                 dict(stride=(3, 2), padding=(0, 1), output_padding=(2, 0),
                                      groups=1, dilation=(1, 2))])
def test_conv_transpose2d_numerical_gradient(geo, rng):
    x = rng.standard_normal((2, 4, 3, 4))
    w = rng.standard_normal((4, 6 // geo["groups"], 3, 2))
    b = rng.standard_normal(6 // geo["groups"] * geo["groups"])
    check_backward(lambda x_, w_, b_: K.conv_transpose2d(x_, w_, b_, **geo),
                   lambda dy, x_, w_, b_: K.conv_transpose2d_backward(dy, x_, w_, **geo), [x, w, b])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geo", [dict(stride=1, padding=0, dilation=1, groups=1),
                                 dict(stride=2, padding=3, dilation=2, groups=2),
                                 dict(stride=3, padding=1, dilation=1, groups=4)])
def test_conv1d_matches_naive(geo, dtype, rng):
    x = rng.standard_normal((3, 4, 17)).astype(dtype)
    w = rng.standard_normal((8, 4 // geo["groups"], 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    y = K.conv1d(x, w, b, **geo)
    _close(y, ref.conv1d(x, w, b, **geo), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    for got, want in zip(K.conv1d_backward(dy, x, w, **geo), ref.conv1d_backward(dy, x, w, **geo)):
        _close(got, want, dtype)


def test_conv1d_numerical_gradient(rng):
    x, w, b = rng.standard_normal((2, 4, 9)), rng.standard_normal((6, 2, 3)), rng.standard_normal(6)
    geo = dict(stride=2, padding=1, dilation=2, groups=2)
    check_backward(lambda x_, w_, b_: K.conv1d(x_, w_, b_, **geo),
                   lambda dy, x_, w_, b_: K.conv1d_backward(dy, x_, w_, **geo), [x, w, b])


# ---------------------------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------------------------

def _torch_grads(torch, fn, dy, *arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    grads = torch.autograd.grad(y, ts, torch.tensor(dy))
    return y.detach().numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[6], CASES[9], CASES[10], CASES[12],
                                  (4, 16, (10, 10), 32, (3, 3), 1, 1, 1, 1)])
def test_conv2d_matches_torch(case, dtype, rng):
    torch = pytest.importorskip("torch")
    n, c, hw, co, k, stride, padding, dilation, groups = case
    x, w, b = _conv_data(rng, n, c, hw, co, k, groups, dtype)
    geo = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = K.conv2d(x, w, b, **geo)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ty, grads = _torch_grads(torch, lambda *t: torch.nn.functional.conv2d(*t, **geo), dy, x, w, b)
    _close(y, ty, dtype)
    for got, want in zip(K.conv2d_backward(dy, x, w, **geo), grads):
        _close(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geo", [dict(stride=2, padding=1, output_padding=1, groups=1, dilation=1),
                                 dict(stride=1, padding=2, output_padding=0, groups=2, dilation=1),
                                 dict(stride=1, padding=0, output_padding=1, groups=1, dilation=2),
                                 dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2),
                                      groups=2, dilation=(2, 1))])
def test_conv_transpose2d_matches_torch(geo, dtype, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(3 * geo["groups"]).astype(dtype)
    y = K.conv_transpose2d(x, w, b, **geo)
    dy = rng.standard_normal(y.shape).astype(dtype)
    fn = lambda *t: torch.nn.functional.conv_transpose2d(*t, **geo)  # noqa: E731
    ty, grads = _torch_grads(torch, fn, dy, x, w, b)
    _close(y, ty, dtype)
    for got, want in zip(K.conv_transpose2d_backward(dy, x, w, **geo), grads):
        _close(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_matches_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 6, 20)).astype(dtype)
    w = rng.standard_normal((4, 3, 5)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    geo = dict(stride=2, padding=2, dilation=1, groups=2)
    y = K.conv1d(x, w, b, **geo)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ty, grads = _torch_grads(torch, lambda *t: torch.nn.functional.conv1d(*t, **geo), dy, x, w, b)
    _close(y, ty, dtype)
    for got, want in zip(K.conv1d_backward(dy, x, w, **geo), grads):
        _close(got, want, dtype)


def test_benchmark_layers_match_torch(rng):
    """The headline float32 layers, at full size, against torch."""
    torch = pytest.importorskip("torch")
    for n, c, hw, co, k, pad in [(64, 1, 28, 6, 5, 0), (64, 6, 12, 16, 5, 0),
                                 (8, 64, 32, 64, 3, 1), (4, 128, 16, 128, 3, 1)]:
        x, w, b = _conv_data(rng, n, c, (hw, hw), co, (k, k), 1, np.float32)
        w *= np.float32(1 / np.sqrt(c * k * k))
        y = K.conv2d(x, w, b, padding=pad)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        fn = lambda *t: torch.nn.functional.conv2d(*t, padding=pad)  # noqa: E731
        ty, grads = _torch_grads(torch, fn, dy, x, w, b)
        _close(y, ty, np.float32)
        for got, want in zip(K.conv2d_backward(dy, x, w, padding=pad), grads):
            _close(got, want, np.float32)


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, cog = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 9))
    n = draw(st.integers(1, 3))
    return dict(n=n, c=groups * cg, hw=(h, w), co=groups * cog, k=(kh, kw), stride=(sh, sw),
                padding=(ph, pw), dilation=(dh, dw), groups=groups)


def _maybe_strided(a, strided):
    """The same values as a non-contiguous view (every other element of a larger array)."""
    if not strided:
        return a
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


@given(conv_cases(), st.booleans(), st.booleans(), st.integers(0, 2 ** 32 - 1))
def test_conv2d_properties(case, bias, strided, seed):
    rng = np.random.default_rng(seed)
    x, w, b = _conv_data(rng, case["n"], case["c"], case["hw"], case["co"], case["k"],
                         case["groups"], np.float64)
    b = b if bias else None
    geo = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    want = ref.conv2d(x, w, b, **geo)
    y = K.conv2d(_maybe_strided(x, strided), _maybe_strided(w, strided), b, **geo)
    np.testing.assert_allclose(y, want, **F64)
    dy = rng.standard_normal(y.shape)
    got = K.conv2d_backward(_maybe_strided(dy, strided), x, w, **geo)
    for g, r in zip(got, ref.conv2d_backward(dy, x, w, **geo)):
        np.testing.assert_allclose(g, r, **F64)


@given(conv_cases(), st.booleans(), st.integers(0, 2 ** 32 - 1))
def test_conv_transpose2d_properties(case, strided, seed):
    rng = np.random.default_rng(seed)
    groups = case["groups"]
    (sh, sw), (dh, dw) = case["stride"], case["dilation"]
    op = (seed % max(sh, dh), (seed // 7) % max(sw, dw))
    x = rng.standard_normal((case["n"], case["c"]) + tuple(max(1, v // 2) for v in case["hw"]))
    w = rng.standard_normal((case["c"], case["co"] // groups) + case["k"])
    geo = dict(stride=case["stride"], padding=case["padding"], output_padding=op, groups=groups,
               dilation=case["dilation"])
    sizes = [(x.shape[2 + a] - 1) * case["stride"][a] - 2 * case["padding"][a]
             + case["dilation"][a] * (case["k"][a] - 1) + op[a] + 1 for a in (0, 1)]
    if min(sizes) < 1:
        with pytest.raises(ValueError, match="padding"):
            K.conv_transpose2d(x, w, None, **geo)
        return
    want = ref.conv_transpose2d(x, w, None, **geo)
    y = K.conv_transpose2d(_maybe_strided(x, strided), w, None, **geo)
    np.testing.assert_allclose(y, want, **F64)
    dy = rng.standard_normal(y.shape)
    got = K.conv_transpose2d_backward(dy, x, _maybe_strided(w, strided), **geo)
    for g, r in zip(got, ref.conv_transpose2d_backward(dy, x, w, **geo)):
        np.testing.assert_allclose(g, r, **F64)


# ---------------------------------------------------------------------------------------------
# dtypes, layouts, edge cases
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype, rng):
    x, w, b = _conv_data(rng, 2, 4, (6, 6), 8, (3, 3), 1, dtype)
    y = K.conv2d(x, w, b, padding=1)
    assert y.dtype == dtype
    assert all(a.dtype == dtype for a in K.conv2d_backward(y, x, w, padding=1))
    yt = K.conv_transpose2d(x, w.transpose(1, 0, 2, 3), b, stride=2)
    assert yt.dtype == dtype
    assert all(a.dtype == dtype for a in K.conv_transpose2d_backward(yt, x, w.transpose(1, 0, 2, 3),
                                                                      stride=2))
    y1 = K.conv1d(x[:, :, 0], w[:, :, 0], b)
    assert y1.dtype == dtype
    assert all(a.dtype == dtype for a in K.conv1d_backward(y1, x[:, :, 0], w[:, :, 0]))


def test_transposed_views_and_lists(rng):
    x, w, b = _conv_data(rng, 2, 3, (5, 6), 4, (2, 3), 1, np.float64)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)   # F-like view
    wt = np.asfortranarray(w)
    assert not xt.flags.c_contiguous and not wt.flags.c_contiguous
    np.testing.assert_allclose(K.conv2d(xt, wt, list(b)), ref.conv2d(x, w, b), **F64)
    np.testing.assert_allclose(K.conv2d(x.tolist(), w, b), ref.conv2d(x, w, b), **F64)


def test_bias_gradient_is_exact_in_float32():
    dy = np.full((64, 2, 100, 100), 0.1, np.float32)
    x = np.zeros((64, 1, 100, 100), np.float32)
    _, _, db = K.conv2d_backward(dy, x, np.zeros((2, 1, 1, 1), np.float32))
    np.testing.assert_allclose(db, 640_000 * np.float64(np.float32(0.1)), rtol=1e-6)


def test_empty_batch(rng):
    x = np.zeros((0, 3, 5, 5), np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = K.conv2d(x, w, padding=1)
    assert y.shape == (0, 4, 5, 5) and y.dtype == np.float32
    dx, dw, db = K.conv2d_backward(y, x, w, padding=1)
    assert dx.shape == x.shape and not dw.any() and not db.any()
    assert K.conv_transpose2d(x, w[:3].transpose(1, 0, 2, 3)).shape == (0, 3, 7, 7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_relu_is_relu_of_the_convolution(dtype, rng):
    x = rng.standard_normal((3, 4, 9, 8)).astype(dtype)
    w = rng.standard_normal((6, 4, 3, 3)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    for bias in (b, None):
        for geo in (dict(padding=1), dict(stride=2), dict(groups=2, dilation=2)):
            wg = w[:, :4 // geo.get("groups", 1)]
            y = K.conv2d(x, wg, bias, activation="relu", **geo)
            assert y.dtype == dtype
            np.testing.assert_array_equal(y, K.relu(K.conv2d(x, wg, bias, **geo)))
        y1 = K.conv1d(x[:, :, 0], w[:, :, 0], bias, padding=1, activation="relu")
        np.testing.assert_array_equal(y1, K.relu(K.conv1d(x[:, :, 0], w[:, :, 0], bias, padding=1)))
    x[0, 0, 4, 4] = np.nan  # NaN stays NaN through the fused ReLU, as through relu()
    y = K.conv2d(x, w, b, padding=1, activation="relu")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(K.relu(K.conv2d(x, w, b, padding=1))))
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        K.conv2d(x, w, activation="tanh")


def test_nan_and_inf_propagate_locally():
    x = np.zeros((1, 1, 6, 6), np.float32)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 5, 5] = np.inf
    y = K.conv2d(x, np.ones((1, 1, 2, 2), np.float32))
    assert np.isnan(y[0, 0, 0, 0]) and np.isinf(y[0, 0, 4, 4])
    assert np.isfinite(y[0, 0, 1:4, 1:4]).all()


# ---------------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------------

def test_bad_arguments(rng):
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    dy = np.zeros((2, 6, 4, 4), np.float32)
    with pytest.raises(ValueError, match="x must be 4-D"):
        K.conv2d(x[0], w)
    with pytest.raises(ValueError, match="w must be 4-D"):
        K.conv2d(x, w[0])
    with pytest.raises(ValueError, match="groups=3 must divide the 4 input channels"):
        K.conv2d(x, w, groups=3)
    with pytest.raises(ValueError, match=r"w.shape\[1\] must be C_in/groups"):
        K.conv2d(x, w)
    with pytest.raises(ValueError, match="groups=4 must divide the 6 output channels"):
        K.conv2d(x, w[:, :1], groups=4)
    with pytest.raises(ValueError, match=r"b must have shape \(6,\)"):
        K.conv2d(x, w, np.zeros(5, np.float32), groups=2)
    with pytest.raises(ValueError, match="dy must have the forward output's shape"):
        K.conv2d_backward(dy[:, :, :3], x, w, groups=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        K.conv2d(x, w, dilation=4, groups=2)
    with pytest.raises(ValueError, match="stride must be positive"):
        K.conv2d(x, w, stride=0, groups=2)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        K.conv2d(x, w, padding=(1, -1), groups=2)
    with pytest.raises(ValueError, match="dilation must be positive"):
        K.conv2d(x, w, dilation=0, groups=2)
    with pytest.raises(ValueError, match="groups must be positive"):
        K.conv2d(x, w, groups=0)
    with pytest.raises(TypeError, match="groups must be an int"):
        K.conv2d(x, w, groups=2.0)
    with pytest.raises(TypeError, match="stride must be an int or a sequence of 2 ints"):
        K.conv2d(x, w, stride=(1, 2, 3), groups=2)
    with pytest.raises(TypeError, match="w must have dtype float32"):
        K.conv2d(x, w.astype(np.float64), groups=2)
    with pytest.raises(TypeError, match="x must be a float32 or float64 array"):
        K.conv2d(x.astype(np.int32), w, groups=2)
    with pytest.raises(ValueError, match="x must be 3-D"):
        K.conv1d(x, w[:, :, 0], groups=2)
    with pytest.raises(ValueError, match="dy must have the forward output's shape"):
        K.conv1d_backward(dy[:, :, 0, :3], x[:, :, 0], w[:, :, 0], groups=2)


def test_bad_transposed_arguments(rng):
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="output_padding must be smaller than stride or dilation"):
        K.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding must be smaller than stride or dilation"):
        K.conv_transpose2d(x, w, output_padding=(0, 1))
    with pytest.raises(ValueError, match="output_padding must be >= 0"):
        K.conv_transpose2d(x, w, stride=2, output_padding=-1)
    with pytest.raises(ValueError, match=r"w must have shape \(C_in=4"):
        K.conv_transpose2d(x, w[:3])
    with pytest.raises(ValueError, match="groups=3 must divide the 4 input channels"):
        K.conv_transpose2d(x, w, groups=3)
    with pytest.raises(ValueError, match=r"b must have shape \(6,\)"):
        K.conv_transpose2d(x, w, np.zeros(3, np.float32), groups=2)
    with pytest.raises(ValueError, match="padding=.* is too large"):
        K.conv_transpose2d(x, w, padding=4)
    with pytest.raises(ValueError, match="dy must have the forward output's shape"):
        K.conv_transpose2d_backward(np.zeros((2, 3, 7, 6), np.float32), x, w)
    with pytest.raises(ValueError, match="stride must be positive"):
        K.conv_transpose2d(x, w, stride=-1)


@pytest.mark.parametrize("block", ["_gemm_nt_block", "_gemm_nt_block4"])
@pytest.mark.parametrize("ma,nb", [(16, 96), (13, 7), (3, 2), (9, 10)])
def test_both_register_tiles_compute_the_product(block, ma, nb):
    """Both tile shapes are checked whatever this CPU's vector width (the kernels use one)."""
    from fastnn._kernels.cpu import conv as cpu_conv
    rng = np.random.default_rng(0)
    kk = 48
    a = rng.standard_normal((ma, kk)).astype(np.float32)
    b = rng.standard_normal((nb, kk)).astype(np.float32)
    out = np.ones(ma * nb, np.float32)
    getattr(cpu_conv, block)(a, ma, b, nb, 0, kk, out, 0, nb, 1, False)
    np.testing.assert_allclose(out.reshape(ma, nb), a.astype(np.float64) @ b.T.astype(np.float64),
                               rtol=1e-5, atol=1e-5)
    getattr(cpu_conv, block)(a, ma, b, nb, 0, kk, out, 0, nb, 1, True)  # accumulate
    np.testing.assert_allclose(out.reshape(ma, nb), 2 * (a.astype(np.float64) @ b.T), rtol=1e-5,
                               atol=1e-5)
