"""Small device helpers shared by the CUDA families: allocation, fills, copies, reductions."""
import functools

import numpy as np
from numba import cuda

from . import _alloc
from . import _config as cfg


@functools.lru_cache(maxsize=None)
def _dummy(dtype):
    return cuda.device_array(1, dtype=dtype)


def inline_device(fn):
    """``cuda.jit(device=True)`` with NVVM's ``alwaysinline``: for helpers that take a kernel's
    local arrays (registers only once the call is inlined; a real call would spill them to local
    memory). The simulator knows no such option and runs the plain function."""
    if cfg.SIMULATOR:
        return cuda.jit(device=True)(fn)
    return cuda.jit(device=True, forceinline=True)(fn)


def dummy(dtype):
    """A one-element device array standing in for an absent optional argument."""
    return _dummy(np.dtype(dtype))


def flat(a):
    """1-D view of the C-contiguous device array ``a`` (``a`` itself when already 1-D: building a
    new device array object costs tens of microseconds of host time)."""
    return a if len(a.shape) == 1 else a.reshape(a.size)


def empty(shape, dtype):
    """An uninitialised C-contiguous device array from fastnn's caching allocator (``_alloc``)."""
    return _alloc.empty(shape, dtype)


@cuda.jit
def _fill(a, value):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, a.size, step):
        a[i] = value


def fill(a, value):
    """Set every element of the device array ``a`` to ``value`` (cast to its dtype)."""
    f = flat(a)
    if f.size:
        _fill[cfg.grid(f.size), cfg.TPB](f, np.dtype(a.dtype).type(value))
    return a


def to_device(host):
    """A device copy (from the caching allocator) of the host array ``host``."""
    h = np.ascontiguousarray(host)
    out = empty(h.shape, h.dtype)
    if h.size:
        out.copy_to_device(h)
    return out


def zeros(shape, dtype):
    return fill(empty(shape, dtype), 0)


@cuda.jit
def _copy(src, dst):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, src.size, step):
        dst[i] = src[i]


def copy(a):
    """A new device array equal to ``a`` (contiguous)."""
    out = empty(a.shape, a.dtype)
    if a.size:
        _copy[cfg.grid(a.size), cfg.TPB](flat(a), flat(out))
    return out


_tables = {}


def table(key, build):
    """A device copy of the int64 table ``build()``, cached under ``key`` (geometry tuples)."""
    t = _tables.get(key)
    if t is None:
        host = np.ascontiguousarray(build(), dtype=np.int64).reshape(-1)
        if host.size == 0:
            host = np.zeros(1, np.int64)
        t = cuda.to_device(host)
        if len(_tables) > 256:
            _tables.clear()
        _tables[key] = t
    return t


@cuda.jit
def _cast_kernel(src, dst):
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = src[i]


def cast(a, dtype):
    """A device copy of ``a`` (C-contiguous) converted to ``dtype``."""
    out = empty(a.shape, dtype)
    if a.size:
        _cast_kernel[cfg.grid(a.size), cfg.TPB](flat(a), flat(out))
    return out


@cuda.jit
def _gather_strided_kernel(base, out, shape, strides):
    """out[i] = base[offset of the i-th element in C order], offsets from element strides."""
    nd = len(shape)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = i
        off = 0
        for k in range(nd - 1, -1, -1):
            q = r // shape[k]
            off += (r - q * shape[k]) * strides[k]
            r = q
        out[i] = base[off]


def strided_copy(base, shape, strides, dtype):
    """C-contiguous array of ``shape`` gathered from the flat ``base`` with element ``strides``."""
    out = empty(tuple(shape), dtype)
    if out.size:
        _gather_strided_kernel[cfg.grid(out.size), cfg.TPB](
            base, flat(out), tuple(int(s) for s in shape),
            tuple(int(s) for s in strides))
    return out


def gather_strided(d):
    """A C-contiguous device copy of the (non-contiguous, non-negative-stride) device array ``d``."""
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    item = np.dtype(d.dtype).itemsize
    strides = [s // item for s in d.strides]
    if any(s < 0 for s in strides) or any(s % item for s in d.strides):
        return to_device(d.copy_to_host())
    if d.size == 0:
        return empty(d.shape, d.dtype)
    span = 1 + sum((n - 1) * s for n, s in zip(d.shape, strides))
    base = DeviceNDArray(shape=(span,), strides=(item,), dtype=d.dtype, gpu_data=d.gpu_data)
    return strided_copy(base, d.shape, strides, d.dtype)
