"""NeuralNetClassifier / NeuralNetRegressor with device="cuda": same fits as on the CPU.

Under the simulator (CI) and unchanged on real hardware (FASTNN_REAL_GPU=1). Shapes are tiny.
"""
import pickle

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
from fastnn.sklearn import NeuralNetClassifier, NeuralNetRegressor

pytestmark = [pytest.mark.cuda,
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _images(n=15, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    return x, y


def _cnn(**kw):
    params = dict(layers=[nn.Conv2D(2, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten()],
                  input_shape=(1, 4, 4), max_iter=3, batch_size=5, random_state=0,
                  learning_rate_init=0.01)
    params.update(kw)
    return NeuralNetClassifier(**params)


def _assert_models_close(cpu, gpu):
    assert gpu.model_.device == "cuda" and cpu.model_.device == "cpu"
    np.testing.assert_allclose(nn.to_host(gpu.model_.flat.data), cpu.model_.flat.data,
                               rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-4)
    assert gpu.n_iter_ == cpu.n_iter_


def test_classifier_on_cuda_matches_cpu():
    x, y = _images()
    cpu = _cnn(device="cpu").fit(x, y)
    gpu = _cnn(device="cuda").fit(x, y)
    _assert_models_close(cpu, gpu)
    np.testing.assert_array_equal(gpu.predict(x), cpu.predict(x))
    proba = gpu.predict_proba(x)
    assert isinstance(proba, np.ndarray) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, cpu.predict_proba(x), rtol=1e-3, atol=1e-5)


def test_regressor_with_early_stopping_on_cuda_matches_cpu():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1
    kw = dict(layers=[nn.Dense(5), nn.Tanh()], max_iter=4, batch_size=6, random_state=2,
              early_stopping=True, validation_fraction=0.25, dtype=np.float64,
              learning_rate_init=0.05)
    cpu = NeuralNetRegressor(device="cpu", **kw).fit(x, y)
    gpu = NeuralNetRegressor(device="cuda", **kw).fit(x, y)
    np.testing.assert_allclose(nn.to_host(gpu.model_.flat.data), cpu.model_.flat.data,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gpu.validation_losses_, cpu.validation_losses_, rtol=1e-10)
    pred = gpu.predict(x)
    assert pred.dtype == np.float64 and pred.shape == (20,)
    np.testing.assert_allclose(pred, cpu.predict(x), rtol=1e-10)


def test_partial_fit_and_warm_start_on_cuda():
    x, y = _images()
    cpu = _cnn(device="cpu", warm_start=True)
    gpu = _cnn(device="cuda", warm_start=True)
    for est in (cpu, gpu):
        est.partial_fit(x, y, classes=["a", "b", "c"])
        est.partial_fit(x, y)
        est.set_params(max_iter=2).fit(x, y)
    _assert_models_close(cpu, gpu)


def test_cuda_fitted_estimator_pickles_and_saves_to_host(tmp_path):
    x, y = _images()
    gpu = _cnn(device="cuda").fit(x, y)
    expected = gpu.predict_proba(x)
    host = pickle.loads(pickle.dumps(gpu))
    assert host.model_.device == "cpu" and isinstance(host.model_.flat.data, np.ndarray)
    host.set_params(device="cpu")
    np.testing.assert_allclose(host.predict_proba(x), expected, rtol=1e-5, atol=1e-6)
    host.partial_fit(x, y)  # keeps training on the CPU
    path = tmp_path / "est.npz"
    fastnn.save(gpu, path)
    loaded = fastnn.load(path)
    np.testing.assert_allclose(loaded.predict_proba(x), expected, rtol=1e-5, atol=1e-6)


class _HostOnly(nn.Layer):
    """A layer that declares it cannot run on the GPU."""

    supports_cuda = False

    def _forward(self, x, training):
        return x

    def _backward(self, dy):
        return dy


def test_cpu_only_layers_refuse_cuda_and_leave_the_model_unchanged():
    x = np.random.default_rng(0).standard_normal((12, 8)).astype(np.float32)
    y = np.arange(12) % 2
    est = NeuralNetClassifier(layers=[_HostOnly(), nn.Dense(3)], max_iter=1,
                              random_state=0).fit(x, y)
    before = est.model_.flat.data.copy()
    with pytest.raises(ValueError, match="_HostOnly runs on the CPU only"):
        est.set_params(device="cuda", warm_start=True).fit(x, y)
    np.testing.assert_array_equal(est.model_.flat.data, before)
    assert est.model_.device == "cpu"


def test_recurrent_estimator_on_cuda_matches_cpu():
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    y = np.arange(8) % 2
    kw = dict(layers=[nn.GRU(3)], input_shape=(3, 2), max_iter=2, batch_size=4, random_state=0)
    cpu = NeuralNetClassifier(device="cpu", **kw).fit(x, y)
    gpu = NeuralNetClassifier(device="cuda", **kw).fit(x, y)
    np.testing.assert_allclose(gpu.predict_proba(x), cpu.predict_proba(x), rtol=1e-4, atol=1e-5)


def test_cuda_fitted_estimators_load_in_a_process_without_cuda(tmp_path):
    """Unpickling needs neither a GPU nor the simulator: only host arrays are stored."""
    import os
    import subprocess
    import sys

    from fastnn.sklearn import MLPClassifier
    x, y = _images()
    path = tmp_path / "models.pkl"
    models = [_cnn(device="cuda").fit(x, y),
              MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0,
                            device="cuda").fit(x, y)]
    expected = [m.predict_proba(x) for m in models]
    path.write_bytes(pickle.dumps((models, x, expected)))
    code = ("import pickle, sys\n"
            "import numpy as np\n"
            "models, x, expected = pickle.loads(open(sys.argv[1], 'rb').read())\n"
            "for m, e in zip(models, expected):\n"
            "    m.set_params(device='cpu')\n"
            "    np.testing.assert_allclose(m.predict_proba(x), e, rtol=1e-4, atol=1e-6)\n"
            "    m.set_params(device='cuda')\n"
            "    try:\n"
            "        m.fit(x[:6], ['a', 'b', 'c', 'a', 'b', 'c'])\n"
            "    except RuntimeError as err:\n"
            "        assert 'no CUDA device was found' in str(err), err\n"
            "    else:\n"
            "        raise AssertionError('device=cuda without a GPU must raise')\n"
            "    m.set_params(device='auto')\n"
            "    np.testing.assert_allclose(m.predict_proba(x), e, rtol=1e-4, atol=1e-6)\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
