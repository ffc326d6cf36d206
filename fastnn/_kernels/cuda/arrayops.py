"""In-place array arithmetic the layers need on device arrays (gradient accumulation)."""
from numba import cuda

from . import _config as cfg
from ._arrays import _as_device


@cuda.jit
def _accumulate(dst, src):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, dst.size, step):
        dst[i] += src[i]


def accumulate(dst, src):
    """``dst += src`` for device arrays of the same size and dtype."""
    dst, src = _as_device(dst), _as_device(src)
    if dst.size != src.size:
        raise ValueError(f"cannot accumulate {tuple(src.shape)} into {tuple(dst.shape)}")
    if dst.size:
        flat = dst.reshape(-1)
        _accumulate[cfg.grid(flat.size), cfg.TPB](flat, src.reshape(-1))
    return dst
