"""Dense (fully connected) layer on the CPU: single-threaded BLAS, split into row blocks in ``prange``.

Host functions (the CUDA twin has the same names and signatures); arrays are validated,
C-contiguous and of one float dtype:

- ``linear(x, w, b, relu=False)`` -> ``y``: ``x`` (M, in), ``w`` (out, in), ``b`` (out,) or None;
  ``y`` (M, out), passed through ReLU when ``relu``
- ``linear_backward(dy, x, w, input_grad)`` -> ``(dx, dw, db)``: ``dy`` (M, out); ``dx`` (M, in)
  or None when ``input_grad`` is False, ``dw`` (out, in), ``db`` (out,)

Inside fastnn's work (``cpu_work``) BLAS never runs its own threads: a product of at least
``PARALLEL_MACS`` multiply-adds is cut into row blocks of the output, each one a single-threaded
BLAS call inside Numba's ``prange``; a direct call outside it is one BLAS call (``matmul``).
The blocks depend on the shapes only, not on the thread count, so the result is
the same with any number of threads. Smaller products run as one BLAS call on the calling thread.
"""
import numpy as np
from numba import prange

from ._jit import jit, pjit
from ._threads import working
from ._workspace import empty
from .vecmath import relu1

# Measured on 2 cores: below about 2**20 multiply-adds (~10 us on one core) a parallel region
# costs more than it saves.
PARALLEL_MACS = 1 << 20
BLOCK_ROWS = 32  # smallest row block worth its own BLAS call (a block may be a little shorter)
MAX_BLOCKS = 16


@pjit
def _matmul_blocks(a, b, out, block):
    """``out = a @ b`` by row blocks of ``block`` rows, one single-threaded BLAS call each."""
    m = a.shape[0]
    nblocks = (m + block - 1) // block
    for t in prange(nblocks):
        lo = t * block
        hi = min(m, lo + block)
        np.dot(a[lo:hi], b, out[lo:hi])


@jit
def _epilogue(y, b, has_bias, relu):
    """``y += b`` and/or ``y = relu(y)`` in one pass (the fused dense + bias + ReLU)."""
    zero = y.dtype.type(0)
    for r in range(y.shape[0]):
        if relu:
            for j in range(y.shape[1]):
                y[r, j] = relu1(y[r, j] + (b[j] if has_bias else zero), zero)
        else:
            for j in range(y.shape[1]):
                y[r, j] += b[j]


@jit
def _column_sum(dy, out):
    """``out[j] = sum_r dy[r, j]``, accumulated in float64 (a long float32 sum loses digits)."""
    acc = np.zeros(dy.shape[1], np.float64)
    for r in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            acc[j] += dy[r, j]
    for j in range(dy.shape[1]):
        out[j] = acc[j]


def _block_rows(m, n, k):
    """Rows per block for an (m, k) @ (k, n) product, or 0 to run it as one call.

    A power of two of equal blocks, 2 to ``MAX_BLOCKS``, of at least 128 rows where there are
    enough (blocks of up to a few hundred rows keep each BLAS call efficient, and split evenly
    over 2^k threads). The shapes alone decide it, never the machine or the threads in use.
    """
    if m * n * k < PARALLEL_MACS or m < 2 * BLOCK_ROWS:
        return 0
    nblocks = max(2, min(MAX_BLOCKS, m // 128))
    nblocks = 1 << (nblocks.bit_length() - 1)
    return -(-m // nblocks)


def matmul(a, b, out=None):
    """``a @ b`` for 2-D C- or F-ordered arrays of one dtype.

    Inside fastnn's work (``cpu_work()``: ``fit``, ``predict``, a user's block) BLAS runs on one
    thread and a large product is cut into row blocks on Numba's threads (see above). Called on
    its own, a product is one BLAS call with BLAS's own threads, as NumPy makes it: no thread
    pool changes hands for one call, and a large product gets BLAS's full multi-thread speed."""
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = empty((m, n), dtype=a.dtype)
    if not working():
        return np.matmul(a, b, out=out)
    block = _block_rows(m, n, k)
    if block:
        _matmul_blocks(a, b, out, block)
    else:
        np.matmul(a, b, out=out)
    return out


def linear(x, w, b, relu=False):
    y = matmul(x, w.T)
    if b is not None or relu:
        _epilogue(y, b if b is not None else np.empty(0, y.dtype), b is not None, relu)
    return y


def linear_backward(dy, x, w, input_grad=True):
    dx = matmul(dy, w) if input_grad else None
    # dw = dy.T @ x, cut by rows of dw: dy.T is copied once so each block reads contiguous rows.
    m, n_out = dy.shape
    dyt = dy.T
    if working() and _block_rows(n_out, x.shape[1], m):
        dyt = empty((n_out, m), dy.dtype)
        dyt[...] = dy.T
    dw = matmul(dyt, x)
    db = empty(n_out, dtype=dy.dtype)
    _column_sum(dy, db)
    return dx, dw, db
