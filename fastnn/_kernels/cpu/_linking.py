"""One compiled copy of each callee per kernel, so a kernel computes the same bits whether it was
compiled in this process or loaded from the kernel cache.

Numba links a jitted callee into every caller as ``linkonce_odr`` code ("any copy will do"). In
the process that compiles a kernel, the callee's own standalone copy is already loaded, and the
caller's calls resolve to it; in a process that loads the kernel from the cache, the caller runs
its own copy, which LLVM optimised again inside the caller. With fast-math (re-association) the
two copies may round differently: an SGD fit gave one model on a machine's first run and another
on every run after it (and the first one again wherever the callee had been called directly).

``private_links()`` renames the linked copies of fastnn's functions once they are in the
caller's module (before it is optimised), with a tag of the caller's own names: no other
module defines those names, so a caller always runs its own copy, in the compiling process and
from the cache alike. Their linkage stays Numba's, so LLVM inlines and drops them as before
(first-call compile of a digits MLP fit, 3 runs each: 13.5 s median renamed, 13.0 s without,
14.1 s with ``internal`` linkage; within the machine's noise). It wraps Numba's ``numba.core.codegen.CPUCodeLibrary._optimize_final_module``
(called by ``finalize`` after the callees are linked in) and renames only functions whose
mangled name is in fastnn's ``_kernels`` package; every other Numba user in the process keeps
Numba's behaviour.
"""
import functools
import hashlib

# Part of every kernel-cache entry's version: raise it when the machine code fastnn's kernels
# compile to changes without their source changing (linking, compile flags), so that no entry
# compiled the old way is loaded again.
CODEGEN_REVISION = 2

_FASTNN = "6fastnn8_kernels"   # how Numba's mangled names spell the package fastnn._kernels


@functools.lru_cache(maxsize=1)
def private_links():
    """Install the wrapper (once per process; compiles nothing)."""
    from llvmlite import binding
    from numba.core import codegen

    original = codegen.CPUCodeLibrary._optimize_final_module

    def optimize_final_module(self):
        # the callees are linked in by now: their copies get names of this module's own
        mod = self._final_module
        own = sorted(fn.name for fn in mod.functions
                     if not fn.is_declaration and fn.linkage == binding.Linkage.external)
        tag = hashlib.sha1("\n".join(own).encode()).hexdigest()[:12]
        for fn in mod.functions:
            if (not fn.is_declaration and _FASTNN in fn.name
                    and fn.linkage == binding.Linkage.linkonce_odr):
                fn.name = f"{fn.name}.in.{tag}"
        return original(self)

    optimize_final_module.__wrapped__ = original
    codegen.CPUCodeLibrary._optimize_final_module = optimize_final_module
    return True
