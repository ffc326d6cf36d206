"""Embedding lookup and its weight gradient on the CPU.

The forward pass copies row ``indices[i]`` of the weight for each flat position ``i``. The
backward pass adds the rows of ``dy`` into the rows of the weight gradient in a fixed order:
a stable counting sort groups the positions by index (ascending positions within each index),
then each weight row, in parallel over the rows, sums its positions in that order. No atomics,
nothing that depends on the thread count: the result is the same bits for any number of threads.

Host functions (the CUDA twin has the same names and signatures); arrays are validated,
C-contiguous; indices are int64 and within range:

- ``index_bounds(indices)`` -> ``(lo, hi)``: the smallest and largest index as Python ints
  (``indices`` non-empty)
- ``embedding(indices, weight)`` -> ``out``: indices (n,), weight (V, D); out (n, D) of the weight's
  dtype
- ``embedding_backward(dy, indices, num_embeddings, padding_idx)`` -> ``dweight``: dy (n, D),
  indices (n,); dweight (num_embeddings, D) of dy's dtype; row ``padding_idx`` (-1: none) is zero
"""
import numpy as np
from numba import prange

from ._jit import jit, loops
from ._workspace import empty

SERIAL_BELOW = 1 << 15  # elements moved; smaller problems run on one thread


def _parallel(elements):
    return elements >= SERIAL_BELOW


@jit(inline="always")
def _copy_row(src, dst):
    for k in range(dst.size):
        dst[k] = src[k]


@loops
def _gather_kernel(indices, weight, out):
    """out[i] = weight[indices[i]]."""
    for i in prange(indices.size):
        _copy_row(weight[indices[i]], out[i])


@jit
def _group_by_index(indices, v, starts, order):
    """Stable counting sort: ``order[starts[r]:starts[r + 1]]`` are the positions i with
    ``indices[i] == r``, ascending. ``starts`` (v + 1,) int64, ``order`` (n,) int64."""
    for r in range(v + 1):
        starts[r] = 0
    for i in range(indices.size):
        starts[indices[i] + 1] += 1
    for r in range(v):
        starts[r + 1] += starts[r]
    fill = starts[:v].copy()
    for i in range(indices.size):
        r = indices[i]
        order[fill[r]] = i
        fill[r] += 1


@jit(inline="always")
def _sum_rows(dy, order, lo, hi, out):
    """out = the sum of the rows dy[order[p]] for p = lo, lo + 1, ..., hi - 1 (in that order)."""
    _copy_row(dy[order[lo]], out)
    for p in range(lo + 1, hi):
        row = dy[order[p]]
        for k in range(out.size):
            out[k] += row[k]


@loops
def _scatter_kernel(dy, starts, order, padding_idx, dweight):
    """dweight[r] = the sum of the rows of dy at the positions of index r, in position order."""
    zero = dweight.dtype.type(0)
    for r in prange(dweight.shape[0]):
        lo = starts[r]
        hi = starts[r + 1]
        out = dweight[r]
        if hi == lo or np.int64(r) == padding_idx:
            for k in range(out.size):
                out[k] = zero
        else:
            _sum_rows(dy, order, lo, hi, out)


def index_bounds(indices):
    return int(indices.min()), int(indices.max())


def embedding(indices, weight):
    n = indices.shape[0]
    out = empty((n, weight.shape[1]), weight.dtype)
    if out.size:
        _gather_kernel[_parallel(out.size)](indices, weight, out)
    return out


def embedding_backward(dy, indices, num_embeddings, padding_idx):
    n, d = dy.shape
    v = int(num_embeddings)
    dweight = empty((v, d), dy.dtype)
    if dweight.size == 0:
        return dweight
    starts = np.empty(v + 1, np.int64)
    order = np.empty(n, np.int64)
    _group_by_index(indices, v, starts, order)
    _scatter_kernel[_parallel(dy.size + dweight.size)](dy, starts, order, int(padding_idx),
                                                       dweight)
    return dweight
