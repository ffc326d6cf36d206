"""fastnn's caching CUDA allocator (fastnn._kernels.cuda._alloc).

The pool logic runs on whatever ``cuda.device_array`` gives: simulator arrays here, device memory
with FASTNN_REAL_GPU=1. The hardware wrapping (numba pointers and their reference counts) is also
checked without a GPU, in a subprocess, over fake device addresses that are never touched.
"""
import gc
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastnn.kernels as K
from cuda_helpers import SIMULATOR, to_host, tol
from fastnn._kernels.cuda import _alloc, _gemm, _util

pytestmark = pytest.mark.cuda

F32 = np.dtype(np.float32)


def _ptr(a):
    """Device address of the array's first element."""
    if SIMULATOR:
        return a._ary.ctypes.data
    return a.__cuda_array_interface__["data"][0]


def _nbytes(a):
    return int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize


@pytest.fixture
def pool():
    p = _alloc.DevicePool(limit=1 << 20)
    yield p
    gc.collect()
    p.empty_cache()


def test_size_classes_round_up_by_at_most_a_quarter():
    assert _alloc.size_class(1) == _alloc.size_class(512) == 512
    last = 0
    for n in sorted(set(range(1, 5000, 7)) | {2 ** k + d for k in range(10, 34) for d in (-1, 0, 1)}):
        c = _alloc.size_class(n)
        assert c >= n and c >= last and c % 128 == 0
        assert c == 512 or c < 1.25 * n
        last = c
    assert _alloc.size_class(4096) == 4096 and _alloc.size_class(4097) == 5120
    assert _alloc.size_class(513) == 640


def test_a_freed_block_is_handed_out_again(pool):
    a = pool.empty((3, 5), F32)
    assert a.shape == (3, 5) and np.dtype(a.dtype) == F32
    p = _ptr(a)
    del a
    b = pool.empty(15, F32)                       # same size class, other shape
    assert _ptr(b) == p and b.shape == (15,)
    c = pool.empty((2, 2), np.float64)            # the block is live again: a new one
    assert _ptr(c) != p
    info = pool.info()
    assert (info["hits"], info["misses"], info["live_blocks"]) == (1, 2, 2)
    del b, c
    info = pool.info()
    assert info["live_blocks"] == 0 and info["cached_blocks"] == 2


def test_views_keep_the_block_live(pool):
    a = pool.empty(64, F32)
    p = _ptr(a)
    v = a.reshape(8, 8)[2:4]
    del a
    assert pool.info()["live_blocks"] == 1
    b = pool.empty(64, F32)
    assert _ptr(b) != p
    v.copy_to_device(np.full((2, 8), 7, np.float32))
    assert (to_host(v) == 7).all()
    del v
    assert pool.info()["live_blocks"] == 1
    assert _ptr(pool.empty(64, F32)) == p


def test_no_live_block_is_handed_out_twice(pool):
    rng = np.random.default_rng(0)
    live = {}
    for step in range(300):
        if live and rng.random() < 0.45:
            del live[int(rng.choice(list(live)))]
            continue
        n = int(rng.choice([1, 3, 100, 128, 129, 700, 1000]))
        a = pool.empty(n, F32)
        a.copy_to_device(np.full(n, step, np.float32))
        live[step] = a
        spans = sorted((_ptr(x), _ptr(x) + _nbytes(x)) for x in live.values())
        assert all(e <= s for (_, e), (s, _) in zip(spans, spans[1:]))
    for step, a in live.items():                  # nothing overwrote a live array
        assert (to_host(a) == step).all()
    info = pool.info()
    assert info["hits"] > 50 and info["live_blocks"] == len(live)


def test_the_cached_bytes_respect_the_limit(pool):
    pool.set_limit(2048)
    arrays = [pool.empty(256, F32) for _ in range(4)]          # 1 KiB each
    big = pool.empty(1024, F32)                               # 4 KiB: above the limit
    del arrays, big
    info = pool.info()
    assert info["cached_bytes"] <= 2048 and info["cached_blocks"] == 2
    assert info["evictions"] == 3 and info["live_blocks"] == 0
    assert pool.set_limit(0) == 2048
    assert pool.info()["cached_bytes"] == 0
    a = pool.empty(256, F32)
    del a
    assert pool.info()["cached_blocks"] == 0                  # limit 0: no reuse


def test_empty_cache_releases_every_free_block(pool):
    keep = pool.empty(100, F32)
    arrays = [pool.empty(n, F32) for n in (10, 1000, 5000)]
    del arrays
    cached = pool.info()["cached_bytes"]
    assert cached > 0
    assert pool.empty_cache() == cached
    info = pool.info()
    assert info["cached_bytes"] == 0 and info["cached_blocks"] == 0 and info["live_blocks"] == 1
    misses = info["misses"]
    pool.empty(10, F32)
    assert pool.info()["misses"] == misses + 1
    del keep


def test_out_of_memory_releases_the_cache_and_retries(pool, monkeypatch):
    arrays = [pool.empty(n, F32) for n in (100, 1000)]
    del arrays
    assert pool.info()["cached_blocks"] == 2
    real = _alloc.cuda.device_array
    calls = []

    def device_array(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise MemoryError("out of device memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(_alloc.cuda, "device_array", device_array)
    a = pool.empty(5000, F32)                     # no cached block fits: allocate, fail, retry
    assert len(calls) == 2 and a.shape == (5000,)
    assert pool.info()["cached_blocks"] == 0
    monkeypatch.setattr(_alloc.cuda, "device_array", lambda *a, **k: (_ for _ in ()).throw(
        ValueError("not an allocation failure")))
    with pytest.raises(ValueError):
        pool.empty(7000, F32)


def test_threads_share_the_pool_safely(pool):
    errors = []

    def work(tid):
        rng = np.random.default_rng(tid)
        try:
            for i in range(60):
                n = int(rng.choice([16, 100, 200]))
                a = pool.empty(n, np.int64)
                a.copy_to_device(np.full(n, tid * 1000 + i, np.int64))
                b = pool.empty(n, np.int64)
                b.copy_to_device(np.full(n, -tid, np.int64))
                if not ((to_host(a) == tid * 1000 + i).all() and (to_host(b) == -tid).all()):
                    errors.append(tid)
                del a, b
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    info = pool.info()
    assert info["live_blocks"] == 0 and info["live_bytes"] == 0
    assert info["hits"] + info["misses"] == 6 * 60 * 2
    assert info["hits"] > info["misses"]


def test_poison_fills_every_hand_out():
    p = _alloc.DevicePool(limit=1 << 20, poison=True)
    a = p.empty(10, F32)
    assert np.isnan(to_host(a)).all()
    a.copy_to_device(np.ones(10, np.float32))
    del a
    b = p.empty((2, 5), F32)                      # the same block, poisoned again
    assert p.info()["hits"] == 1 and np.isnan(to_host(b)).all()
    assert (to_host(p.empty(3, np.int64)) == -1).all()


def test_public_functions():
    K.empty_cuda_cache()
    info = K.cuda_cache_info()
    assert {"limit_bytes", "cached_bytes", "live_bytes", "hits", "misses"} <= set(info)
    assert info["cached_bytes"] == 0
    old = K.set_cuda_cache_limit(1 << 20)
    try:
        assert K.cuda_cache_info()["limit_bytes"] == 1 << 20
    finally:
        K.set_cuda_cache_limit(old)
    assert {"cuda_cache_info", "empty_cuda_cache", "set_cuda_cache_limit"} <= set(dir(K))


def _poison_cache():
    """Fill free blocks of the process's pool with NaN: a kernel that reads its output before
    writing it, or reads another array's stale block, then shows it."""
    junk = [_util.empty(n, np.float64) for n in (64, 128, 256, 512, 1024, 4096)]
    junk += [_util.empty(n, np.float32) for n in (3, 48, 96, 200, 600, 2000)]
    for a in junk:
        _util.fill(a, np.nan)
    del junk


def test_kernels_on_reused_blocks_match_the_cpu(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 5)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    xl = rng.standard_normal((6, 7)).astype(dtype)
    wl = rng.standard_normal((5, 7)).astype(dtype)
    want_conv = K.cpu.conv2d(x, w, b, padding=1)
    want_lin = K.cpu.linear(xl, wl, b[:1].repeat(5))
    before = K.cuda_cache_info()
    for _ in range(3):
        _poison_cache()
        np.testing.assert_allclose(to_host(K.cuda.conv2d(x, w, b, padding=1)), want_conv,
                                   **tol(dtype))
        np.testing.assert_allclose(to_host(K.cuda.linear(xl, wl, b[:1].repeat(5))), want_lin,
                                   **tol(dtype))
    gc.collect()
    after = K.cuda_cache_info()
    assert after["hits"] > before["hits"]
    assert after["live_blocks"] == before["live_blocks"]


def test_split_k_scratch_comes_from_the_pool(dtype):
    rng = np.random.default_rng(2)
    M, N, Kd = 4, 8, 40 if SIMULATOR else 4096
    a = rng.standard_normal((M, Kd)).astype(dtype)
    b = rng.standard_normal((Kd, N)).astype(dtype)
    da, db = _util.to_device(a), _util.to_device(b)
    want = a.astype(np.float64) @ b
    _poison_cache()
    gc.collect()
    before = K.cuda_cache_info()
    for _ in range(2):
        out = _util.empty((M, N), dtype)
        _gemm.launch(_util.flat(da), _util.flat(db), _util.flat(out), M, N, Kd, split=4,
                     pa=(0, Kd, 0, 0), pb=(0, N, 0, 0, 1, 1, 1, 1), pc=(0, N, 0, 0, 0, 0))
        t = dict(rtol=1e-4, atol=1e-4) if np.dtype(dtype) == F32 else tol(dtype)
        np.testing.assert_allclose(to_host(out), want, **t)
    del out
    gc.collect()
    after = K.cuda_cache_info()
    # per launch: the output and the scratch; the second launch reuses both blocks
    assert after["hits"] + after["misses"] - before["hits"] - before["misses"] == 4
    assert after["hits"] - before["hits"] >= 2
    assert after["live_blocks"] == before["live_blocks"]


def test_hardware_wrapping_follows_numba_reference_counts():
    """The non-simulator path, without a GPU: a pool over fake device addresses (never touched)
    returns a block only when the array and every view of it are gone."""
    code = textwrap.dedent("""
        import gc, os
        os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
        import numpy as np
        from numba.cuda.cudadrv import driver
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
        from fastnn._kernels.cuda import _alloc

        class Ctx:
            pass

        class Raw:
            def __init__(self, addr, size):
                self.gpu_data = driver.MemoryPointer(CTX, driver.binding.CUdeviceptr(addr), size)

        CTX = Ctx()
        addrs = iter(range(1 << 30, 1 << 31, 1 << 20))
        pool = _alloc.DevicePool(limit=1 << 20, simulator=False, poison=False)
        pool._context = lambda: CTX
        pool._new_block = lambda size, ctx: _alloc._Block(Raw(next(addrs), size), size, ctx)

        def ptr(a):
            return a.__cuda_array_interface__["data"][0]

        a = pool.empty((4, 8), np.float32)
        assert type(a) is DeviceNDArray and a.shape == (4, 8) and a.strides == (32, 4)
        p = ptr(a)
        r = a.reshape(32)
        s = DeviceNDArray((6,), (4,), np.float32, gpu_data=r.gpu_data.view(12, 36))
        assert ptr(s) == p + 12
        del a, r
        gc.collect()
        assert pool.info()["live_blocks"] == 1
        assert ptr(pool.empty(32, np.float32)) != p          # still live: another block
        del s
        gc.collect()
        info = pool.info()
        assert info["live_blocks"] == 0 and info["cached_blocks"] == 2, info
        b = pool.empty(20, np.float32)
        c = pool.empty(20, np.float32)
        assert {ptr(b), ptr(c)} == {p, p + (1 << 20)}
        assert len(pool._live) == 2
        del b, c
        assert pool.info()["cached_blocks"] == 2 and not pool._live
        assert pool.empty_cache() == 1024
        print("ok")
    """)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr
