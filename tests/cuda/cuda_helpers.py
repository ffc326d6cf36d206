"""Helpers shared by the GPU tests."""
import os

import numpy as np

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def to_host(a):
    """NumPy copy of a device array (or tuple of them); fails on anything that is not one."""
    if isinstance(a, tuple):
        return tuple(None if v is None else to_host(v) for v in a)
    assert hasattr(a, "copy_to_host") and not isinstance(a, np.ndarray), type(a)
    return a.copy_to_host()


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-11, atol=1e-12)
