"""Race hunting: the same GPU fit, repeated, gives bitwise-identical results.

A data race in a kernel (a missing ``syncthreads``, two blocks writing one element, an
uninitialised output read from a recycled allocator block) shows up as results that change from
run to run. Each test repeats a short fit and compares parameters and losses bit for bit.
Under the simulator (CI) shapes are tiny; with FASTNN_REAL_GPU=1 the same tests run on the GPU
with shapes that launch many blocks, split-K products and multi-block reductions. Max-pooling
here has non-overlapping windows: its backward pass scatters with atomic adds, which are
order-dependent (not bitwise repeatable) where windows overlap.

For a sanitizer run over the CUDA tests, see tools/gpu_sanitize.sh.
"""
import warnings

import numpy as np
import pytest

import fastnn.nn as nn
from cuda_helpers import SIMULATOR
from fastnn.sklearn import MLPClassifier

pytestmark = pytest.mark.cuda

REPEATS = 2 if SIMULATOR else 5


def _bits(a):
    a = np.ascontiguousarray(np.asarray(a))
    return a.dtype.str, a.shape, a.view(np.uint8).tobytes()


def _assert_all_identical(runs):
    first = runs[0]
    for i, run in enumerate(runs[1:], 1):
        assert run.keys() == first.keys()
        for key in first:
            assert _bits(run[key]) == _bits(first[key]), f"run {i} differs from run 0 in {key}"


def _fit_sequential(make, x, y, **kw):
    model = make()
    hist = nn.fit(model, x, y, device="cuda", **kw)
    out = {f"param {i} {p.name}": nn.to_host(p.data) for i, p in enumerate(model.parameters())}
    for key, values in hist.history.items():
        if key != "time":
            out[f"history {key}"] = np.asarray(values, dtype=np.float64)
    out["predict"] = model.predict(x[:8])
    return out


def _conv_model():
    if SIMULATOR:
        layers = [nn.Conv2D(2, 3, padding=1), nn.BatchNorm(), nn.ReLU(), nn.MaxPool2D(2),
                  nn.Flatten(), nn.Dropout(0.25), nn.Dense(3)]
    else:
        layers = [nn.Conv2D(16, 3, padding=1), nn.BatchNorm(), nn.ReLU(), nn.MaxPool2D(2),
                  nn.Conv2D(32, 3, padding=1), nn.ReLU(), nn.GlobalAvgPool2D(), nn.Flatten(),
                  nn.Dropout(0.25), nn.Dense(10)]
    return nn.Sequential(*layers, seed=0)


def _dense_model():
    width = 5 if SIMULATOR else 256
    out = 3 if SIMULATOR else 10
    return nn.Sequential(nn.Dense(width), nn.Tanh(), nn.Dense(width), nn.ReLU(), nn.Dense(out),
                         seed=0)


def test_repeated_conv_fit_is_bitwise_identical():
    rng = np.random.default_rng(0)
    n, c, s = (8, 1, 4) if SIMULATOR else (512, 3, 16)
    x = rng.standard_normal((n, c, s, s)).astype(np.float32)
    y = rng.integers(0, 3 if SIMULATOR else 10, n)
    kw = dict(epochs=1 if SIMULATOR else 3, batch_size=3 if SIMULATOR else 64, seed=1,
              validation_split=0.25, optimizer="adam", lr=0.01)
    _assert_all_identical([_fit_sequential(_conv_model, x, y, **kw) for _ in range(REPEATS)])


def test_repeated_dense_fit_is_bitwise_identical():
    rng = np.random.default_rng(1)
    n, f = (8, 4) if SIMULATOR else (4096, 512)
    x = rng.standard_normal((n, f)).astype(np.float32)
    y = rng.integers(0, 3 if SIMULATOR else 10, n)
    kw = dict(epochs=2 if SIMULATOR else 3, batch_size=3 if SIMULATOR else 256, seed=2,
              optimizer="sgd", lr=0.05, optimizer_options={"momentum": 0.9})
    _assert_all_identical([_fit_sequential(_dense_model, x, y, **kw) for _ in range(REPEATS)])


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_repeated_mlp_classifier_fit_is_bitwise_identical(solver):
    rng = np.random.default_rng(2)
    n, f, h = (12, 4, (3,)) if SIMULATOR else (8192, 64, (256, 128))
    X = rng.standard_normal((n, f))
    y = rng.integers(0, 3, n)

    def fit():
        est = MLPClassifier(hidden_layer_sizes=h, solver=solver,
                            max_iter=2 if SIMULATOR else 5,
                            batch_size=8 if SIMULATOR else 256, random_state=0, device="cuda")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
        out = {f"coef {i}": c for i, c in enumerate(est.coefs_)}
        out.update({f"intercept {i}": b for i, b in enumerate(est.intercepts_)})
        out["loss_curve"] = np.asarray(est.loss_curve_, dtype=np.float64)
        out["proba"] = est.predict_proba(X[:8])
        return out

    _assert_all_identical([fit() for _ in range(REPEATS)])


@pytest.mark.skipif(not SIMULATOR, reason="a property of the simulator's shared arrays")
def test_simulator_gives_one_shared_array_per_block_under_contention(monkeypatch):
    """tests/cuda/conftest.py makes the simulator's shared-array lookup atomic: threads that
    switch inside the allocation (widened here by a slow ``np.empty``) still share one array."""
    import threading
    import time

    from numba.cuda.simulator import kernelapi

    real_empty = np.empty

    def slow_empty(*args, **kwargs):
        time.sleep(0.002)
        return real_empty(*args, **kwargs)

    shared = kernelapi.FakeCUDAShared(0)
    start = threading.Barrier(8)
    got = []

    def thread():
        start.wait()
        got.append(shared.array(4, np.float64))

    monkeypatch.setattr(np, "empty", slow_empty)
    threads = [threading.Thread(target=thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len({id(a) for a in got}) == 1
