"""Embedding lookup and its weight gradient (CUDA).

The forward pass is one gather launch. The backward pass adds rows in a fixed order without
float atomics, so a run gives the same bits every time (and the same bits as the CPU kernel,
which adds in the same order in the same dtype): the indices are read back to the host, where a
stable sort groups the positions by index; one device table then lists, for every index that
occurs, its positions in ascending order, and each thread sums one column of one weight row over
those positions, in that order. Rows that no position names (and the padding row) stay zero.

Host functions mirror ``fastnn._kernels.cpu.embedding`` (same names, signatures, results):

- ``index_bounds(indices)`` -> ``(lo, hi)`` (one block reduces on the device; two ints read back)
- ``embedding(indices, weight)`` -> ``out`` (n, D)
- ``embedding_backward(dy, indices, num_embeddings, padding_idx)`` -> ``dweight``
"""
import numpy as np
from numba import cuda

from . import _config as cfg
from ._util import empty, fill, flat, to_device

_RT = cfg.REDUCE_TPB


@cuda.jit
def _bounds_kernel(indices, out):
    """out = (min, max) of ``indices`` (non-empty), by one block of ``_RT`` threads."""
    lo_buf = cuda.shared.array(_RT, np.int64)
    hi_buf = cuda.shared.array(_RT, np.int64)
    t = cuda.threadIdx.x
    lo = indices[0]
    hi = indices[0]
    for i in range(t, indices.size, _RT):
        v = indices[i]
        lo = min(lo, v)
        hi = max(hi, v)
    lo_buf[t] = lo
    hi_buf[t] = hi
    cuda.syncthreads()
    step = _RT // 2
    while step > 0:
        if t < step:
            lo_buf[t] = min(lo_buf[t], lo_buf[t + step])
            hi_buf[t] = max(hi_buf[t], hi_buf[t + step])
        cuda.syncthreads()
        step //= 2
    if t == 0:
        out[0] = lo_buf[0]
        out[1] = hi_buf[0]


@cuda.jit
def _gather_kernel(indices, weight, out, d):
    """out[i, k] = weight[indices[i], k] over flat (n * d) views."""
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        i = e // d
        out[e] = weight[indices[i] * d + (e - i * d)]


@cuda.jit
def _scatter_kernel(dy, table, n, m, d, dweight):
    """dweight[r, k] = sum of dy[p, k] over the positions p of index r, ascending.

    table: positions grouped by index (n), the m indices that occur (m), and the m + 1 bounds
    of each index's group in the positions."""
    for e in range(cuda.grid(1), m * d, cuda.gridsize(1)):
        j = e // d
        k = e - j * d
        r = table[n + j]
        lo = table[n + m + j]
        hi = table[n + m + j + 1]
        acc = dy[table[lo] * d + k]
        for p in range(lo + 1, hi):
            acc += dy[table[p] * d + k]
        dweight[r * d + k] = acc


def index_bounds(indices):
    out = empty(2, np.int64)
    _bounds_kernel[1, _RT](flat(indices), out)
    lo, hi = out.copy_to_host()
    return int(lo), int(hi)


def embedding(indices, weight):
    n = indices.shape[0]
    d = weight.shape[1]
    out = empty((n, d), weight.dtype)
    if out.size:
        _gather_kernel[cfg.grid(out.size), cfg.TPB](indices, flat(weight), flat(out), d)
    return out


def _groups(indices, padding_idx):
    """The host table of ``_scatter_kernel``: the positions whose index is not the padding
    index, grouped by index (a stable sort keeps them ascending in a group), the indices that
    occur, and the bounds of their groups; with the counts of positions and of indices."""
    idx = indices.copy_to_host()
    pos = np.flatnonzero(idx != padding_idx) if padding_idx >= 0 else np.arange(idx.size)
    order = pos[np.argsort(idx[pos], kind="stable")]
    rows, first = np.unique(idx[order], return_index=True)
    table = np.concatenate([order, rows, first, [order.size]]).astype(np.int64)
    return table, order.size, rows.size


def embedding_backward(dy, indices, num_embeddings, padding_idx):
    n, d = dy.shape
    dweight = empty((int(num_embeddings), d), dy.dtype)
    if dweight.size == 0:
        return dweight
    fill(dweight, 0)
    if n == 0:
        return dweight
    table, kept, m = _groups(indices, int(padding_idx))
    if m:
        _scatter_kernel[cfg.grid(m * d), cfg.TPB](flat(dy), to_device(table), kept, m, d,
                                                  flat(dweight))
    return dweight
