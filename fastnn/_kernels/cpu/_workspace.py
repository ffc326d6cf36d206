"""Arrays reused across training steps: a small caching allocator for the CPU kernels' outputs.

A training loop allocates the same arrays every batch: each layer's output, each gradient. Fresh
arrays of a few hundred kilobytes come from ``mmap`` and cost a page fault per 4 KiB on first
touch, which made ``relu_backward`` on LeNet-5's first activation (1.2 MB) take 256 us inside the
loop against 43 us alone. Inside ``reuse_buffers()`` the kernels' ``empty(shape, dtype)`` hands
back an array of that shape that nobody references any more (its reference count says only the
pool holds it), so the steady state allocates nothing. An array that anyone still holds (a layer's
forward cache, a view, a caller's variable) is never handed out again, so reuse cannot change a
result. Outside ``reuse_buffers()`` ``empty`` is ``np.empty``.

The pool belongs to the thread that opened it (threads never share buffers), keeps at most
``PER_SHAPE`` arrays of one shape and dtype, and is dropped when the outermost
``reuse_buffers()`` exits.
"""
import sys
import threading

import numpy as np

PER_SHAPE = 4   # a layer's output of this batch and the last one, its gradient: 2-3 live at once

_local = threading.local()


class _Pool:
    __slots__ = ("arrays", "depth")

    def __init__(self):
        self.arrays = {}
        self.depth = 0


class _ReuseBuffers:
    """``with reuse_buffers():`` kernels' outputs come from (and return to) a per-thread pool."""

    __slots__ = ()

    def __enter__(self):
        pool = getattr(_local, "pool", None)
        if pool is None:
            pool = _local.pool = _Pool()
        pool.depth += 1
        return self

    def __exit__(self, *exc):
        pool = _local.pool
        pool.depth -= 1
        if pool.depth == 0:
            _local.pool = None
        return False


def reuse_buffers():
    """A context in which the CPU kernels reuse output arrays nobody holds (see the module doc)."""
    return _ReuseBuffers()


def _free(arrays, nobody_else):
    """The first array in ``arrays`` that nobody but the pool holds, else None."""
    for a in arrays:
        if sys.getrefcount(a) == nobody_else:
            return a
    return None


def _refs_of_unheld():
    """What ``sys.getrefcount`` reports inside ``_free`` for an array only the pool holds
    (measured rather than assumed: the interpreter's own counting differs between versions)."""
    seen = []

    def probe(arrays):
        for a in arrays:
            seen.append(sys.getrefcount(a))
    probe([np.empty(0)])
    return seen[0]


_UNHELD = _refs_of_unheld()
_new = np.empty  # the pool's own allocations (a name of its own so tests can count them)


def empty(shape, dtype):
    """``np.empty(shape, dtype)``, taken from the thread's pool inside ``reuse_buffers()``."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        return np.empty(shape, dtype)
    key = (shape if isinstance(shape, tuple) else (shape,), np.dtype(dtype))
    arrays = pool.arrays.get(key)
    if arrays is None:
        arrays = pool.arrays[key] = []
    a = _free(arrays, _UNHELD)
    if a is None:
        a = _new(shape, dtype)
        if len(arrays) < PER_SHAPE:
            arrays.append(a)
    return a


def empty_like(x):
    return empty(tuple(x.shape), x.dtype)
