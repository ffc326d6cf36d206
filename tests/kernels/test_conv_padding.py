"""Convolution padding modes ('causal', 'same', 'valid') and dilation against references and PyTorch."""
import numpy as np
import pytest

from fastnn import kernels as K
from tests.gradients import check_backward
from tests.naive import conv as ref

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}

# kernel, dilation, stride, groups: unit kernel, dilated, strided past the kernel, grouped
CAUSAL = [(3, 1, 1, 1), (3, 2, 1, 1), (2, 3, 2, 1), (4, 2, 3, 2), (1, 1, 1, 1), (5, 1, 2, 1),
          (2, 4, 1, 4)]


def _data(rng, k, groups, dtype, length=11, c_in=4, c_out=8):
    return (rng.standard_normal((2, c_in, length)).astype(dtype),
            rng.standard_normal((c_out, c_in // groups, k)).astype(dtype),
            rng.standard_normal(c_out).astype(dtype))


def _same_pads(k, d):
    total = d * (k - 1)
    return total // 2, total - total // 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,d,s,g", CAUSAL)
def test_causal_matches_naive(k, d, s, g, dtype, rng):
    x, w, b = _data(rng, k, g, dtype)
    geo = dict(stride=s, dilation=d, groups=g)
    y = K.conv1d(x, w, b, padding="causal", **geo)
    assert y.dtype == dtype and y.shape == (2, 8, (11 - 1) // s + 1)
    pads = (d * (k - 1), 0)
    np.testing.assert_allclose(y, ref.conv1d_padded(x, w, b, pads=pads, **geo), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = K.conv1d_backward(dy, x, w, padding="causal", **geo)
    for a, want in zip(got, ref.conv1d_padded_backward(dy, x, w, pads=pads, **geo)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,d", [(3, 1), (4, 1), (2, 3), (5, 2), (1, 1)])
def test_same_and_valid_match_naive(k, d, dtype, rng):
    x, w, b = _data(rng, k, 1, dtype, length=12)
    y = K.conv1d(x, w, b, padding="same", dilation=d)
    assert y.shape == x.shape[:1] + (8,) + x.shape[2:]
    pads = _same_pads(k, d)
    np.testing.assert_allclose(y, ref.conv1d_padded(x, w, b, pads=pads, dilation=d), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    for a, want in zip(K.conv1d_backward(dy, x, w, padding="same", dilation=d),
                       ref.conv1d_padded_backward(dy, x, w, pads=pads, dilation=d)):
        np.testing.assert_allclose(a, want, **TOL[dtype])
    np.testing.assert_array_equal(K.conv1d(x, w, b, padding="valid", dilation=d),
                                  K.conv1d(x, w, b, padding=0, dilation=d))


def test_causal_output_sees_only_the_past(rng):
    """Output t is unchanged (bit for bit) when the inputs after t change; so is the weight
    gradient of a dy that is zero after t."""
    x, w, b = _data(rng, 3, 1, np.float32, length=16)
    y = K.conv1d(x, w, b, padding="causal", dilation=2)
    for t in (0, 5, 14):
        x2 = x.copy()
        x2[:, :, t + 1:] = rng.standard_normal(x2[:, :, t + 1:].shape)
        y2 = K.conv1d(x2, w, b, padding="causal", dilation=2)
        np.testing.assert_array_equal(y2[:, :, :t + 1], y[:, :, :t + 1])
        assert not np.array_equal(y2[:, :, t + 1:], y[:, :, t + 1:])
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dy[:, :, t + 1:] = 0
        dx, dw, _ = K.conv1d_backward(dy, x, w, padding="causal", dilation=2)
        dx2, dw2, _ = K.conv1d_backward(dy, x2, w, padding="causal", dilation=2)
        np.testing.assert_allclose(dw2, dw, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(dx[:, :, t + 1:], 0)     # inputs after t did not count
    # strided: output t reads inputs up to t * stride
    y = K.conv1d(x, w, b, stride=3, padding="causal", dilation=2)
    x2 = x.copy()
    x2[:, :, 7:] += 1
    np.testing.assert_array_equal(K.conv1d(x2, w, b, stride=3, padding="causal", dilation=2)[
        :, :, :3], y[:, :, :3])


def test_numerical_gradients(rng):
    x, w, b = _data(rng, 3, 2, np.float64, length=9)
    for geo in (dict(padding="causal", dilation=2, stride=2, groups=2),
                dict(padding="same", dilation=3, groups=2)):
        check_backward(lambda x_, w_, b_: K.conv1d(x_, w_, b_, **geo),
                       lambda dy, x_, w_, b_: K.conv1d_backward(dy, x_, w_, **geo), [x, w, b])


def test_fused_relu_with_causal_padding(rng):
    x, w, b = _data(rng, 3, 1, np.float32)
    np.testing.assert_array_equal(
        K.conv1d(x, w, b, padding="causal", dilation=2, activation="relu"),
        np.maximum(K.conv1d(x, w, b, padding="causal", dilation=2), 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padding_modes_match_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    def grads(fn, dy, *arrays):
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*ts)
        out.backward(torch.tensor(dy))
        return out.detach().numpy(), [t.grad.numpy() for t in ts]

    for k, d, s, g in CAUSAL:
        x, w, b = _data(rng, k, g, dtype)
        geo = dict(stride=s, dilation=d, groups=g)
        y = K.conv1d(x, w, b, padding="causal", **geo)
        dy = rng.standard_normal(y.shape).astype(dtype)
        ty, tg = grads(lambda a, v, c: F.conv1d(F.pad(a, (d * (k - 1), 0)), v, c, **geo),
                       dy, x, w, b)
        np.testing.assert_allclose(y, ty, **TOL[dtype])
        for a, want in zip(K.conv1d_backward(dy, x, w, padding="causal", **geo), tg):
            np.testing.assert_allclose(a, want, **TOL[dtype])
    for k, d in ((4, 1), (3, 2), (2, 3)):
        x, w, b = _data(rng, k, 2, dtype)
        y = K.conv1d(x, w, b, padding="same", dilation=d, groups=2)
        dy = rng.standard_normal(y.shape).astype(dtype)
        ty, tg = grads(lambda a, v, c: F.conv1d(a, v, c, padding="same", dilation=d, groups=2),
                       dy, x, w, b)
        np.testing.assert_allclose(y, ty, **TOL[dtype])
        for a, want in zip(K.conv1d_backward(dy, x, w, padding="same", dilation=d, groups=2), tg):
            np.testing.assert_allclose(a, want, **TOL[dtype])
    # 2-D 'same' with a dilation per axis and an even kernel (one zero more after, along W)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 2, 2)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    y = K.conv2d(x, w, b, padding="same", dilation=(2, 1))
    assert y.shape == (2, 4, 7, 6)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ty, tg = grads(lambda a, v, c: F.conv2d(a, v, c, padding="same", dilation=(2, 1)), dy, x, w, b)
    np.testing.assert_allclose(y, ty, **TOL[dtype])
    for a, want in zip(K.conv2d_backward(dy, x, w, padding="same", dilation=(2, 1)), tg):
        np.testing.assert_allclose(a, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dilated_conv1d_matches_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    x, w, b = _data(rng, 3, 2, dtype, length=17)
    for geo in (dict(stride=1, padding=2, dilation=2, groups=2),
                dict(stride=2, padding=0, dilation=4, groups=1)):
        wg = w if geo["groups"] == 2 else rng.standard_normal((8, 4, 3)).astype(dtype)
        y = K.conv1d(x, wg, b, **geo)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, wg, b))
        ty = torch.nn.functional.conv1d(xt, wt, bt, **geo)
        np.testing.assert_allclose(y, ty.detach().numpy(), **TOL[dtype])
        dy = rng.standard_normal(y.shape).astype(dtype)
        ty.backward(torch.tensor(dy))
        for a, t in zip(K.conv1d_backward(dy, x, wg, **geo), (xt, wt, bt)):
            np.testing.assert_allclose(a, t.grad.numpy(), **TOL[dtype])


def test_bad_padding(rng):
    x, w, b = _data(rng, 3, 1, np.float32)
    with pytest.raises(ValueError, match="'causal' is for 1-D"):
        K.conv2d(x[:, :, None], w[:, :, None], b, padding="causal")
    with pytest.raises(ValueError, match="'same' needs stride 1"):
        K.conv1d(x, w, b, stride=2, padding="same")
    with pytest.raises(ValueError, match="one of 'valid', 'same', 'causal'"):
        K.conv1d(x, w, b, padding="full")
    with pytest.raises(TypeError, match="padding"):
        K.conv1d(x, w, b, padding=1.5)
    y = K.conv1d(x, w, b, padding="causal")
    with pytest.raises(ValueError, match="dy"):
        K.conv1d_backward(y[:, :, :-1], x, w, padding="causal")
    with pytest.raises(ValueError, match="kernel"):   # 'valid' leaves nothing of a short input
        K.conv1d(x[:, :, :2], w, b, padding="valid", dilation=2)
