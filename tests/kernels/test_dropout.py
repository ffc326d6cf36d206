"""Dropout kernels: masks against the naive reference, gradients, keep rate, seeds and threads."""
import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn.kernels as K
from tests.gradients import check_backward
from tests.naive import dropout as ref

SERIAL_BELOW = 1 << 15


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_matches_naive(dtype, rng):
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    y, mask = K.dropout(x, 0.4, seed=123)
    assert y.dtype == dtype and mask.dtype == np.uint8 and mask.shape == x.shape
    np.testing.assert_array_equal(mask, ref.dropout_mask(x.shape, 0.4, 123))
    tol = dict(rtol=1e-7) if dtype == np.float32 else dict(rtol=1e-15)
    np.testing.assert_allclose(y, ref.dropout_apply(x, mask, 0.4), **tol)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = K.dropout_backward(dy, mask, 0.4)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref.dropout_backward(dy, mask, 0.4), **tol)


def test_numerical_gradient_with_a_fixed_mask(rng):
    x = rng.standard_normal((4, 6))
    _, mask = K.dropout(x, 0.5, seed=7)
    # the mask depends on the seed only: a fixed seed is a fixed mask
    check_backward(lambda v: K.dropout(v, 0.5, seed=7)[0],
                   lambda dy, v: (K.dropout_backward(dy, mask, 0.5),), [x])


def test_mask_is_identical_across_thread_counts(rng):
    x = rng.standard_normal(5 * SERIAL_BELOW).astype(np.float32)  # parallel path
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        y1, m1 = K.dropout(x, 0.3, seed=99)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        y2, m2 = K.dropout(x, 0.3, seed=99)
    finally:
        numba.set_num_threads(saved)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)
    # the parallel path draws the same numbers as the serial one (and as the reference)
    head = x[:1000]
    np.testing.assert_array_equal(K.dropout(head, 0.3, seed=99)[1], m1[:1000])
    np.testing.assert_array_equal(m1[:200], ref.dropout_mask((200,), 0.3, 99))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_empirical_keep_rate(p, rng):
    n = 200_000
    x = np.ones(n, np.float32)
    y, mask = K.dropout(x, p, seed=2024)
    keep = mask.mean()
    assert abs(keep - (1 - p)) < 4 * np.sqrt(p * (1 - p) / n)
    # inverted dropout keeps the expectation
    assert abs(y.mean(dtype=np.float64) - 1.0) < 4 * np.sqrt(p / (1 - p) / n)
    np.testing.assert_allclose(y[mask == 1], np.float32(1 / (1 - p)), rtol=1e-7)
    assert np.all(y[mask == 0] == 0)


def test_seeds_give_different_masks(rng):
    x = np.ones(1000, np.float32)
    masks = [K.dropout(x, 0.5, seed=s)[1] for s in (0, 1, 2**63 + 5)]
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    np.testing.assert_array_equal(masks[0], K.dropout(x, 0.5, seed=np.int64(0))[1])
    # neighbouring units are not correlated
    m = masks[0].astype(np.float64)
    assert abs(np.corrcoef(m[:-1], m[1:])[0, 1]) < 0.1


def test_p_zero_is_identity(rng):
    x = rng.standard_normal((5, 5)).astype(np.float32)
    y, mask = K.dropout(x, 0.0, seed=1)
    np.testing.assert_array_equal(y, x)
    assert y is not x and mask.all()
    np.testing.assert_array_equal(K.dropout_backward(x, mask, 0.0), x)


def test_bool_mask_and_large_backward(rng):
    dy = rng.standard_normal(3 * SERIAL_BELOW)
    mask = rng.random(dy.size) < 0.7
    dx = K.dropout_backward(dy, mask, 0.3)
    np.testing.assert_allclose(dx, np.where(mask, dy / 0.7, 0.0), rtol=1e-15)


@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.floats(0.0, 0.95),
       st.integers(0, 2**64 - 1))
def test_dropout_property(shape, p, seed):
    x = np.arange(1, np.prod(shape) + 1, dtype=np.float64).reshape(shape)
    y, mask = K.dropout(x, p, seed)
    np.testing.assert_array_equal(mask, ref.dropout_mask(tuple(shape), p, seed))
    np.testing.assert_allclose(y, ref.dropout_apply(x, mask, p), rtol=1e-15)
    np.testing.assert_allclose(K.dropout_backward(x, mask, p), y, rtol=1e-15)


def test_bad_arguments():
    x = np.ones((2, 3), np.float32)
    for p in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="p must be"):
            K.dropout(x, p, 0)
    with pytest.raises(TypeError, match="p must be"):
        K.dropout(x, None, 0)
    with pytest.raises(ValueError, match="seed"):
        K.dropout(x, 0.5, -1)
    with pytest.raises(TypeError, match="seed"):
        K.dropout(x, 0.5, 1.5)
    with pytest.raises(TypeError, match="x must be a float"):
        K.dropout(np.ones(3, np.int32), 0.5, 0)
    with pytest.raises(ValueError, match="mask"):
        K.dropout_backward(x, np.ones((3, 2), np.uint8), 0.5)
    with pytest.raises(TypeError, match="mask"):
        K.dropout_backward(x, np.ones((2, 3), np.float32), 0.5)
    with pytest.raises(ValueError, match="p must be"):
        K.dropout_backward(x, np.ones((2, 3), np.uint8), 1.0)
