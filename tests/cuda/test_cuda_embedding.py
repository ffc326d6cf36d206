"""Embedding on the GPU against the CPU kernels: the same rows, the same gradient bits."""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import to_host

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("shape", [(5,), (3, 4)])
@pytest.mark.parametrize("padding_idx", [None, 1])
def test_embedding_equals_cpu(rng, dtype, shape, padding_idx):
    v, d = 5, 3
    weight = rng.standard_normal((v, d)).astype(dtype)
    idx = rng.integers(0, v, shape).astype(np.int32)   # repeated indices; cast to int64 on device
    idx.flat[0] = 1
    y = K.cpu.embedding(idx, weight, padding_idx)
    yg = to_host(K.cuda.embedding(cuda.to_device(idx), cuda.to_device(weight), padding_idx))
    assert yg.dtype == dtype and yg.shape == shape + (d,)
    np.testing.assert_array_equal(yg, y)
    dy = rng.standard_normal(shape + (d,)).astype(dtype)
    dw = K.cpu.embedding_backward(dy, idx, v, padding_idx)
    dwg = to_host(K.cuda.embedding_backward(cuda.to_device(dy), cuda.to_device(idx), v,
                                            padding_idx))
    assert dwg.dtype == dtype and dwg.shape == (v, d)
    np.testing.assert_array_equal(dwg, dw)   # same order of additions, same dtype: same bits
    if padding_idx is not None:
        assert not dwg[padding_idx].any()


def test_out_of_range_on_device(rng):
    weight = cuda.to_device(rng.standard_normal((4, 2)).astype(np.float32))
    with pytest.raises(ValueError, match=r"index 4 is out of range.*\[0, 4\)"):
        K.cuda.embedding(cuda.to_device(np.array([0, 3, 4, 1])), weight)
    with pytest.raises(ValueError, match=r"index -2 is out of range"):
        K.cuda.embedding(cuda.to_device(np.array([0, -2, 3])), weight)


def test_empty_and_unused_rows(rng):
    weight = rng.standard_normal((6, 2)).astype(np.float32)
    y = to_host(K.cuda.embedding(np.zeros((0, 3), np.int64), cuda.to_device(weight)))
    assert y.shape == (0, 3, 2)
    dw = to_host(K.cuda.embedding_backward(np.zeros((0, 3, 2), np.float32),
                                           np.zeros((0, 3), np.int64), 6))
    assert dw.shape == (6, 2) and not dw.any()
    idx = np.array([[2, 2, 2]])          # only one row used, and it is the padding row
    dw = to_host(K.cuda.embedding_backward(np.ones((1, 3, 2), np.float32), idx, 6, padding_idx=2))
    assert not dw.any()


def test_embedding_model_fit_matches_cpu():
    """Embedding + LayerNorm + Dense trained with fit(device="cuda"): the CPU's weights."""
    import fastnn.nn as nn
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, (10, 3)), rng.integers(0, 2, 10)

    def model():
        return nn.Sequential(nn.Embedding(6, 2, padding_idx=0), nn.LayerNorm(), nn.Flatten(),
                             nn.Dense(2), seed=0)
    a, b = model(), model()
    kw = dict(epochs=2, batch_size=4, seed=1)
    nn.fit(a, x, y, **kw)
    nn.fit(b, x, y, device="cuda", **kw)
    assert b.device == "cuda"
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(nn.to_host(q.data), p.data, rtol=2e-4, atol=2e-5,
                                   err_msg=p.name)
    np.testing.assert_allclose(b.predict(x), a.predict(x), rtol=2e-4, atol=2e-5)
