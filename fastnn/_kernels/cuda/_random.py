"""Device versions of the counter-based random numbers (see ``fastnn._kernels._random``).

The same (seed, counter) gives the same number as ``fastnn._kernels.cpu._random``.
"""
import functools

import numpy as np
from numba import cuda

from .._random import build
from ._config import SIMULATOR


def _device(fn):
    if SIMULATOR:
        # The simulator runs the functions on NumPy scalars, where uint64 wrap-around warns.
        @functools.wraps(fn)
        def quiet(*args):
            with np.errstate(over="ignore"):
                return fn(*args)
        return cuda.jit(device=True)(quiet)
    return cuda.jit(device=True)(fn)


random_bits, uniform_f32, uniform_f64 = build(_device)
