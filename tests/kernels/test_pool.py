"""Pooling kernels against naive references, PyTorch, numerical gradients and properties."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from fastnn.kernels import (
    avg_pool1d, avg_pool1d_backward, avg_pool2d, avg_pool2d_backward,
    global_avg_pool2d, global_avg_pool2d_backward, max_pool1d, max_pool1d_backward,
    max_pool2d, max_pool2d_backward, stochastic_pool2d, stochastic_pool2d_backward)
from tests.gradients import check_backward
from tests.naive import pool as ref

TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}

# (x shape, kernel, stride, padding): common, overlapping, padded, strided past the kernel,
# kernel == input, odd sizes, rectangular windows, batch of one.
CASES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 7, 9), 3, 2, 1),
    ((1, 2, 6, 5), (3, 2), (1, 2), (1, 0)),
    ((2, 1, 9, 9), 2, 3, 0),
    ((1, 2, 5, 4), (5, 4), None, 0),
    ((3, 2, 5, 7), 3, 1, 1),
    ((1, 1, 4, 4), 4, 1, 2),
]


def distinct(shape, rng, dtype=np.float64):
    """Values without ties (gaps of 0.01), so max pooling is differentiable everywhere."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 1.0).astype(dtype)


def _norm(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _window(kernel, stride, padding):
    k = _norm(kernel)
    return k, k if stride is None else _norm(stride), _norm(padding)


# ------------------------------------------------------------------------------------- max pool

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,stride,padding", CASES)
def test_max_pool2d_matches_naive(shape, kernel, stride, padding, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    y, idx = max_pool2d(x, kernel, stride, padding)
    ry, ridx = ref.max_pool2d(x, *_window(kernel, stride, padding))
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(idx, ridx)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = max_pool2d_backward(dy, idx, shape)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref.max_pool2d_backward(dy, ridx, shape), **TOL[dtype])


@pytest.mark.parametrize("shape,kernel,stride,padding", CASES[:4])
def test_max_pool2d_ties_take_first(shape, kernel, stride, padding, rng):
    x = rng.integers(0, 3, size=shape).astype(np.float32)   # many ties
    y, idx = max_pool2d(x, kernel, stride, padding)
    ry, ridx = ref.max_pool2d(x, *_window(kernel, stride, padding))
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)


@pytest.mark.parametrize("shape,kernel,stride,padding", CASES)
def test_max_pool2d_gradient(shape, kernel, stride, padding, rng):
    x = distinct(shape, rng)
    check_backward(lambda v: max_pool2d(v, kernel, stride, padding)[0],
                   lambda dy, v: (max_pool2d_backward(dy, max_pool2d(v, kernel, stride, padding)[1],
                                                      v.shape),),
                   [x])


@pytest.mark.parametrize("shape,kernel,stride,padding", CASES)
def test_max_pool2d_matches_torch(shape, kernel, stride, padding, rng):
    torch = pytest.importorskip("torch")
    x = rng.integers(-3, 4, size=shape).astype(np.float32)   # ties included
    x[0, 0, 0, 0] = np.nan
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty, tidx = torch.nn.functional.max_pool2d(tx, kernel, stride, padding, return_indices=True)
    y, idx = max_pool2d(x, kernel, stride, padding)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(max_pool2d_backward(dy, idx, shape), tx.grad.numpy(), rtol=1e-6,
                               atol=1e-6)


def test_max_pool2d_nan_and_inf():
    x = np.full((1, 1, 2, 4), -np.inf, dtype=np.float32)
    x[0, 0, 1, 3] = np.nan
    y, idx = max_pool2d(x, 2)
    assert y[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == 0   # all -inf: first element
    assert np.isnan(y[0, 0, 0, 1]) and idx[0, 0, 0, 1] == 7


def test_max_pool2d_common_case_large(rng):
    """The specialised 2x2 stride-2 path on a realistic shape, against the general path."""
    x = rng.standard_normal((4, 8, 32, 32)).astype(np.float32)
    y, idx = max_pool2d(x, 2)
    y3, idx3 = max_pool2d(x, (2, 2), (2, 2), 0)
    yg = x.reshape(4, 8, 16, 2, 16, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(y, yg)
    np.testing.assert_array_equal(idx, idx3)
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(4, 8, -1), idx.reshape(4, 8, -1), 2),
                                  yg.reshape(4, 8, -1))


# ------------------------------------------------------------------------------------- avg pool

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,stride,padding", CASES)
def test_avg_pool2d_matches_naive(shape, kernel, stride, padding, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    win = _window(kernel, stride, padding)
    y = avg_pool2d(x, kernel, stride, padding)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref.avg_pool2d(x, *win), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = avg_pool2d_backward(dy, shape, kernel, stride, padding)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref.avg_pool2d_backward(dy, shape, *win), **TOL[dtype])


@pytest.mark.parametrize("shape,kernel,stride,padding", CASES)
def test_avg_pool2d_gradient(shape, kernel, stride, padding, rng):
    check_backward(lambda v: avg_pool2d(v, kernel, stride, padding),
                   lambda dy, v: (avg_pool2d_backward(dy, v.shape, kernel, stride, padding),),
                   [rng.standard_normal(shape)])


@pytest.mark.parametrize("shape,kernel,stride,padding", CASES)
def test_avg_pool2d_matches_torch(shape, kernel, stride, padding, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = torch.nn.functional.avg_pool2d(tx, kernel, stride, padding, count_include_pad=True)
    y = avg_pool2d(x, kernel, stride, padding)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(avg_pool2d_backward(dy, shape, kernel, stride, padding),
                               tx.grad.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ 1-D

CASES_1D = [((2, 3, 10), 2, None, 0), ((1, 2, 9), 3, 2, 1), ((2, 1, 7), 7, None, 3),
            ((3, 2, 11), 2, 3, 1), ((1, 1, 5), 4, 1, 2)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,stride,padding", CASES_1D)
def test_pool1d_matches_2d_reference(shape, kernel, stride, padding, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    win = ((1, kernel), (1, kernel if stride is None else stride), (0, padding))
    x4, shape4 = x[:, :, None, :], (shape[0], shape[1], 1, shape[2])
    y, idx = max_pool1d(x, kernel, stride, padding)
    ry, ridx = ref.max_pool2d(x4, *win)
    assert y.dtype == dtype and y.ndim == 3
    np.testing.assert_array_equal(y, ry[:, :, 0].astype(dtype))
    np.testing.assert_array_equal(idx, ridx[:, :, 0])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = max_pool1d_backward(dy, idx, shape)
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, ref.max_pool2d_backward(dy[:, :, None], ridx, shape4)[:, :, 0],
                               **TOL[dtype])
    a = avg_pool1d(x, kernel, stride, padding)
    assert a.dtype == dtype
    np.testing.assert_allclose(a, ref.avg_pool2d(x4, *win)[:, :, 0], **TOL[dtype])
    da = avg_pool1d_backward(dy, shape, kernel, stride, padding)
    assert da.dtype == dtype and da.shape == shape
    np.testing.assert_allclose(da, ref.avg_pool2d_backward(dy[:, :, None], shape4, *win)[:, :, 0],
                               **TOL[dtype])


@pytest.mark.parametrize("shape,kernel,stride,padding", CASES_1D)
def test_pool1d_gradients(shape, kernel, stride, padding, rng):
    check_backward(lambda v: avg_pool1d(v, kernel, stride, padding),
                   lambda dy, v: (avg_pool1d_backward(dy, v.shape, kernel, stride, padding),),
                   [rng.standard_normal(shape)])
    check_backward(lambda v: max_pool1d(v, kernel, stride, padding)[0],
                   lambda dy, v: (max_pool1d_backward(dy, max_pool1d(v, kernel, stride, padding)[1],
                                                      v.shape),),
                   [distinct(shape, rng)])


@pytest.mark.parametrize("shape,kernel,stride,padding", CASES_1D)
def test_pool1d_matches_torch(shape, kernel, stride, padding, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.integers(-3, 4, size=shape).astype(np.float32)
    ty, tidx = F.max_pool1d(torch.from_numpy(x), kernel, stride, padding, return_indices=True)
    y, idx = max_pool1d(x, kernel, stride, padding)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_allclose(avg_pool1d(x, kernel, stride, padding),
                               F.avg_pool1d(torch.from_numpy(x), kernel, stride, padding).numpy(),
                               rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------- global pool

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 1), (3, 2, 7, 1)])
def test_global_avg_pool2d(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    y = global_avg_pool2d(x)
    assert y.dtype == dtype and y.shape == shape[:2]
    np.testing.assert_allclose(y, ref.global_avg_pool2d(x), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = global_avg_pool2d_backward(dy, shape)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref.global_avg_pool2d_backward(dy, shape), **TOL[dtype])
    check_backward(global_avg_pool2d, lambda d, v: (global_avg_pool2d_backward(d, v.shape),),
                   [rng.standard_normal(shape)])


def test_global_avg_pool2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 8, 13, 11)).astype(np.float32)
    np.testing.assert_allclose(global_avg_pool2d(x), torch.from_numpy(x).mean(dim=(2, 3)).numpy(),
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ stochastic pool

STOCH_CASES = [((2, 3, 8, 8), 2, None), ((1, 2, 7, 9), 3, 2), ((2, 1, 6, 6), (2, 3), 1),
               ((1, 1, 5, 5), 5, None), ((2, 2, 9, 7), 2, 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,stride", STOCH_CASES)
def test_stochastic_pool2d_train_matches_naive(shape, kernel, stride, dtype, rng):
    x = np.maximum(rng.standard_normal(shape), 0).astype(dtype)   # ReLU outputs, zero windows too
    x[0, 0] = 0
    y, idx = stochastic_pool2d(x, kernel, stride, seed=123, training=True)
    k, s, _ = _window(kernel, stride, 0)
    ry, ridx = ref.stochastic_pool2d_train(x, k, s, 123)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(y, np.take_along_axis(x.reshape(*shape[:2], -1),
                                                        idx.reshape(*shape[:2], -1), 2).reshape(y.shape))
    assert np.all(y[0, 0] == 0) and np.all(idx[0, 0] == ref.stochastic_pool2d_train(
        np.zeros((1, 1) + shape[2:]), k, s, 0)[1][0, 0])  # zero windows: first element, output 0
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = stochastic_pool2d_backward(dy, x, idx, kernel, stride, training=True)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref.stochastic_pool2d_train_backward(dy, x, idx), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,stride", STOCH_CASES)
def test_stochastic_pool2d_eval_matches_formula(shape, kernel, stride, dtype, rng):
    x = np.maximum(rng.standard_normal(shape), 0).astype(dtype)
    x[-1, -1] = 0
    k, s, _ = _window(kernel, stride, 0)
    y, idx = stochastic_pool2d(x, kernel, stride, seed=5, training=False)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref.stochastic_pool2d_eval(x, k, s), **TOL[dtype])
    np.testing.assert_array_equal(idx, ref.max_pool2d(x, k, s, (0, 0))[1])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = stochastic_pool2d_backward(dy, x, idx, kernel, stride, training=False)
    assert dx.dtype == dtype
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else TOL[dtype]
    np.testing.assert_allclose(dx, ref.stochastic_pool2d_eval_backward(dy, x, k, s), **tol)


@pytest.mark.parametrize("shape,kernel,stride", STOCH_CASES)
def test_stochastic_pool2d_eval_gradient(shape, kernel, stride, rng):
    x = rng.uniform(0.1, 2.0, size=shape)
    x.reshape(-1)[::3] = -rng.uniform(0.1, 1.0, size=x.size)[::3]   # negatives weigh 0
    check_backward(lambda v: stochastic_pool2d(v, kernel, stride, training=False)[0],
                   lambda dy, v: (stochastic_pool2d_backward(
                       dy, v, np.zeros(dy.shape, np.int64), kernel, stride, training=False),),
                   [x], rtol=1e-5, atol=1e-7)


def test_stochastic_pool2d_train_gradient(rng):
    """With the samples held fixed, y is the sampled activation: its gradient is the routing."""
    x = rng.uniform(0.1, 2.0, size=(2, 2, 6, 6))
    idx = stochastic_pool2d(x, 3, 2, seed=9)[1]

    def gather(v):
        return np.take_along_axis(v.reshape(2, 2, -1), idx.reshape(2, 2, -1), 2).reshape(idx.shape)
    check_backward(gather, lambda dy, v: (stochastic_pool2d_backward(dy, v, idx, 3, 2),), [x])


def test_stochastic_pool2d_seed_and_threads(rng):
    numba = pytest.importorskip("numba")
    x = np.maximum(rng.standard_normal((8, 4, 12, 12)), 0).astype(np.float32)
    y1, i1 = stochastic_pool2d(x, 2, seed=7)
    y2, i2 = stochastic_pool2d(x, 2, seed=7)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(i1, stochastic_pool2d(x, 2, seed=8)[1])
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        y_one, i_one = stochastic_pool2d(x, 2, seed=7)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        y_two, i_two = stochastic_pool2d(x, 2, seed=7)
    finally:
        numba.set_num_threads(saved)
    np.testing.assert_array_equal(i_one, i1)
    np.testing.assert_array_equal(i_two, i1)
    np.testing.assert_array_equal(y_one, y_two)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stochastic_pool2d_sampling_frequencies(dtype):
    """Many copies of one window: index frequencies match a_i / sum(a) (chi-square test)."""
    window = np.array([[1.0, 2.0, 0.0], [3.0, 0.5, 3.5]])
    planes = 20000
    x = np.broadcast_to(window, (planes, 1, 2, 3)).astype(dtype)
    y, idx = stochastic_pool2d(x, (2, 3), seed=2013)
    counts = np.bincount(idx.ravel(), minlength=6)
    p = window.ravel() / window.sum()
    assert counts[2] == 0                                     # zero activation: never sampled
    pos = p > 0
    expected = planes * p[pos]
    chi2 = np.sum((counts[pos] - expected) ** 2 / expected)
    assert chi2 < 20.5                                        # 4 dof: p-value ~ 4e-4
    np.testing.assert_array_equal(y.ravel(), window.ravel()[idx.ravel()].astype(dtype))


def test_stochastic_pool2d_negative_inputs_weigh_zero():
    x = np.array([[[[-1.0, 2.0], [-3.0, -0.5]]], [[[-1.0, -2.0], [-3.0, -0.5]]]], np.float32)
    for seed in range(5):
        y, idx = stochastic_pool2d(x, 2, seed=seed)
        assert idx[0, 0, 0, 0] == 1 and y[0, 0, 0, 0] == 2.0
        assert idx[1, 0, 0, 0] == 0 and y[1, 0, 0, 0] == 0.0
    dx = stochastic_pool2d_backward(np.ones((2, 1, 1, 1), np.float32), x, idx, 2)
    np.testing.assert_array_equal(dx.reshape(2, 4), [[0, 1, 0, 0], [0, 0, 0, 0]])
    ye, _ = stochastic_pool2d(x, 2, training=False)
    np.testing.assert_array_equal(ye.ravel(), [2.0, 0.0])


# --------------------------------------------------------------------------- property tests

@st.composite
def windows_2d(draw, max_padding=True):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)),
             draw(st.integers(1, 9)))
    kernel, stride, padding = [], [], []
    for size in shape[2:]:
        k = draw(st.integers(1, 5))
        p = draw(st.integers(0, k // 2)) if max_padding else 0
        if size + 2 * p < k:
            k = size + 2 * p if max_padding else size
            p = min(p, k // 2)
        kernel.append(k)
        padding.append(p)
        stride.append(draw(st.integers(1, 6)))
    return shape, tuple(kernel), tuple(stride), tuple(padding)


@given(windows_2d(), st.booleans(), st.integers(0, 2 ** 32))
def test_pool2d_properties(case, contiguous, seed):
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(seed)
    big = rng.standard_normal(shape[:3] + (2 * shape[3],))
    x = big[..., ::2] if not contiguous else np.ascontiguousarray(big[..., ::2])
    y, idx = max_pool2d(x, kernel, stride, padding)
    ry, ridx = ref.max_pool2d(x, kernel, stride, padding)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(max_pool2d_backward(dy, idx, shape),
                               ref.max_pool2d_backward(dy, ridx, shape), rtol=1e-12, atol=1e-12)
    a = avg_pool2d(x, kernel, stride, padding)
    np.testing.assert_allclose(a, ref.avg_pool2d(x, kernel, stride, padding), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(avg_pool2d_backward(dy, shape, kernel, stride, padding),
                               ref.avg_pool2d_backward(dy, shape, kernel, stride, padding),
                               rtol=1e-12, atol=1e-12)
    if padding == (0, 0):                                     # no padding: max >= mean
        assert np.all(y >= a - 1e-12)


@given(windows_2d(max_padding=False), st.integers(0, 2 ** 64 - 1), st.integers(0, 2 ** 32))
def test_stochastic_pool2d_properties(case, seed, data_seed):
    shape, kernel, stride, _ = case
    rng = np.random.default_rng(data_seed)
    x = np.maximum(rng.standard_normal(shape), 0)
    y, idx = stochastic_pool2d(x, kernel, stride, seed=seed)
    ry, ridx = ref.stochastic_pool2d_train(x, kernel, stride, seed)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(y, ry)
    ye, _ = stochastic_pool2d(x, kernel, stride, training=False)
    np.testing.assert_allclose(ye, ref.stochastic_pool2d_eval(x, kernel, stride), rtol=1e-12,
                               atol=1e-12)
    mx = max_pool2d(x, kernel, stride)[0]
    assert np.all(ye <= mx + 1e-12) and np.all(y <= mx)      # weighted mean and samples <= max
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(stochastic_pool2d_backward(dy, x, idx, kernel, stride, training=False),
                               ref.stochastic_pool2d_eval_backward(dy, x, kernel, stride),
                               rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ arguments, dtypes

def test_default_dtype_and_non_contiguous(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    xt = np.transpose(np.ascontiguousarray(np.transpose(x, (0, 1, 3, 2))), (0, 1, 3, 2))
    assert not xt.flags.c_contiguous
    for fn in (lambda v: max_pool2d(v, 2)[0], lambda v: avg_pool2d(v, 3, 1, 1),
               global_avg_pool2d, lambda v: stochastic_pool2d(np.abs(v), 2, seed=3)[0]):
        a, b = fn(x), fn(xt)
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="x"):
        max_pool2d(x.astype(np.int32), 2)
    with pytest.raises(TypeError, match="dy"):
        stochastic_pool2d_backward(np.zeros((2, 3, 4, 4)), x, np.zeros((2, 3, 4, 4), np.int64), 2)


def test_empty_batch():
    x = np.zeros((0, 3, 4, 4), np.float32)
    y, idx = max_pool2d(x, 2)
    assert y.shape == idx.shape == (0, 3, 2, 2)
    assert max_pool2d_backward(y, idx, x.shape).shape == x.shape
    assert avg_pool2d_backward(avg_pool2d(x, 2), x.shape, 2).shape == x.shape
    assert global_avg_pool2d(x).shape == (0, 3)


def test_bad_arguments(rng):
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="padding"):
        max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="padding"):
        avg_pool2d(x, 3, 1, padding=(0, 2))
    with pytest.raises(ValueError, match="padding"):
        max_pool1d(x[:, :, 0], 3, padding=-1)
    with pytest.raises(ValueError, match="kernel_size"):
        max_pool2d(x, 0)
    with pytest.raises(ValueError, match="kernel_size"):
        avg_pool2d(x, 7)
    with pytest.raises(TypeError, match="kernel_size"):
        max_pool2d(x, 2.0)
    with pytest.raises(TypeError, match="kernel_size"):
        max_pool1d(x[:, :, 0], (2, 2))
    with pytest.raises(ValueError, match="stride"):
        avg_pool2d(x, 2, stride=0)
    with pytest.raises(TypeError, match="stride"):
        max_pool2d(x, 2, stride="2")
    with pytest.raises(ValueError, match="x must be 4-D"):
        max_pool2d(x[0], 2)
    with pytest.raises(ValueError, match="x must be 3-D"):
        avg_pool1d(x, 2)
    y, idx = max_pool2d(x, 2)
    with pytest.raises(ValueError, match="indices"):
        max_pool2d_backward(y, idx[:, :, :2], x.shape)
    with pytest.raises(TypeError, match="indices"):
        max_pool2d_backward(y, idx.astype(np.float32), x.shape)
    with pytest.raises(ValueError, match="indices"):
        max_pool2d_backward(y, idx + 36, x.shape)
    with pytest.raises(ValueError, match="indices"):
        stochastic_pool2d_backward(y, x, idx - 100, 2)
    with pytest.raises(ValueError, match="dy"):
        max_pool2d_backward(y, idx, (1, 3, 6, 6))
    with pytest.raises(TypeError, match="x_shape"):
        max_pool2d_backward(y, idx, (1, 2, 6))
    with pytest.raises(ValueError, match="dy"):
        avg_pool2d_backward(y, x.shape, 3)
    with pytest.raises(ValueError, match="dy"):
        global_avg_pool2d_backward(np.zeros((1, 3), np.float32), x.shape)
    with pytest.raises(TypeError, match="seed"):
        stochastic_pool2d(x, 2, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        stochastic_pool2d(x, 2, seed=-1)
    with pytest.raises(TypeError, match="training"):
        stochastic_pool2d(x, 2, training="yes")
    with pytest.raises(ValueError, match="kernel_size"):
        stochastic_pool2d(x, 7)
