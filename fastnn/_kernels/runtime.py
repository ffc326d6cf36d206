"""What the command, the report and the benchmarks need from the backends (wrapper level).

``fastnn info``, ``fastnn cache``, ``fastnn/_bench`` and ``fastnn.testing`` sit above the kernel
API and reach the backends only through here (``tests/project/test_layering.py``): the thread pool and
its limits, the kernel cache folder, a parallel copy for the bandwidth ceiling, and the GPU
tuning knobs the GPU benchmark varies.
"""


# -------------------------------------------------------------------------------- CPU threads

def usable_cores():
    """Cores this process may run on: affinity mask and cgroup CPU quota."""
    from .cpu._threads import usable_cores as cores
    return cores()


def cpu_quota():
    """The container's CPU quota in cores (cgroup v1/v2), or None where there is none."""
    from .cpu._threads import _quota_cores
    return _quota_cores()


def start_thread_pool():
    """Run one tiny parallel CPU kernel, so that Numba picks its threading layer; returns the
    kernel (a Numba dispatcher, whose cache names the kernel cache folder)."""
    import numpy as np

    from .cpu.activation import _relu_kernel
    x = np.ones(64, np.float32)
    _relu_kernel.parallel(np.empty_like(x), x, x, 0.0)  # (out, dy, x, s): the prange loop
    return _relu_kernel.parallel


_PCOPY = []


def parallel_copy():
    """``copy(src, dst)``: a ``prange`` copy compiled with the kernels' settings (made once)."""
    if not _PCOPY:
        import numba

        from .cpu._jit import pjit

        def copy(src, dst):
            for i in numba.prange(src.size):
                dst[i] = src[i]
        _PCOPY.append(pjit(copy))
    return _PCOPY[0]


# ------------------------------------------------------------------------------- kernel cache

def cache_folder():
    """``(folder, writable)``: where the CPU kernels are cached in this process."""
    from .cpu import _cache
    return _cache.cache_folder()


def cache_entries(folder):
    """fastnn's kernel cache files in ``folder``."""
    from .cpu import _cache
    return _cache.entries(folder)


def clear_cache(everywhere=False):
    """Remove fastnn's cache entries; ``(removed, errors)`` (see ``cpu._cache.clear``)."""
    from .cpu import _cache
    return _cache.clear(everywhere)


# ------------------------------------------------------------------------------ GPU tuning

def cuda_matmul(a, b, out=None, trans_a=False, trans_b=False, tiles=None):
    """The GPU GEMM on device arrays, with its tile shapes chosen (``tiles``) or the default."""
    from .cuda import _gemm
    return _gemm.matmul(a, b, out=out, trans_a=trans_a, trans_b=trans_b, tiles=tiles)


def cuda_conv_tiles(tiles=None):
    """The GEMM tiles the GPU convolution uses for small M; sets them first when given."""
    from .cuda import _config
    if tiles is not None:
        _config.GEMM_TILES_SMALL_M = tiles
    return _config.GEMM_TILES_SMALL_M


def cuda_launch_probes(small):
    """Two raw kernel launches on a device array ``small`` (float32, 1-D): one array and one
    scalar, three arrays and two scalars; what a launch costs on the host."""
    import numpy as np

    from .cuda import _util, activation
    one = np.float32(1)
    return (lambda: _util._fill[4, 256](small, one),
            lambda: activation._leaky_kernel[4, 256](small, small, one, one))
