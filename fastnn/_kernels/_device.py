"""Which arrays live on the GPU, and copies back to the host.

A neutral module: the wrappers, both backends and the layers import it; it imports neither backend
(numba.cuda's simulator classes load only under NUMBA_ENABLE_CUDASIM=1).
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


def cuda_simulated():
    """True when numba.cuda runs on its CPU simulator (NUMBA_ENABLE_CUDASIM=1)."""
    import os
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
