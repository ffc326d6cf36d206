"""Dispatch on CUDA arrays, zero-copy ``__cuda_array_interface__`` inputs, lazy imports, config."""
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import SIMULATOR, to_host
from fastnn._kernels._dispatch import is_cuda_array

pytestmark = pytest.mark.cuda

def test_device_input_dispatches_to_gpu(rng):
    assert is_cuda_array(cuda.to_device(np.zeros(1, np.float32)))
    x = rng.standard_normal((3, 5)).astype(np.float32)
    y = K.relu(cuda.to_device(x))
    assert not isinstance(y, np.ndarray)
    np.testing.assert_array_equal(to_host(y), np.maximum(x, 0))
    assert isinstance(K.relu(x), np.ndarray)   # NumPy input stays on the CPU


class _Interface:
    """An object exposing only ``__cuda_array_interface__`` (as CuPy or PyTorch tensors do)."""

    def __init__(self, d):
        self._d = d
        self.__cuda_array_interface__ = d.__cuda_array_interface__
        self.shape = tuple(d.shape)
        self.ndim = len(self.shape)


@pytest.mark.skipif(SIMULATOR, reason="the simulator has no __cuda_array_interface__")
def test_cuda_array_interface_is_used_without_copy(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y = K.tanh(_Interface(cuda.to_device(x)))
    np.testing.assert_allclose(to_host(y), np.tanh(x), rtol=1e-6)
    # an in-place update through the interface lands in the original device memory: no copy
    p, g, s = (cuda.to_device(a) for a in (x.copy(), np.ones_like(x), np.zeros_like(x)))
    K.adagrad_step(_Interface(p), _Interface(g), _Interface(s), 1, lr=0.5)
    np.testing.assert_allclose(s.copy_to_host(), np.ones_like(x))
    assert np.all(p.copy_to_host() < x)


@pytest.mark.skipif(SIMULATOR, reason="needs a real GPU")
def test_torch_cuda_tensors(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    x = torch.randn(2, 3, 8, 8, device="cuda")
    w = torch.randn(4, 3, 3, 3, device="cuda")
    y = K.conv2d(x, w, padding=1)
    ref = torch.nn.functional.conv2d(x, w, padding=1)
    np.testing.assert_allclose(to_host(y), ref.cpu().numpy(), rtol=1e-4, atol=1e-4)


def test_non_contiguous_device_input_is_copied_on_device(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    view = cuda.to_device(x)[:, ::2]
    np.testing.assert_array_equal(to_host(K.cuda.relu(view)), np.maximum(x[:, ::2], 0))


def test_int_labels_are_cast_to_int64(rng):
    from fastnn._kernels.cuda._arrays import CUDABackend
    d = CUDABackend().int_array(cuda.to_device(np.array([3, 1, 2], np.int32)), "target", 1)
    assert np.dtype(d.dtype) == np.int64
    np.testing.assert_array_equal(to_host(d), [3, 1, 2])
    with pytest.raises(TypeError, match="target"):
        CUDABackend().int_array(cuda.to_device(np.zeros(2, np.float32)), "target", 1)


def test_modules_import_without_gpu_or_simulator():
    """Importing every CUDA module compiles nothing and needs no driver."""
    code = ("import importlib\n"
            "for m in ('_config', '_util', '_random', '_gemm', '_arrays', 'conv', 'pool', "
            "'activation', 'linear', 'loss', 'norm', 'dropout', 'optim', 'arrayops', 'mlp'):\n"
            "    importlib.import_module('fastnn._kernels.cuda.' + m)\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_launch_configuration_follows_the_simulator():
    from fastnn._kernels.cuda import _config
    assert _config.SIMULATOR == SIMULATOR
    if SIMULATOR:
        assert _config.TPB <= 16 and _config.GEMM_TILES[0] <= 16
    else:
        assert _config.TPB >= 128
