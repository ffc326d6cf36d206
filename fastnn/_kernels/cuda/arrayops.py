"""Device array operations the layers and the training loop need on the GPU.

Gradient accumulation, row gathers (mini-batches drawn from data kept on the device), masked
updates over a flat parameter buffer (weight decay and scikit-learn's L2 term on the parameters
that decay), sums of squares (gradient clipping) and correct-prediction counts (accuracy). Sums
are accumulated in float64 per block and combined in a fixed order, so results do not depend on
the launch configuration; each returns a Python number (one small copy to the host), or with
``total=`` adds it to a running total on the device and returns None.
"""
import numpy as np
from numba import cuda

from . import _config as cfg
from ._arrays import _as_device
from ._reduce import block_sum, finish_partials
from ._util import to_device as _to_device
from ._util import copy, empty, fill  # noqa: F401 (offered to fastnn._kernels.arrayops)
from ._util import flat

_RT = cfg.REDUCE_TPB


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
        _accumulate[cfg.grid(dst.size), cfg.TPB](flat(dst), flat(src))
    return dst


@cuda.jit
def _take_rows(src, idx, out, row):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = i // row
        out[i] = src[idx[r] * row + (i - r * row)]


def take_rows(src, idx, out):
    """``out[i] = src[idx[i]]`` along axis 0 (device arrays; ``idx`` int64; ``out`` C-contiguous)."""
    src, idx, out = _as_device(src), _as_device(idx), _as_device(out)
    m = int(idx.shape[0])
    if tuple(out.shape) != (m,) + tuple(src.shape[1:]):
        raise ValueError(f"out must have shape {(m,) + tuple(src.shape[1:])}, got {tuple(out.shape)}")
    if out.size:
        row = out.size // m
        _take_rows[cfg.grid(out.size), cfg.TPB](flat(src), idx, flat(out), row)
    return out


@cuda.jit
def _masked_axpy(dst, src, mask, c):
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        if mask[i]:
            dst[i] += c * src[i]


@cuda.jit
def _masked_scale(dst, mask, f):
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        if mask[i]:
            dst[i] *= f


def masked_axpy(dst, src, mask, c):
    """``dst[mask] += c * src[mask]`` in place (flat device arrays; ``mask`` bool)."""
    if dst.size:
        _masked_axpy[cfg.grid(dst.size), cfg.TPB](dst, src, mask, np.dtype(dst.dtype).type(c))


def masked_scale(dst, mask, f):
    """``dst[mask] *= f`` in place."""
    if dst.size:
        _masked_scale[cfg.grid(dst.size), cfg.TPB](dst, mask, np.dtype(dst.dtype).type(f))


def _number(v):
    return None if v is None else float(v)


def _count(v):
    return None if v is None else int(round(v))


def _partials(n):
    blocks = max(1, min((n + _RT - 1) // _RT, cfg.max_blocks()))
    return blocks, empty(blocks, np.float64)


@cuda.jit
def _l2_masked(data, grad, mask, c, part):
    buf = cuda.shared.array(_RT, np.float64)
    acc = np.float64(0)
    for i in range(cuda.grid(1), data.size, cuda.gridsize(1)):
        if mask[i]:
            w = data[i]
            acc += np.float64(w) * np.float64(w)
            grad[i] += c * w
    acc = block_sum(buf, acc, cuda.blockDim.x)
    if cuda.threadIdx.x == 0:
        part[cuda.blockIdx.x] = acc


def l2_masked(data, grad, mask, c, total=None, factor=1.0):
    """``grad[mask] += c * data[mask]``; returns ``sum(data[mask] ** 2)`` (float64), or adds
    ``factor`` times it to ``total[0]`` on the device (``finish_partials``)."""
    blocks, part = _partials(data.size)
    _l2_masked[blocks, _RT](data, grad, mask, np.dtype(data.dtype).type(c), part)
    return _number(finish_partials(part, blocks, total, factor))


@cuda.jit
def _sum_squares(a, part):
    buf = cuda.shared.array(_RT, np.float64)
    acc = np.float64(0)
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        v = np.float64(a[i])
        acc += v * v
    acc = block_sum(buf, acc, cuda.blockDim.x)
    if cuda.threadIdx.x == 0:
        part[cuda.blockIdx.x] = acc


def sum_squares(a, total=None, factor=1.0):
    """``sum(a ** 2)`` in float64 for a device array (or ``factor`` times it added to
    ``total[0]`` on the device)."""
    a = flat(_as_device(a))
    blocks, part = _partials(a.size)
    _sum_squares[blocks, _RT](a, part)
    return _number(finish_partials(part, blocks, total, factor))


@cuda.jit
def _scale(a, f):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] *= f


def scale(a, f):
    """``a *= f`` in place."""
    d = flat(_as_device(a))
    if d.size:
        _scale[cfg.grid(d.size), cfg.TPB](d, np.dtype(d.dtype).type(f))
    return a


@cuda.jit
def _count_argmax(out, target, part, c):
    buf = cuda.shared.array(_RT, np.float64)
    acc = np.float64(0)
    n = out.size // c
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        best = 0
        for j in range(1, c):
            if out[r * c + j] > out[r * c + best]:
                best = j
        if best == target[r]:
            acc += np.float64(1)
    acc = block_sum(buf, acc, cuda.blockDim.x)
    if cuda.threadIdx.x == 0:
        part[cuda.blockIdx.x] = acc


def count_argmax_correct(output, target, total=None, factor=1.0):
    """Rows of the (N, C) ``output`` whose first maximum is at the int64 ``target`` index (or
    added to ``total[0]`` on the device)."""
    output, target = _as_device(output), _as_device(target)
    n, c = int(output.shape[0]), int(output.shape[1])
    blocks, part = _partials(n)
    _count_argmax[blocks, _RT](flat(output), target, part, c)
    return _count(finish_partials(part, blocks, total, factor))


@cuda.jit
def _count_binary(out, target, half, part):
    buf = cuda.shared.array(_RT, np.float64)
    acc = np.float64(0)
    zero = half - half
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        if (out[i] > zero) == (target[i] > half):
            acc += np.float64(1)
    acc = block_sum(buf, acc, cuda.blockDim.x)
    if cuda.threadIdx.x == 0:
        part[cuda.blockIdx.x] = acc


def count_binary_correct(output, target, total=None, factor=1.0):
    """Elements where ``output > 0`` agrees with ``target > 0.5`` (same-size device arrays), or
    added to ``total[0]`` on the device."""
    output, target = flat(_as_device(output)), flat(_as_device(target))
    blocks, part = _partials(output.size)
    _count_binary[blocks, _RT](output, target, np.dtype(target.dtype).type(0.5), part)
    return _count(finish_partials(part, blocks, total, factor))


def as_device(a):
    """A numba device array for the CUDA array ``a`` (no copy)."""
    return _as_device(a)


def to_device(a):
    """A device copy of the host array ``a``."""
    return _to_device(a)


def assign(dst, src):
    """``dst[...] = src``; ``src`` a device array or a host array of ``dst``'s dtype."""
    dst.copy_to_device(src)
    return dst


@cuda.jit
def _channels(src, dst, offset, c_src, c_dst, inner, to_dst):
    """Copy between ``src`` (N, c_src, inner) and channels ``offset..`` of ``dst`` (N, c_dst,
    inner), both flat: into ``dst`` (``to_dst``) or out of it."""
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        n = i // (c_src * inner)
        r = i - n * c_src * inner
        j = n * c_dst * inner + offset * inner + r
        if to_dst:
            dst[j] = src[i]
        else:
            src[i] = dst[j]


def _channel_copy(small, big, offset, to_big):
    n = small.shape[0]
    inner = small.size // max(1, n * small.shape[1]) if small.size else 1
    if small.size:
        _channels[cfg.grid(small.size), cfg.TPB](flat(small), flat(big), offset, small.shape[1],
                                                 big.shape[1], inner, to_big)


def put_channels(dst, src, offset):
    """``dst[:, offset:offset + src.shape[1]] = src`` (C-contiguous device arrays)."""
    _channel_copy(_as_device(src), dst, int(offset), True)
    return dst


def take_channels(src, offset, width):
    """A new device array of ``src[:, offset:offset + width]``."""
    out = empty((src.shape[0], int(width)) + tuple(src.shape[2:]), np.dtype(src.dtype))
    _channel_copy(out, src, int(offset), False)
    return out


@cuda.jit
def _reverse_steps(src, dst, steps, inner):
    """dst[n, steps - 1 - t, :] = src[n, t, :] for flat (N, steps, inner) arrays."""
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        t = (i // inner) % steps
        dst[i + (steps - 1 - 2 * t) * inner] = src[i]


def reverse_steps(a):
    """A new device array of ``a[:, ::-1]`` (axis 1 reversed; ``a`` C-contiguous)."""
    a = _as_device(a)
    out = empty(tuple(a.shape), np.dtype(a.dtype))
    if a.size:
        steps = int(a.shape[1])
        _reverse_steps[cfg.grid(a.size), cfg.TPB](flat(a), flat(out), steps,
                                                  a.size // (a.shape[0] * steps))
    return out
