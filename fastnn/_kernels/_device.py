"""Devices: which arrays live on the GPU, and which device a user's ``device=`` means.

A neutral module: the wrappers, both backends and the layers import it; it imports neither backend
(numba.cuda loads only when a CUDA array or ``device='cuda'`` asks for it).
"""
import functools

import numpy as np


def is_cuda_array(a):
    """A GPU array: anything with ``__cuda_array_interface__``, or a numba.cuda simulator array."""
    if a is None or isinstance(a, np.ndarray):
        return False
    if hasattr(a, "__cuda_array_interface__"):
        return True
    simulated = _simulator_array_type()
    return simulated is not None and isinstance(a, simulated)


@functools.lru_cache(maxsize=None)
def _simulator_array_type():
    """The simulator's device-array class under NUMBA_ENABLE_CUDASIM=1 (it has no
    ``__cuda_array_interface__``), else None; numba.cuda is not imported otherwise."""
    if not cuda_simulated():
        return None
    try:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    except ImportError:
        return None
    return FakeCUDAArray


def to_host(a):
    """A NumPy array with the values of ``a`` (a copy from the GPU for CUDA arrays)."""
    if not is_cuda_array(a):
        return np.asarray(a)
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    from numba import cuda
    return cuda.as_cuda_array(a).copy_to_host()


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


def cuda_simulated():
    """True when numba.cuda runs on its CPU simulator (NUMBA_ENABLE_CUDASIM=1)."""
    import os
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _cuda_driver_loadable():
    """Whether the CUDA driver library can be loaded (a cheap check before importing numba.cuda)."""
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


def cuda_available():
    try:
        from numba import cuda
    except Exception:  # numba-cuda missing or broken
        return False
    try:
        return bool(cuda.is_available())
    except Exception:
        return False
