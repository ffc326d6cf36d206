"""The one place that sets how CPU kernels are compiled."""
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

