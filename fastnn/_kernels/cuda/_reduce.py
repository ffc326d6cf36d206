"""Block reductions in shared memory, written once for every CUDA family.

Device functions (NVVM inlines them, so a kernel calling them compiles as if it had the loop
written out). Every thread of the block must call them (they synchronise); ``buf`` is a shared
array of at least ``nt`` elements whose dtype is the accumulation dtype; ``nt`` is the block's
thread count, a power of two. Kernels launched with ``REDUCE_TPB`` threads pass that constant
(the tree loop then unrolls); kernels with a launch-chosen block size pass ``cuda.blockDim.x``.

The tree adds (or takes the maximum of) ``buf[t]`` and ``buf[t + step]`` for halving steps, so the
order of the additions is fixed by the block size alone: results do not depend on timing.
"""
import math

import numpy as np
from numba import cuda

from . import _config as cfg
from ._arrays import _as_device
from ._util import empty

_RT = cfg.REDUCE_TPB


@cuda.jit(device=True)
def tree(buf, v, nt, op_max):
    """``buf[0]`` = sum (``op_max``: maximum) of each thread's ``v``, returned to every thread.

    No barrier after the read: a caller that writes ``buf`` again must synchronise first
    (``block_sum`` / ``block_max`` do). ``op_max`` expects no NaN (running maxima skip NaN).
    """
    t = cuda.threadIdx.x
    buf[t] = v
    cuda.syncthreads()
    step = nt // 2
    while step > 0:
        if t < step:
            a = buf[t]
            b = buf[t + step]
            if op_max:
                buf[t] = a if a >= b else b
            else:
                buf[t] = a + b
        cuda.syncthreads()
        step //= 2
    return buf[0]


@cuda.jit(device=True)
def block_sum(buf, v, nt):
    """Sum of ``v`` over the block; ``buf`` may be reused right after (trailing barrier)."""
    r = tree(buf, v, nt, False)
    cuda.syncthreads()
    return r


@cuda.jit(device=True)
def block_max(buf, v, nt):
    """Maximum of ``v`` (no NaN) over the block; ``buf`` may be reused right after."""
    r = tree(buf, v, nt, True)
    cuda.syncthreads()
    return r


@cuda.jit(device=True)
def block_sum2(buf, buf2, a, b):
    """Block sums of two values in one tree (half the barriers of two ``block_sum`` calls)."""
    t = cuda.threadIdx.x
    buf[t] = a
    buf2[t] = b
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if t < step:
            buf[t] += buf[t + step]
            buf2[t] += buf2[t + step]
        cuda.syncthreads()
        step //= 2
    ra = buf[0]
    rb = buf2[0]
    cuda.syncthreads()
    return ra, rb


@cuda.jit(device=True)
def block_sum_partials(part, n, buf):
    """Sum of ``part[:n]`` (float64) by one block, in a fixed order; every thread calls."""
    acc = np.float64(0)
    for i in range(cuda.threadIdx.x, n, cuda.blockDim.x):
        acc += part[i]
    return block_sum(buf, acc, cuda.blockDim.x)


@cuda.jit
def sum_partials(part, n, out):
    """out[0] = sum of part[:n] (one block of ``REDUCE_TPB`` threads)."""
    buf = cuda.shared.array(_RT, np.float64)
    acc = block_sum_partials(part, n, buf)
    if cuda.threadIdx.x == 0:
        out[0] = acc


@cuda.jit
def add_partials(part, n, total, factor):
    """total[0] += factor * sum of part[:n] (one block): a running total kept on the device."""
    buf = cuda.shared.array(_RT, np.float64)
    acc = block_sum_partials(part, n, buf)
    if cuda.threadIdx.x == 0:
        total[0] += factor * acc


def finish_partials(part, n, total, factor):
    """The sum of ``part[:n]`` read back as a float64; or, given ``total`` (float64 (1,) device
    array), ``total[0] += factor * sum`` on the device with nothing read back (returns None)."""
    if total is not None:
        add_partials[1, _RT](part, n, _as_device(total), np.float64(factor))
        return None
    out = empty(1, np.float64)
    sum_partials[1, _RT](part, n, out)
    return out.copy_to_host()[0]


@cuda.jit
def finish_splits(part, out, n, nsplit, jstride, sstride):
    """out[j] = sum over s < nsplit of part[j * jstride + s * sstride] in float64, in s order, cast
    to out's dtype: the second pass of a reduction split over blocks (one thread per output)."""
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        acc = np.float64(0)
        for s in range(nsplit):
            acc += part[j * jstride + s * sstride]
        out[j] = acc


@cuda.jit(device=True)
def channel_index(j, c, C, P):
    """Flat index of the j-th element of channel c in an (N, C, P) array (j = n * P + p)."""
    n = j // P
    return (n * C + c) * P + (j - n * P)


@cuda.jit(device=True)
def row_max_exp_sum(buf, x, e_out, base, n, store, neg_inf, zero):
    """(m, s) = max of the row ``x[base:base+n]`` and sum of ``exp(x - m)``, one block per row
    (every thread calls; both come back to every thread); with ``store`` the exponentials also go
    to ``e_out`` (softmax and cross entropy reuse them). NaN entries are skipped by the max."""
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    m = neg_inf
    for k in range(t, n, nt):
        v = x[base + k]
        m = v if v > m else m
    m = block_max(buf, m, nt)
    s = zero
    for k in range(t, n, nt):
        e = math.exp(x[base + k] - m)
        if store:
            e_out[base + k] = e
        s += e
    s = block_sum(buf, s, nt)
    return m, s
