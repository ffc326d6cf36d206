"""Backend selection: NumPy arrays run on the CPU (Numba), CUDA arrays on the GPU (numba.cuda).

A wrapper calls ``backend(*arrays)`` and then normalises every array through the backend it got
(``float_array``, ``int_array``, ``inplace_array``), so each kernel sees C-contiguous arrays of one
float dtype and compiles once per dtype. ``forced_backend("cpu" | "cuda")`` overrides the choice;
``fastnn.kernels.cpu`` / ``fastnn.kernels.cuda`` use it.
"""
import contextlib
import contextvars
import functools
import importlib

import numpy as np

from ._device import cuda_simulated, is_cuda_array, to_host  # noqa: F401 (re-exported)
from ._validate import FLOAT_DTYPES, check_float, check_ndim
from .cpu._threads import rebalance as _rebalance  # imports nothing heavy

_forced = contextvars.ContextVar("fastnn_backend", default=None)


@contextlib.contextmanager
def forced_backend(name):
    if name not in ("cpu", "cuda"):
        raise ValueError(f"backend must be 'cpu' or 'cuda', got {name!r}")
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


_CPU_MODULES = {}


class CPUBackend:
    name = "cpu"

    @staticmethod
    def impl(family):
        module = _CPU_MODULES.get(family)
        if module is None:
            module = _CPU_MODULES[family] = importlib.import_module(f"fastnn._kernels.cpu.{family}")
        _rebalance()  # inside long CPU work: follow the load (fastnn._kernels.cpu._threads)
        return module

    @staticmethod
    def _host(a):
        return to_host(a)

    def float_array(self, a, name, ndim=None, dtype=None, layout=None):
        """C-contiguous float32/float64 copy-if-needed of ``a``; dtype must match ``dtype`` if given."""
        if (type(a) is np.ndarray and a.dtype in FLOAT_DTYPES
                and (dtype is None or a.dtype == dtype) and (ndim is None or a.ndim == ndim)
                and a.flags.c_contiguous and a.flags.writeable):
            return a  # the common case: nothing to check further, nothing to copy
        a = self._host(a)
        check_float(a, name, dtype)
        if ndim is not None:
            check_ndim(a, name, ndim, layout)
        return np.require(a, requirements=["C", "W"])  # one kernel signature: C, writable

    def int_array(self, a, name, ndim=None):
        """C-contiguous int64 array of integer values (labels, indices)."""
        a = self._host(a)
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
        if ndim is not None:
            check_ndim(a, name, ndim)
        return np.require(a, dtype=np.int64, requirements=["C", "W"])

    def inplace_array(self, a, name, dtype=None, shape=None):
        """An array updated in place: must already be a writable C-contiguous float array."""
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array updated in place, got {type(a).__name__}")
        check_float(a, name, dtype)
        if shape is not None and a.shape != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous to be updated in place")
        if not a.flags.writeable:
            raise ValueError(f"{name} is read-only; it is updated in place and must be writable")
        return a


_CUDA = []  # the CUDA backend, made once (its constructor checks for a usable GPU)


def _cuda_backend():
    if not _CUDA:
        resolve_device("cuda")  # raises the clear error without a usable GPU
        from .cuda._arrays import CUDABackend
        _CUDA.append(CUDABackend())
    return _CUDA[0]


_CPU = CPUBackend()


def backend(*arrays):
    """The backend for these inputs: forced if set, else CUDA if any input is a CUDA array."""
    forced = _forced.get()
    if forced == "cpu":
        return _CPU
    if forced == "cuda":
        return _cuda_backend()
    for a in arrays:
        if a is not None and type(a) is not np.ndarray and is_cuda_array(a):
            return _cuda_backend()
    return _CPU


def device_backend(device):
    """The backend of a resolved device name ('cpu' or 'cuda'), for calls that take no array."""
    return _cuda_backend() if device == "cuda" else _CPU


def resolve_device(device):
    """Map a user's ``device`` ('cpu', 'cuda', 'auto') to 'cpu' or 'cuda'; errors if CUDA is absent."""
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "cpu":
        return "cpu"
    if device == "auto":
        # The numba.cuda simulator is a testing tool, never a reason to leave the CPU; without a
        # CUDA driver, numba.cuda (0.4 s to import) is not even loaded.
        if cuda_simulated() or not _cuda_driver_loadable():
            return "cpu"
        return "cuda" if cuda_available() else "cpu"
    available = cuda_available()
    if not available:
        raise RuntimeError(
            "device='cuda' was requested but no CUDA device was found "
            "(numba.cuda.is_available() is False, or numba-cuda is not installed: "
            "pip install 'fastnn[cuda]'); use device='cpu' or 'auto'")
    return "cuda"


@functools.lru_cache(maxsize=1)
def _cuda_driver_loadable():
    """Whether the CUDA driver library can be loaded (a cheap check before importing numba.cuda);
    looked at once per process (opening the libraries costs about 0.2 ms a call)."""
    import ctypes
    import sys
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so",
                                                              "libcuda.dylib")
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


@functools.lru_cache(maxsize=1)
def cuda_available():
    """Whether numba.cuda finds a usable GPU; asked once per process."""
    try:
        from numba import cuda
    except Exception:  # numba-cuda missing or broken
        return False
    try:
        return bool(cuda.is_available())
    except Exception:
        return False
