"""The one place that sets how CPU kernels are compiled, and the BLAS-thread guard."""
import contextlib
import functools

import numba

# fastmath without 'nnan'/'ninf': NaN and Inf keep their meaning (isnan checks survive).
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def jit(fn=None, *, parallel=False, fastmath=True, inline="never"):
    """``numba.njit`` with fastnn's settings: cached, numpy error model, NaN-safe fastmath, lazy."""
    options = dict(cache=True, error_model="numpy", nogil=True, parallel=parallel,
                   fastmath=set(FASTMATH) if fastmath else False, inline=inline)
    if fn is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(fn)


def pjit(fn=None, **kwargs):
    """``jit`` with ``parallel=True`` (use ``numba.prange`` for the parallel loop)."""
    return jit(fn, parallel=True, **kwargs)


@functools.lru_cache(maxsize=1)
def _blas_libraries():
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that np.dot inside @njit calls)
    from threadpoolctl import ThreadpoolController
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


@contextlib.contextmanager
def blas_single_thread(always=False):
    """Keep BLAS to one thread while a ``prange`` region calls ``np.dot`` (avoids oversubscription).

    With ``always=True`` it limits BLAS even when Numba runs one thread (tiny matrix products
    run faster on one BLAS thread). Costs a few microseconds: it talks to the BLAS libraries
    directly, not through a full scan.
    """
    saved = []
    if always or numba.get_num_threads() > 1:
        for lib in _blas_libraries():
            n = lib.num_threads
            if n != 1:
                saved.append((lib, n))
                lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in saved:
            lib.set_num_threads(n)
