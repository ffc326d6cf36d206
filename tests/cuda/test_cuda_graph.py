"""Graph models (Residual, Branches, Columns) on device="cuda": the same training as on the CPU,
the channel copies of concatenation and column blocks on the device. Tiny shapes."""
import numpy as np
import pytest

import fastnn.nn as nn
from fastnn._kernels import arrayops
from fastnn.nn import Branches, Columns, Dense, Residual, Sequential, Tanh

pytestmark = pytest.mark.cuda

F32 = dict(rtol=2e-4, atol=2e-5)


def _graph(seed=0):
    return Sequential(
        Columns([(0, 3), (3, 5)], [Dense(4), Tanh()], Dense(3)),
        Residual(Dense(7), Tanh(), Dense(7)),
        Branches(Dense(3), [Dense(3), Tanh()], merge="add"),
        Dense(3), seed=seed)


def test_channel_copies_match_numpy():
    from numba import cuda
    rng = np.random.default_rng(0)
    big = rng.standard_normal((3, 5, 4)).astype(np.float32)
    small = rng.standard_normal((3, 2, 4)).astype(np.float32)
    d_big = cuda.to_device(big)
    arrayops.put_channels(d_big, cuda.to_device(small), 2)
    expect = big.copy()
    expect[:, 2:4] = small
    np.testing.assert_array_equal(d_big.copy_to_host(), expect)
    taken = arrayops.take_channels(d_big, 1, 3).copy_to_host()
    np.testing.assert_array_equal(taken, expect[:, 1:4])


def test_graph_fit_matches_cpu():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 6)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    a, b = _graph(), _graph()
    ha = nn.fit(a, x, y, epochs=2, batch_size=4, seed=1)
    hb = nn.fit(b, x, y, epochs=2, batch_size=4, seed=1, device="cuda")
    assert b.device == "cuda"
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(nn.to_host(q.data), p.data, err_msg=p.name, **F32)
    np.testing.assert_allclose(hb["loss"], ha["loss"], rtol=1e-4)
    np.testing.assert_allclose(b.predict(x), a.predict(x), rtol=1e-3, atol=1e-4)
