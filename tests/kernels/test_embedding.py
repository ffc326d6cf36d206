"""Embedding kernels against the naive reference and PyTorch: lookup, padding, range errors and
the weight gradient's bits across thread counts."""
import numpy as np
import pytest

import fastnn
import fastnn.kernels as K
from fastnn._kernels.cpu.embedding import SERIAL_BELOW
from tests.naive import embedding as ref

DTYPES = [np.float32, np.float64]
SHAPES = [(7,), (3, 4), (2, 3, 2)]


def _weight(rng, v, d, dtype):
    return rng.standard_normal((v, d)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32, np.uint8])
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_matches_naive(shape, dtype, index_dtype, padding_idx, rng):
    v, d = 6, 5
    weight = _weight(rng, v, d, dtype)
    idx = rng.integers(0, v, shape).astype(index_dtype)   # small: many repeated indices
    y = K.embedding(idx, weight, padding_idx)
    assert y.dtype == dtype and y.shape == shape + (d,)
    np.testing.assert_array_equal(y, ref.embedding(idx, weight))   # a copy: exact
    dy = rng.standard_normal(shape + (d,)).astype(dtype)
    dw = K.embedding_backward(dy, idx, v, padding_idx)
    assert dw.dtype == dtype and dw.shape == (v, d)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(dw, ref.embedding_backward(dy, idx, v, padding_idx), **tol)
    if padding_idx is not None:
        assert not dw[padding_idx].any()


def _torch_grad(torch, idx, weight, dy, padding_idx):
    import torch.nn.functional as F
    w = torch.tensor(weight, requires_grad=True)
    y = F.embedding(torch.tensor(idx, dtype=torch.int64), w, padding_idx=padding_idx)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), w.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_matches_torch(dtype, padding_idx, rng):
    torch = pytest.importorskip("torch")
    v, d = 9, 4
    weight = _weight(rng, v, d, dtype)
    idx = rng.integers(0, v, (5, 7))
    idx[0, :3] = v - 1    # the padding rows (0, and -1 = v - 1) occur
    idx[1, :3] = 0
    dy = rng.standard_normal((5, 7, d)).astype(dtype)
    want_y, want_dw = _torch_grad(torch, idx, weight, dy, padding_idx)
    y = K.embedding(idx, weight, padding_idx)
    dw = K.embedding_backward(dy, idx, v, padding_idx)
    assert y.dtype == dw.dtype == dtype
    np.testing.assert_array_equal(y, want_y)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dw, want_dw, **tol)
    if padding_idx is not None:
        assert not dw[padding_idx].any()


def test_same_order_as_a_sequential_float32_sum(rng):
    """The gradient adds each row's contributions in position order, in float32: the bits of a
    plain loop over the positions."""
    v, d = 13, 8
    idx = rng.integers(0, v, (40, 9))
    dy = rng.standard_normal((40, 9, d)).astype(np.float32)
    want = np.zeros((v, d), np.float32)
    for pos in np.ndindex(idx.shape):
        want[idx[pos]] += dy[pos]
    np.testing.assert_array_equal(K.embedding_backward(dy, idx, v), want)


def test_backward_bits_do_not_depend_on_the_thread_count(rng):
    v, d = 50, 32
    idx = rng.integers(0, v, (64, 96))          # ~120 repeats of each index
    dy = rng.standard_normal((64, 96, d)).astype(np.float32)
    weight = _weight(rng, v, d, np.float32)
    assert dy.size >= SERIAL_BELOW            # the parallel path
    runs = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            with K.cpu_work():
                runs.append((K.embedding(idx, weight), K.embedding_backward(dy, idx, v, 3)))
    finally:
        fastnn.set_num_threads(None)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(runs[0][1], ref.embedding_backward(dy, idx, v, 3), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_array_equal(runs[0][0], ref.embedding(idx, weight))


def test_out_of_range_indices_raise(rng):
    weight = _weight(rng, 10, 3, np.float32)
    with pytest.raises(ValueError, match=r"index 10 is out of range.*\[0, 10\)"):
        K.embedding(np.array([[1, 10], [2, 3]]), weight)
    with pytest.raises(ValueError, match=r"index -1 is out of range.*\[0, 10\)"):
        K.embedding(np.array([1, -1]), weight)
    dy = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"index 12 is out of range.*num_embeddings=10"):
        K.embedding_backward(dy, np.array([0, 12]), 10)


def test_bad_arguments(rng):
    weight = _weight(rng, 10, 3, np.float32)
    idx = np.array([[1, 2], [3, 4]])
    with pytest.raises(TypeError, match="indices must be an integer array"):
        K.embedding(idx.astype(np.float32), weight)
    with pytest.raises(ValueError, match="weight must be 2-D"):
        K.embedding(idx, weight.reshape(-1))
    with pytest.raises(TypeError, match="weight"):
        K.embedding(idx, weight.astype(np.int32))
    with pytest.raises(ValueError, match="padding_idx"):
        K.embedding(idx, weight, padding_idx=10)
    with pytest.raises(TypeError, match="padding_idx"):
        K.embedding(idx, weight, padding_idx=1.0)
    dy = np.ones((2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="dy must have shape"):
        K.embedding_backward(dy[:1], idx, 10)
    with pytest.raises(ValueError, match="dy must be 3-D"):
        K.embedding_backward(dy[0], idx, 10)
    with pytest.raises(ValueError, match="num_embeddings"):
        K.embedding_backward(dy, idx, -1)
    with pytest.raises(ValueError, match="padding_idx"):
        K.embedding_backward(dy, idx, 10, padding_idx=-11)


def test_empty_and_non_contiguous_inputs(rng):
    weight = _weight(rng, 4, 3, np.float64)
    y = K.embedding(np.zeros((0, 5), np.int64), weight)
    assert y.shape == (0, 5, 3) and y.dtype == np.float64
    dw = K.embedding_backward(np.zeros((0, 5, 3)), np.zeros((0, 5), np.int64), 4)
    assert dw.shape == (4, 3) and not dw.any()
    idx = rng.integers(0, 4, (6, 8))[:, ::2]       # a strided view
    wt = np.asfortranarray(weight)
    np.testing.assert_array_equal(K.embedding(idx, wt), weight[idx])
