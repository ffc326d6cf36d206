"""The one place that sets how CPU kernels are compiled."""
import types
from typing import NamedTuple

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
