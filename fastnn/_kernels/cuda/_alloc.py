"""A caching device allocator: every CUDA kernel's outputs and scratch come from here.

numba's ``cuda.device_array`` calls ``cuMemAlloc`` for every array and queues a ``cuMemFree``
(which synchronises the device) when it dies; a training step allocates dozens of arrays, the
same sizes every step. The pool keeps the blocks of dead arrays and hands them out again.

* **Blocks.** One raw device allocation per block (``cuda.device_array(size, uint8)``: whatever
  the running numba gives, so the simulator exercises the same pool logic), of a size class:
  512 B at least, then four classes per power of two (under 25 % rounding; the training steps
  of one shape reuse exactly their blocks).
* **Handing out.** An array is a view of a whole block (so it keeps the block's 256-byte
  alignment). On hardware its ``gpu_data`` is an ``AutoFreePointer`` over the block's address,
  owned as numba owns its own allocations: slices and reshapes hold references to it, and when
  the last of them dies numba calls the pointer's finalizer, which returns the block. Under the
  simulator the view is a NumPy array over the block whose base is a per-hand-out handle, with a
  ``weakref.finalize`` on the handle. A block is in exactly one place: free, or handed out once.
* **Freeing.** Finalizers run wherever the garbage collector runs them (any thread, possibly
  inside the pool's own code), so they only append the block to a deque; the pool files the
  returned blocks into its free lists, under its lock, at its next call.
* **Bounded.** At most ``limit`` bytes of free blocks are kept (``FASTNN_CUDA_CACHE_BYTES``,
  default 1 GiB; ``set_cuda_cache_limit``); beyond it the least recently returned are released
  to numba. When an allocation runs out of device memory the pool releases everything it caches
  and retries once. ``empty_cuda_cache()`` releases the free blocks; ``cuda_cache_info()``
  reports the counters.
* **Streams.** fastnn launches every kernel, copy and fill on the default stream, so work
  queued on a block before it died is ordered before any work of its next owner: a block can be
  reused as soon as its array is collected, with no synchronisation. This holds for the legacy
  default stream. Under per-thread default streams (``NUMBA_CUDA_PER_THREAD_DEFAULT_STREAM=1``)
  two host threads' kernels are not ordered, so there the default limit is 0 (no reuse). Work a
  caller queues on another stream over a fastnn array (CuPy, PyTorch) must finish before the
  array is dropped.
* **Poison.** With ``FASTNN_CUDA_ALLOC_POISON=1`` every block is filled with 0xFF bytes (NaN
  floats, -1 integers) when handed out, so a kernel that reads an output element before writing
  it gives NaN instead of a stale value that may look right. The CUDA tests turn it on.
* **Contexts.** Free lists are per CUDA context. Call ``empty_cuda_cache()`` before
  ``cuda.close()``: blocks cached for a closed context are never handed out again, but are only
  dropped by ``empty_cuda_cache()`` or eviction.
"""
import collections
import functools
import os
import threading
import weakref

import numpy as np
from numba import config as _numba_config
from numba import cuda

from . import _config as cfg

MIN_BLOCK = 512
DEFAULT_LIMIT = 1 << 30


def size_class(nbytes):
    """The block size serving a request of ``nbytes`` (> 0): 512 B at least, else ``nbytes``
    rounded up to a quarter of its power of two (classes 2^k, 1.25·2^k, 1.5·2^k, 1.75·2^k)."""
    nbytes = int(nbytes)
    if nbytes <= MIN_BLOCK:
        return MIN_BLOCK
    step = 1 << ((nbytes - 1).bit_length() - 3)
    return (nbytes + step - 1) // step * step


def _default_limit():
    env = os.environ.get("FASTNN_CUDA_CACHE_BYTES")
    if env:
        return max(0, int(float(env)))
    if getattr(_numba_config, "CUDA_PER_THREAD_DEFAULT_STREAM", 0):
        return 0
    return DEFAULT_LIMIT


def _shape_tuple(shape):
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _c_strides(shape, itemsize):
    strides = []
    step = itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


class _Block:
    """One raw device allocation of ``size`` bytes in context ``ctx``."""
    __slots__ = ("raw", "size", "ctx", "__weakref__")

    def __init__(self, raw, size, ctx):
        self.raw = raw
        self.size = size
        self.ctx = ctx


class _SimHandle:
    """Simulator: owner of one hand-out. NumPy views of the array (and views of those) keep it
    alive through their ``base`` chain; its finalizer returns the block."""

    def __init__(self, block, shape, dtype):
        self.block = block
        data = block.raw._ary.ctypes.data
        self.__array_interface__ = dict(shape=shape, typestr=dtype.str, data=(data, False),
                                        version=3)


def _is_oom(exc):
    if isinstance(exc, MemoryError):
        return True
    try:
        from numba.cuda.cudadrv.driver import CudaAPIError, binding
    except ImportError:  # pragma: no cover
        return False
    return (isinstance(exc, CudaAPIError)
            and exc.code == binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY)


class DevicePool:
    """Size-class free lists of device blocks, bounded, thread-safe (see the module docstring).

    ``simulator`` chooses how a block is wrapped into an array; the pool logic is the same."""

    def __init__(self, limit=None, simulator=None, poison=None):
        self.simulator = cfg.SIMULATOR if simulator is None else bool(simulator)
        if poison is None:
            poison = os.environ.get("FASTNN_CUDA_ALLOC_POISON", "") not in ("", "0")
        self.poison = bool(poison)
        self._lock = threading.Lock()
        self._free = {}                          # (ctx, size) -> [block, ...] (last out first)
        self._lru = collections.OrderedDict()    # id(block) -> block, least recently freed first
        self._returned = collections.deque()     # blocks of dead arrays, not yet filed
        self._live = {}                          # id(block) -> hardware pointer of the hand-out
        self.limit = _default_limit() if limit is None else max(0, int(limit))
        self._cached_bytes = 0
        self._live_bytes = 0
        self._live_blocks = 0
        self._peak = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    # -- the public operations -------------------------------------------------------------

    def empty(self, shape, dtype):
        """An uninitialised C-contiguous device array of ``shape`` and ``dtype``."""
        dtype = np.dtype(dtype)
        shape = _shape_tuple(shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes == 0:
            return cuda.device_array(shape, dtype=dtype)
        size = size_class(nbytes)
        ctx = self._context()
        key = (ctx, size)
        with self._lock:
            self._file_returned()
            blocks = self._free.get(key)
            block = blocks.pop() if blocks else None
            if block is not None:
                del self._lru[id(block)]
                self._cached_bytes -= size
                self._hits += 1
            else:
                self._misses += 1
        if block is None:
            block = self._new_block(size, ctx)
        with self._lock:
            self._live_bytes += size
            self._live_blocks += 1
            self._peak = max(self._peak, self._live_bytes)
        if self.poison:
            self._fill_poison(block)
        return self._wrap(block, shape, dtype)

    def info(self):
        with self._lock:
            self._file_returned()
            return dict(limit_bytes=self.limit, cached_bytes=self._cached_bytes,
                        cached_blocks=len(self._lru), live_bytes=self._live_bytes,
                        live_blocks=self._live_blocks, peak_live_bytes=self._peak,
                        hits=self._hits, misses=self._misses, evictions=self._evictions)

    def empty_cache(self):
        """Release every free block to numba; returns the bytes released. Live arrays stay."""
        with self._lock:
            self._file_returned()
            freed = self._cached_bytes
            self._evict(0)
        return freed

    def set_limit(self, nbytes):
        """Set the bound on cached free bytes (evicting down to it); returns the previous one."""
        with self._lock:
            old = self.limit
            self.limit = max(0, int(nbytes))
            self._file_returned()
            self._evict(self.limit)
        return old

    # -- internals (the caller holds the lock where noted) ---------------------------------

    def _context(self):
        if self.simulator:
            return None
        return cuda.current_context()

    def _new_block(self, size, ctx):
        try:
            raw = cuda.device_array(size, dtype=np.uint8)
        except Exception as exc:
            if not _is_oom(exc):
                raise
            self.empty_cache()
            # numba queues the frees of the released blocks: run them now (its own retry
            # would, too; an EMM plugin may have no such queue)
            pending = getattr(getattr(ctx, "memory_manager", None), "deallocations", None)
            if pending is not None:
                pending.clear()
            raw = cuda.device_array(size, dtype=np.uint8)
        return _Block(raw, size, ctx)

    def _fill_poison(self, block):
        if self.simulator:
            block.raw._ary.fill(0xFF)
        else:
            block.raw.gpu_data.memset(0xFF)      # cuMemsetD8: ordered on the default stream

    def _returned_by_finalizer(self, block):
        """Called by the finalizer of a hand-out's last reference: no lock, no allocation."""
        self._live.pop(id(block), None)
        self._returned.append(block)

    def _file_returned(self):
        """Move the blocks of dead arrays to the free lists, then evict down to the limit.
        Caller holds the lock."""
        returned = self._returned
        while returned:
            block = returned.popleft()
            self._live_bytes -= block.size
            self._live_blocks -= 1
            if block.size > self.limit:
                self._evictions += 1
                continue
            self._free.setdefault((block.ctx, block.size), []).append(block)
            self._lru[id(block)] = block
            self._cached_bytes += block.size
            self._evict(self.limit)

    def _evict(self, limit):
        """Drop least recently freed blocks until at most ``limit`` bytes are cached.
        Caller holds the lock."""
        while self._cached_bytes > limit and self._lru:
            _, block = self._lru.popitem(last=False)
            key = (block.ctx, block.size)
            blocks = self._free[key]
            blocks.remove(block)
            if not blocks:
                del self._free[key]
            self._cached_bytes -= block.size
            self._evictions += 1
            block.raw = None     # numba frees the allocation (deferred, on its own queue)

    def _wrap(self, block, shape, dtype):
        release = functools.partial(self._returned_by_finalizer, block)
        if self.simulator:
            from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
            handle = _SimHandle(block, shape, dtype)
            finalizer = weakref.finalize(handle, release)
            finalizer.atexit = False
            return FakeCUDAArray(np.asarray(handle))
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
        from numba.cuda.cudadrv.driver import AutoFreePointer
        base = block.raw.gpu_data
        mem = AutoFreePointer(base.context, base.device_pointer, block.size, finalizer=release)
        # as numba's own allocations: the pool holds the pointer object, the array (and any
        # slice of it) holds counted references; the last one to die runs ``release``
        self._live[id(block)] = mem
        return DeviceNDArray(shape, _c_strides(shape, dtype.itemsize), dtype, gpu_data=mem.own())


_pool = None
_pool_lock = threading.Lock()


def pool():
    """The process's pool (made on first use)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = DevicePool()
    return _pool


def empty(shape, dtype):
    return pool().empty(shape, dtype)


def cuda_cache_info():
    """Counters of fastnn's CUDA caching allocator, a dict: ``limit_bytes`` (the bound on cached
    free bytes), ``cached_bytes`` / ``cached_blocks`` (free blocks kept for reuse),
    ``live_bytes`` / ``live_blocks`` (blocks of arrays alive now), ``peak_live_bytes``,
    ``hits`` / ``misses`` (allocations served from the cache / by a new device allocation),
    ``evictions`` (free blocks released to numba)."""
    return pool().info()


def empty_cuda_cache():
    """Release the device memory fastnn's CUDA allocator keeps for reuse (arrays still alive
    keep theirs); returns the number of bytes released."""
    return pool().empty_cache()


def set_cuda_cache_limit(nbytes):
    """Bound the free device memory fastnn's CUDA allocator keeps for reuse (bytes; 0 disables
    reuse); returns the previous bound. The default is ``FASTNN_CUDA_CACHE_BYTES`` or 1 GiB."""
    return pool().set_limit(nbytes)
