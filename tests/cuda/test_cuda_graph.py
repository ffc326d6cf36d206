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


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_graph_estimators_on_cuda_match_cpu():
    """NeuralNetClassifier / NeuralNetRegressor whose layers hold every container: the fit on
    device="cuda" (simulator in CI) gives the CPU's weights, losses and outputs."""
    from fastnn.sklearn import NeuralNetClassifier, NeuralNetRegressor
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 5)).astype(np.float32)
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, 10)]
    target = x[:, 0] - 0.5 * x[:, 3] * x[:, 4]

    def layers():
        return [Columns([(0, 3), (3, 5)], [Dense(3), Tanh()], Dense(2)),
                Residual(Dense(5), Tanh(), Dense(5)),
                Branches(Dense(2), [Dense(2), Tanh()], merge="concat")]

    kw = dict(max_iter=2, batch_size=5, random_state=0, learning_rate_init=0.01)
    for make, y in ((NeuralNetClassifier, labels), (NeuralNetRegressor, target)):
        cpu = make(layers=layers(), device="cpu", **kw).fit(x, y)
        gpu = make(layers=layers(), device="cuda", **kw).fit(x, y)
        assert gpu.model_.device == "cuda" and cpu.model_.device == "cpu"
        np.testing.assert_allclose(nn.to_host(gpu.model_.flat.data), cpu.model_.flat.data, **F32)
        np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-4)
        if make is NeuralNetClassifier:
            np.testing.assert_allclose(gpu.predict_proba(x), cpu.predict_proba(x), rtol=1e-3,
                                       atol=1e-5)
            np.testing.assert_array_equal(gpu.predict(x), cpu.predict(x))
        else:
            np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=1e-3, atol=1e-4)
        assert gpu.score(x, y) == pytest.approx(cpu.score(x, y), abs=1e-3)
