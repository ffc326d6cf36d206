"""MLPClassifier / MLPRegressor with device='cuda': the GPU twin trains like the CPU kernels.

Every fit runs the same estimator on both devices with the same random_state and compares the
fitted attributes (float32 to float32 rounding, float64 tightly). Problems are tiny: under the
simulator each GPU thread is a Python thread (conftest.py shortens the GIL switch interval).
"""
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numba import cuda
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from cuda_helpers import SIMULATOR, to_host
from fastnn._kernels import mlp as kmlp
from fastnn._kernels.cpu import mlp as cpu_mlp
from fastnn._kernels.cuda import mlp as gpu_mlp
from fastnn.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.cuda

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def _tol(dtype):
    return dict(rtol=1e-4, atol=2e-6) if np.dtype(dtype) == F32 else dict(rtol=1e-9, atol=1e-12)


def _data(kind, seed=0, n=24):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    w = rng.standard_normal((5, 2))
    if kind == "multiclass":
        y = rng.integers(0, 3, n)
    elif kind == "binary":
        y = np.where(X[:, 0] + 0.5 * rng.standard_normal(n) > 0, "yes", "no")
    elif kind == "multilabel":
        y = (X @ w + 0.5 * rng.standard_normal((n, 2)) > 0).astype(int)
    elif kind == "poisson":
        y = np.exp(0.5 * X @ w[:, 0])
    elif kind == "multioutput":
        y = X @ w
    else:
        y = X @ w[:, 0] + 0.1 * rng.standard_normal(n)
    return X, y, rng.random(n) + 0.5


def _fit(est, X, y, **fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **fit)


def _assert_same(gpu, cpu, dtype):
    """Fitted attributes of the cuda fit equal the cpu fit's (NumPy arrays of the model dtype)."""
    t = _tol(dtype)
    assert gpu.n_iter_ == cpu.n_iter_ and gpu.t_ == cpu.t_
    for a, b in zip(gpu.coefs_ + gpu.intercepts_, cpu.coefs_ + cpu.intercepts_):
        assert type(a) is np.ndarray and a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **t)
    np.testing.assert_allclose(gpu.loss_, cpu.loss_, **t)
    if cpu.solver == "lbfgs":
        assert not hasattr(gpu, "loss_curve_")
        return
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, **t)
    for name in ("m", "v"):
        a, b = getattr(gpu._optimizer_state, name), getattr(cpu._optimizer_state, name)
        assert type(a) is np.ndarray and a.dtype == dtype
        np.testing.assert_allclose(a, b, **t)
    assert gpu._optimizer_state.t == cpu._optimizer_state.t
    np.testing.assert_allclose(gpu._optimizer_state.lr, cpu._optimizer_state.lr, rtol=1e-12)
    if cpu.early_stopping:
        np.testing.assert_allclose(gpu.validation_scores_, cpu.validation_scores_, **t)
        np.testing.assert_allclose(gpu.validation_losses_, cpu.validation_losses_, **t)
        np.testing.assert_allclose(gpu.best_validation_score_, cpu.best_validation_score_, **t)
    else:
        np.testing.assert_allclose(gpu.best_loss_, cpu.best_loss_, **t)


def _both(est, X, y, **fit):
    gpu = _fit(clone(est).set_params(device="cuda"), X, y, **fit)
    cpu = _fit(clone(est).set_params(device="cpu"), X, y, **fit)
    return gpu, cpu


COMMON = dict(max_iter=3, batch_size=8, random_state=0)

CLASSIFIER_CASES = [
    ("multiclass", dict(hidden_layer_sizes=(6,)), False, F32),
    ("multiclass", dict(hidden_layer_sizes=(6,), alpha=0.05), True, F64),
    ("binary", dict(hidden_layer_sizes=(4, 3), activation="tanh", solver="sgd",
                    nesterovs_momentum=False, alpha=0.1), True, F32),
    ("multilabel", dict(hidden_layer_sizes=(4,), activation="logistic", solver="sgd",
                        learning_rate="adaptive", n_iter_no_change=1, tol=10.0, max_iter=4),
     False, F32),
    ("multilabel", dict(hidden_layer_sizes=(4,), activation="identity", solver="sgd"), True, F64),
    ("multiclass", dict(hidden_layer_sizes=(4,), solver="lbfgs", alpha=0.01, max_iter=4), True,
     F32),
    ("binary", dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=4), False, F64),
    ("multiclass", dict(hidden_layer_sizes=(4,), early_stopping=True, validation_fraction=0.25,
                        learning_rate_init=0.05, n_iter_no_change=1, tol=0.0, max_iter=5), True,
     F32),
    ("binary", dict(hidden_layer_sizes=(4,), early_stopping=True, validation_fraction=0.25,
                    learning_rate_init=0.05), False, F64),
]


@pytest.mark.parametrize("kind,params,weighted,dtype", CLASSIFIER_CASES)
def test_classifier_cuda_matches_cpu(kind, params, weighted, dtype):
    X, y, sw = _data(kind)
    est = MLPClassifier(**{**COMMON, **params, "dtype": dtype})
    gpu, cpu = _both(est, X, y, sample_weight=sw if weighted else None)
    _assert_same(gpu, cpu, dtype)
    proba = gpu.predict_proba(X)        # on the device: the estimator's device is 'cuda'
    assert proba.dtype == dtype and proba.shape == cpu.predict_proba(X).shape
    np.testing.assert_allclose(proba, cpu.predict_proba(X), **_tol(dtype))
    np.testing.assert_array_equal(gpu.predict(X), cpu.predict(X))


REGRESSOR_CASES = [
    ("linear", dict(hidden_layer_sizes=(6,)), False, F32),
    ("linear", dict(hidden_layer_sizes=(6,), solver="sgd", momentum=0.5), True, F64),
    ("poisson", dict(loss="poisson", hidden_layer_sizes=(4,), alpha=0.01), True, F32),
    ("multioutput", dict(hidden_layer_sizes=(4, 3), activation="logistic", solver="sgd",
                         learning_rate="invscaling", early_stopping=True,
                         validation_fraction=0.25), True, F32),
    ("multioutput", dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=4), True, F64),
]


@pytest.mark.parametrize("kind,params,weighted,dtype", REGRESSOR_CASES)
def test_regressor_cuda_matches_cpu(kind, params, weighted, dtype):
    X, y, sw = _data(kind)
    est = MLPRegressor(**{**COMMON, **params, "dtype": dtype})
    gpu, cpu = _both(est, X, y, sample_weight=sw if weighted else None)
    _assert_same(gpu, cpu, dtype)
    pred = gpu.predict(X)
    assert pred.dtype == dtype and pred.shape == np.shape(y)
    np.testing.assert_allclose(pred, cpu.predict(X), **_tol(dtype))


def test_sparse_input_on_cuda():
    X, y, _ = _data("multiclass")
    X[np.abs(X) < 0.8] = 0
    Xs = sp.csr_matrix(X)
    gpu, cpu = _both(MLPClassifier(**COMMON, hidden_layer_sizes=(4,)), Xs, y)
    _assert_same(gpu, cpu, F64)  # float64 X: float64 by default, as scikit-learn
    np.testing.assert_allclose(gpu.predict_proba(Xs), cpu.predict_proba(X), **_tol(F64))


def test_partial_fit_and_warm_start_on_cuda():
    X, y, sw = _data("multiclass")
    gpu = MLPClassifier((4,), solver="sgd", random_state=0, batch_size=8, device="cuda")
    cpu = clone(gpu).set_params(device="cpu")
    for est in (gpu, cpu):
        est.partial_fit(X[:16], y[:16], classes=np.arange(3))
        est.partial_fit(X[8:], y[8:], sample_weight=sw[8:])
    _assert_same(gpu, cpu, F64)

    gpu = MLPRegressor(hidden_layer_sizes=(4,), warm_start=True, device="cuda",
                       **{**COMMON, "max_iter": 2})
    cpu = clone(gpu).set_params(device="cpu")
    X, y, _ = _data("linear")
    for est in (gpu, cpu):
        _fit(est, X, y)
        _fit(est, X, 2 * y)
    assert gpu.n_iter_ == 2 and gpu.t_ == 4 * len(X)  # n_iter_ per call, t_ across calls
    _assert_same(gpu, cpu, F64)


def test_cuda_fitted_estimator_pickles_and_predicts_without_gpu(monkeypatch):
    X, y, _ = _data("multiclass")
    gpu = _fit(MLPClassifier((4,), device="cuda", **{**COMMON, "max_iter": 2}), X, y)
    proba, labels = gpu.predict_proba(X), gpu.predict(X)
    loaded = pickle.loads(pickle.dumps(gpu))
    arrays = loaded.coefs_ + loaded.intercepts_ + [loaded._optimizer_state.m,
                                                   loaded._optimizer_state.v]
    assert all(type(a) is np.ndarray for a in arrays)
    assert all(type(v) is float for v in loaded.loss_curve_)
    # a machine without a GPU: 'cuda' raises the clear error, 'cpu' and 'auto' predict
    monkeypatch.setattr("fastnn._kernels._dispatch.cuda_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        loaded.predict(X)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        clone(loaded).fit(X, y)
    for device in ("cpu", "auto"):
        loaded.set_params(device=device)
        np.testing.assert_allclose(loaded.predict_proba(X), proba, **_tol(F32))
        np.testing.assert_array_equal(loaded.predict(X), labels)


def test_cuda_device_runs_no_cpu_kernel(monkeypatch):
    """device='cuda' trains, validates and predicts on the GPU twin (the CPU kernels are
    disabled here); device='auto' never picks the simulator."""
    def refuse(*args, **kwargs):
        raise AssertionError("a kernel of the other device ran")

    X, y, _ = _data("binary")
    for name in ("train_epoch", "loss_grad", "forward", "_loss"):
        monkeypatch.setattr(cpu_mlp, name, refuse)
    for params in (dict(early_stopping=True, validation_fraction=0.25), dict(solver="lbfgs")):
        est = _fit(MLPClassifier((4,), device="cuda", **{**COMMON, "max_iter": 2}, **params), X, y)
        assert est.predict(X).shape == (24,)
    monkeypatch.undo()
    if SIMULATOR:
        for name in ("train_epoch", "loss_grad", "forward", "validation"):
            monkeypatch.setattr(gpu_mlp, name, refuse)
        for solver in ("adam", "lbfgs"):
            est = _fit(MLPClassifier((4,), solver=solver, device="auto", **COMMON), X, y)
            est.predict(X)


def test_failed_cuda_fit_leaves_model_unchanged(monkeypatch):
    X, y, _ = _data("multiclass")
    est = _fit(MLPClassifier((4,), device="cuda", **{**COMMON, "max_iter": 1}), X, y)
    before = [a.copy() for a in est.coefs_ + est.intercepts_]

    def fail(*args, **kwargs):
        raise RuntimeError("device failure")

    monkeypatch.setattr(gpu_mlp, "train_epoch", fail)
    est.set_params(warm_start=True)
    with pytest.raises(RuntimeError, match="device failure"):
        est.fit(X, y)
    assert est.n_iter_ == 1
    for a, b in zip(before, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("hidden,output,loss", [("relu", "softmax", "log_loss"),
                                                ("tanh", "logistic", "binary_log_loss"),
                                                ("logistic", "identity", "squared_error"),
                                                ("identity", "exp", "poisson")])
def test_loss_grad_kernel_matches_cpu(rng, dtype, hidden, output, loss):
    units = np.array([5, 4, 3, 3])
    w_off, b_off, size = cpu_mlp.layout(units)
    n = 7
    x = rng.standard_normal((n, 5)).astype(dtype)
    if loss == "log_loss":
        y = np.eye(3)[rng.integers(0, 3, n)].astype(dtype)
    elif loss == "binary_log_loss":
        y = (rng.random((n, 3)) > 0.5).astype(dtype)
    else:
        y = rng.random((n, 3)).astype(dtype)
    sw = (rng.random(n) + 0.5).astype(dtype)
    params = (0.5 * rng.standard_normal(size)).astype(dtype)
    codes = (cpu_mlp.ACTIVATION_CODES[hidden], cpu_mlp.ACTIVATION_CODES[output],
             cpu_mlp.LOSS_CODES[loss])
    m = kmlp.model(units, *codes)
    grad = np.empty(size, dtype)
    ref = cpu_mlp.loss_grad(x, y, sw, params, grad, m, 0.1,
                            cpu_mlp.workspace(m, n, dtype, "batch"))
    d_grad = cuda.device_array(size, dtype)
    ws = gpu_mlp.workspace(m, n, dtype, "batch")
    got = gpu_mlp.loss_grad(cuda.to_device(x), cuda.to_device(y), cuda.to_device(sw),
                            cuda.to_device(params), d_grad, m, 0.1, ws)
    np.testing.assert_allclose(got, ref, **_tol(dtype))
    np.testing.assert_allclose(to_host(d_grad), grad, **_tol(dtype))
    ws = gpu_mlp.workspace(m, 3, dtype, "forward")   # 3-row chunks
    out = gpu_mlp.forward(cuda.to_device(x), cuda.to_device(params), m, ws)
    host = to_host(out)
    assert host.dtype == dtype
    np.testing.assert_allclose(host, cpu_mlp.forward(x, params, m,
                                                     cpu_mlp.workspace(m, n, dtype, "forward")),
                               **_tol(dtype))
