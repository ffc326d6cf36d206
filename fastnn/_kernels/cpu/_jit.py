"""The one place that sets how CPU kernels are compiled."""
import threading
import types
from typing import NamedTuple

import numba

from ._cache import use_kernel_cache
from ._linking import private_links

private_links()  # a kernel computes the same bits compiled here or loaded from the cache

# fastmath without 'nnan'/'ninf': NaN and Inf keep their meaning (isnan checks survive).
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def jit(fn=None, *, parallel=False, fastmath=True, inline="never"):
    """``numba.njit`` with fastnn's settings: cached, numpy error model, NaN-safe fastmath, lazy.

    Cached by fastnn's kernel cache (``_cache.KernelCache``: Numba's ``cache=True``, healing
    damaged entries, safe for processes that compile into one folder at once)."""
    options = dict(error_model="numpy", nogil=True, parallel=parallel,
                   fastmath=set(FASTMATH) if fastmath else False, inline=inline)
    if fn is None:
        return lambda f: use_kernel_cache(numba.njit(**options)(f))
    return use_kernel_cache(numba.njit(**options)(fn))


def pjit(fn=None, **kwargs):
    """``jit`` with ``parallel=True`` (use ``numba.prange`` for the parallel loop)."""
    return jit(fn, parallel=True, **kwargs)


def bind(fn, name, **names):
    """A copy of ``fn`` named ``name`` whose global names ``names`` stand for the given objects;
    its other globals are those of ``fn``'s module (a snapshot taken now when ``names`` is given).

    One loop body, several rules: each copy binds a name of the body (``rule``, ``row``) to
    another jitted function, which Numba freezes when the copy compiles and may inline. Not a
    closure: Numba keys a closure's cache entry on a pickle of the captured dispatcher, which
    holds a random id, so no new process would find it. Globals are not part of the cache key;
    the distinct name gives each copy its own cache index. Write the body in its rules' module:
    an index is invalidated by changes to the file the body's code comes from.
    """
    undeclared = sorted(k for k in names if k not in fn.__globals__)
    if undeclared:
        raise NameError(f"{fn.__module__} binds {undeclared} in {fn.__name__}: declare them in "
                        "the module (NAME = None, beside the body) so that readers find them")
    scope = {**fn.__globals__, **names} if names else fn.__globals__
    copy = types.FunctionType(fn.__code__, scope, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    return copy


class Loops(NamedTuple):
    """One kernel body compiled twice: ``loops[False]`` (``.serial``) runs its ``prange`` loops
    as plain loops, ``loops[True]`` (``.parallel``) runs them on Numba's threads."""
    serial: object
    parallel: object


def loops(fn=None, **options):
    """Compile ``fn`` (its parallel loop written with ``prange``) serially and in parallel: the
    host picks by size (a parallel region costs more than a small loop), and the serial code is
    what a ``range`` loop gives. The serial copy gets its own name: Numba's cache key ignores
    the compile flags, so two dispatchers of one function would load each other's code."""
    if fn is None:
        return lambda f: loops(f, **options)
    serial = bind(fn, fn.__name__ + "__serial")
    return Loops(jit(serial, **options), pjit(fn, **options))


_specialised = {}
_specialised_lock = threading.Lock()


def specialise(fn, name, *, parallel=False, inline="never", calls=None, **constants):
    """A jitted copy of ``fn`` (made once, then reused) in which the global names
    ``constants`` (ints, bools) are compile-time constants and the names in ``calls`` stand for
    the given jitted functions.

    Numba compiles every branch of a function, taken or not, so a kernel that picks its
    activation, loss or solver by a runtime code compiles all of them. In a copy, ``if
    SOLVER == ADAM`` folds away, and a constant passed on to a jitted callee arrives there as a
    literal type, so the callee is specialised too: a call compiles only the paths it runs.
    The copy's name carries the constants (its own cache index on disk); ``calls`` must follow
    from the constants. ``parallel``: compile ``prange`` loops to run on Numba's threads;
    ``inline="always"``: a serial copy that callers inline (one compiled module less).
    """
    calls = calls or {}
    key = (fn, name, parallel, inline, tuple(sorted(constants.items())),
           tuple(sorted((k, id(v)) for k, v in calls.items())))
    kernel = _specialised.get(key)
    if kernel is None:
        with _specialised_lock:
            kernel = _specialised.get(key)
            if kernel is None:
                suffix = "_".join(f"{k.lower()}{int(v)}" for k, v in sorted(constants.items()))
                copy = bind(fn, f"{name}__{'p' if parallel else 's'}_{suffix}", **constants,
                            **calls)
                kernel = jit(copy, parallel=parallel, inline=inline)
                _specialised[key] = kernel
    return kernel
