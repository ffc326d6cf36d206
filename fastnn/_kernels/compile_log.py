"""What Numba compiled, and how long each compile took (Numba's event API, kind ``numba:compile``).

``with compile_log() as log: ...`` records every compile of a jitted function in the block (a
load from the on-disk cache is not a compile and is not recorded). Compiles nest: a function
compiles the jitted functions it calls inside its own compile, so each entry has its inclusive
time (``seconds``) and its own share (``own_seconds``: without the compiles nested in it).
"""
import contextlib
import threading
import time
from typing import NamedTuple


class Compile(NamedTuple):
    name: str            # module.function of the jitted function
    signature: str       # the argument types it was compiled for
    seconds: float       # wall time of the compile, nested compiles included
    own_seconds: float   # without the nested compiles
    depth: int           # 0 for a compile that a Python call started


class CompileLog(list):
    """The compiles of one ``compile_log()`` block, in the order they finished."""

    def total(self):
        """Wall seconds spent compiling (top-level compiles only: nested ones are inside them)."""
        return sum(c.seconds for c in self if c.depth == 0)

    def by_function(self):
        """``{name: (own seconds summed over signatures, number of signatures)}``, largest first."""
        out = {}
        for c in self:
            s, n = out.get(c.name, (0.0, 0))
            out[c.name] = (s + c.own_seconds, n + 1)
        return dict(sorted(out.items(), key=lambda kv: -kv[1][0]))

    def format(self, top=20):
        """A table of the ``top`` functions by own compile time."""
        lines = [f"compiled {len(self)} signatures in {self.total():.2f} s "
                 "(own time: without the compiles nested inside)"]
        for name, (s, n) in list(self.by_function().items())[:top]:
            lines.append(f"  {s:7.2f} s  {n:2d} sig  {name}")
        return "\n".join(lines)


def _name(dispatcher):
    fn = getattr(dispatcher, "py_func", None)
    if fn is None:
        return repr(dispatcher)
    module = (fn.__module__ or "").replace("fastnn._kernels.", "")
    return f"{module}.{fn.__qualname__}"


class _Listener:
    """A ``numba.core.event.Listener`` (built lazily: importing Numba is not free)."""

    def __init__(self):
        self.log = CompileLog()
        self.lock = threading.Lock()
        self.local = threading.local()

    def start(self):
        stack = getattr(self.local, "stack", None)
        if stack is None:
            stack = self.local.stack = []
        stack.append([time.perf_counter(), 0.0])

    def end(self, data):
        stack = self.local.stack
        t0, nested = stack.pop()
        seconds = time.perf_counter() - t0
        if stack:
            stack[-1][1] += seconds
        entry = Compile(_name(data["dispatcher"]), str(data.get("args", "")), seconds,
                        max(0.0, seconds - nested), len(stack))
        with self.lock:
            self.log.append(entry)


@contextlib.contextmanager
def compile_log():
    """Record Numba's compiles inside the block; yields a ``CompileLog`` filled as they end."""
    from numba.core import event

    state = _Listener()

    class Listener(event.Listener):
        def on_start(self, ev):
            state.start()

        def on_end(self, ev):
            state.end(ev.data)

    listener = Listener()
    with event.install_listener("numba:compile", listener):
        yield state.log
