"""Shared benchmark utilities: what machine and libraries ran, interleaved timing, JSON output.

Every benchmark records the same environment block (``environment()``), measures with the same
interleaved timer (``warm`` then ``interleaved``) and writes its results with ``write_json``.
Timing rules: compile and first-call costs are paid in warm-up calls that are never timed; the
implementations of one operation run in turn (a, b, c, a, b, c, ...) so that a slowdown from
another process hits all of them alike; each reported figure is the median of the repeats, and the
spread (max - min) / median tells how steady the machine was.
"""
import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numba
import numpy as np

# The folder that holds the fastnn package: a repository checkout (README.md, benchmarks/) or
# site-packages of an installed fastnn.
ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = (ROOT / "pyproject.toml").is_file() and (ROOT / "benchmarks").is_dir()
# Default results folder: benchmarks/results/ of a checkout; for an installed fastnn,
# fastnn-bench-results/ in the current directory.
RESULTS = ROOT / "benchmarks" / "results" if CHECKOUT else Path.cwd() / "fastnn-bench-results"
if CHECKOUT and str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # benchmark the checkout's fastnn, not another installed one

from fastnn._info import version  # noqa: E402 (after the checkout is on the path)


# --------------------------------------------------------------------------------------------
# the machine, the libraries and their threads

def loadavg():
    """The 1, 5 and 15 minute load averages from ``/proc/loadavg`` (None where unavailable)."""
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def _cpuinfo():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            blocks = f.read().strip().split("\n\n")
    except OSError:
        return info
    cores = set()
    for block in blocks:
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        if "physical id" in fields and "core id" in fields:
            cores.add((fields["physical id"], fields["core id"]))
        if not info:
            info = fields
    flags = set(info.get("flags", "").split())
    return {
        "model_name": info.get("model name"),
        "vendor": info.get("vendor_id"),
        "family_model_stepping": [info.get("cpu family"), info.get("model"), info.get("stepping")],
        "mhz": info.get("cpu MHz"),
        "cache": info.get("cache size"),
        "simd": [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16",
                             "avx512_vnni", "amx_tile") if f in flags],
        "physical_cores": len(cores) or None,
    }


def _meminfo_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2 ** 20, 1)
    except (OSError, ValueError):
        pass
    return None


def machine():
    """CPU model, SIMD flags, core counts, memory and OS of this machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpu": _cpuinfo(), "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "memory_gib": _meminfo_gib()}


def _git_commit():
    if not CHECKOUT:
        return None
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def versions():
    """Versions of Python, fastnn (and its git commit) and the libraries compared against
    (installed distributions; None where one is missing)."""
    names = {"numpy": "numpy", "numba": "numba", "scipy": "scipy", "sklearn": "scikit-learn",
             "torch": "torch", "threadpoolctl": "threadpoolctl", "fastnn": "fastnn"}
    out = {"python": platform.python_version()}
    out.update({key: version(dist) for key, dist in names.items()})
    out["fastnn_git"] = _git_commit()
    return out


def _numba_threads():
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet in this process
        layer = f"not launched yet (requested: {numba.config.THREADING_LAYER})"
    return {"threading_layer": layer, "num_threads": numba.get_num_threads(),
            "config_num_threads": numba.config.NUMBA_NUM_THREADS}


def _torch_threads():
    try:
        import torch
    except ImportError:
        return None
    backend = None
    for line in torch.__config__.parallel_info().splitlines():
        if line.startswith("ATen parallel backend"):
            backend = line.partition(":")[2].strip()
    return {"num_threads": torch.get_num_threads(),
            "num_interop_threads": torch.get_num_interop_threads(),
            "parallel_backend": backend, "mkldnn": bool(torch.backends.mkldnn.is_available())}


def _thread_pools():
    """BLAS and OpenMP libraries loaded in this process, via threadpoolctl."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that np.dot inside @njit calls)
    except ImportError:
        pass
    from threadpoolctl import threadpool_info
    pools = []
    for lib in threadpool_info():
        pools.append({"user_api": lib.get("user_api"), "library": lib.get("internal_api"),
                      "version": lib.get("version"), "num_threads": lib.get("num_threads"),
                      "threading_layer": lib.get("threading_layer"),
                      "architecture": lib.get("architecture"),
                      "file": os.path.join(*Path(lib.get("filepath") or "?").parts[-2:])})
    return pools


def threads():
    """Thread counts of Numba (and its threading layer), PyTorch, and every BLAS/OpenMP pool."""
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER")
           if k in os.environ}
    return {"numba": _numba_threads(), "torch": _torch_threads(), "pools": _thread_pools(),
            "env": env}


def environment():
    """Everything that decides the numbers: machine, thread counts, library versions."""
    return {"machine": machine(), "threads": threads(), "versions": versions()}


def format_environment(env):
    """A few readable lines summarising ``environment()``."""
    m, t, v = env["machine"], env["threads"], env["versions"]
    cpu = m["cpu"]
    lines = [
        f"machine : {cpu.get('model_name')} ({', '.join(cpu.get('simd', []))}); "
        f"{m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs, "
        f"{cpu.get('physical_cores')} physical core(s); {m['memory_gib']} GiB; {m['platform']}",
        f"numba   : {t['numba']['num_threads']} threads, layer {t['numba']['threading_layer']}",
    ]
    if t["torch"]:
        tt = t["torch"]
        lines.append(f"torch   : {tt['num_threads']} threads "
                     f"(interop {tt['num_interop_threads']}), {tt['parallel_backend']}, "
                     f"mkldnn {tt['mkldnn']}")
    blas = [p for p in t["pools"] if p["user_api"] == "blas"]
    lines.append("BLAS    : " + ("; ".join(f"{p['library']} {p['version']} "
                                          f"{p['num_threads']} threads ({p['file']})"
                                          for p in blas) or "none found"))
    if t["env"]:
        lines.append("env     : " + " ".join(f"{k}={val}" for k, val in t["env"].items()))
    lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# timing

@dataclass
class Timing:
    """Per-call seconds of one implementation over the repeats (each sample averages ``calls``)."""
    samples: list = field(default_factory=list)
    calls: int = 1
    first_call_s: float = float("nan")

    @property
    def median(self):
        return statistics.median(self.samples)

    @property
    def spread(self):
        """(max - min) / median of the samples."""
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0

    def as_dict(self):
        d = asdict(self)
        d.update(median_s=self.median, min_s=min(self.samples), max_s=max(self.samples),
                 spread=self.spread)
        return d


def warm(fn, calls=2, keep=None):
    """Call ``fn`` ``calls`` (>= 1) times untimed (compilation, caches, page faults).

    Returns ``(first_result, first_call_s, last_call_s)``; ``keep(result)``, when given, is
    applied to the first result at once (copy it there if later calls modify it in place).
    """
    t0 = time.perf_counter()
    first = fn()
    first_s = last_s = time.perf_counter() - t0
    if keep is not None:
        first = keep(first)
    for _ in range(calls - 1):
        t0 = time.perf_counter()
        fn()
        last_s = time.perf_counter() - t0
    return first, first_s, last_s


def calls_for(seconds_per_call, min_sample_s, max_calls=1000):
    """Calls per timed sample so that one sample lasts at least ``min_sample_s``."""
    if min_sample_s <= 0 or seconds_per_call <= 0:
        return 1
    return int(min(max_calls, max(1, math.ceil(min_sample_s / seconds_per_call))))


def interleaved(fns, repeats, calls=None):
    """Time ``fns`` (label -> callable) in turn, ``repeats`` rounds: a, b, c, a, b, c, ...

    ``calls``: label -> calls per sample (default 1). Garbage collection is paused while timing.
    Returns label -> ``Timing`` with per-call seconds.
    """
    calls = calls or {}
    out = {label: Timing(calls=calls.get(label, 1)) for label in fns}
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for label, fn in fns.items():
                n = out[label].calls
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                out[label].samples.append((time.perf_counter() - t0) / n)
    finally:
        if enabled:
            gc.enable()
    return out


def measure(fns, repeats, warmup=2, min_sample_s=0.05, keep=None):
    """Warm up each of ``fns`` (label -> callable), then time them interleaved.

    Each sample repeats a call enough times to last ``min_sample_s`` (judged from the last
    warm-up call). Returns ``(timings, first_results)``: label -> ``Timing`` (its
    ``first_call_s`` includes any compilation) and label -> the first warm-up call's result
    (passed through ``keep``).
    """
    firsts, calls, first_s = {}, {}, {}
    for label, fn in fns.items():
        firsts[label], first_s[label], last = warm(fn, max(1, warmup), keep)
        calls[label] = calls_for(last, min_sample_s)
    timings = interleaved(fns, repeats, calls)
    for label, t in timings.items():
        t.first_call_s = first_s[label]
    return timings, firsts


# --------------------------------------------------------------------------------------------
# the machine's memory-bandwidth ceiling

def _parallel_copy():
    """A Numba ``prange`` copy compiled with fastnn's settings (built on first use)."""
    from fastnn._kernels.runtime import parallel_copy
    return parallel_copy()


def bandwidth_ceiling(nbytes=256 * 2 ** 20, repeats=5):
    """Measured copy bandwidth in GB/s (10^9 bytes/s), counting bytes read + written.

    ``numpy_copy``: ``np.copyto`` into a preallocated array (one thread); ``parallel_copy``: a
    Numba ``prange`` copy on all Numba threads; ``alloc_copy``: ``src.copy()``, which also pays
    for faulting in a fresh output (what a kernel returning a new large array pays).
    ``gb_s`` is the best of the preallocated copies: the ceiling for memory-bound kernels.
    """
    n = nbytes // 4
    src = np.random.default_rng(0).random(n, dtype=np.float32)
    dst = np.empty_like(src)
    pcopy = _parallel_copy()
    fns = {"numpy_copy": lambda: np.copyto(dst, src), "parallel_copy": lambda: pcopy(src, dst),
           "alloc_copy": lambda: src.copy()}
    timings, _ = measure(fns, repeats, warmup=2, min_sample_s=0)
    out = {"bytes_copied": 4 * n}
    for label, t in timings.items():
        out[f"{label}_gb_s"] = 2 * 4 * n / t.median / 1e9
        out[f"{label}_spread"] = t.spread
    out["gb_s"] = max(out["numpy_copy_gb_s"], out["parallel_copy_gb_s"])
    return out


# --------------------------------------------------------------------------------------------
# output

def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    """Replace non-finite floats by None (JSON has no NaN) in nested dicts and lists."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)) and not math.isfinite(float(o)):
        return None
    return o


def write_json(path, data):
    """Write ``data`` as indented JSON to ``path`` (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(_clean(data), f, indent=1, default=_jsonable)
        f.write("\n")
    return path


def finish(result, out):
    """Record the load average after the run, write ``result`` as JSON to ``out``, say where."""
    result["loadavg_after"] = loadavg()
    path = write_json(out, result)
    print(f"\nload average before {result.get('loadavg_before')}, after "
          f"{result['loadavg_after']}; results in {path}", flush=True)
    return result


def run_header(name, argv=None):
    """The common start of a results file: benchmark name, command line (``argv`` when the
    benchmark was called from Python), start time, load average."""
    command = [sys.executable] + list(sys.argv) if argv is None else list(argv)
    return {"benchmark": name, "command": command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_before": loadavg()}


# --------------------------------------------------------------------------------------------
# a competing process (users' machines are busy too)

_BUSY_LOOP = ("import time\n"
              "end = time.monotonic() + {seconds}\n"
              "x = 0\n"
              "while time.monotonic() < end:\n"
              "    for _ in range(100000):\n"
              "        x += 1\n")


class BusyProcess:
    """A second process spinning on one core while the block runs (``with BusyProcess():``).

    It stops itself after ``max_seconds`` even if the benchmark dies, and is killed on exit.
    """

    def __init__(self, max_seconds=900):
        self.max_seconds = max_seconds
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c",
                                      _BUSY_LOOP.format(seconds=self.max_seconds)])
        time.sleep(0.3)  # let it start spinning
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        return False


def with_and_without_busy(run, busy):
    """``{"quiet": run()}``, plus ``"busy": run()`` beside a ``BusyProcess`` when ``busy``."""
    out = {"quiet": run()}
    if busy:
        with BusyProcess():
            out["busy"] = run()
    return out


def compare_runs(runners, samples, repeats, unit="samples"):
    """Whole runs of each runner (``.name``, ``.run()``), interleaved with the order alternating
    each repeat, after one untimed run each (compile or load the cached kernels, allocate);
    medians in ``<unit>_per_s``, and ``ratio`` = fastnn's throughput / torch's."""
    for r in runners:
        r.run()
    seconds = {r.name: [] for r in runners}
    for rep in range(repeats):
        for r in (runners if rep % 2 == 0 else runners[::-1]):
            t0 = time.perf_counter()
            r.run()
            seconds[r.name].append(time.perf_counter() - t0)
    out = {"loadavg": loadavg()}
    for name, ts in seconds.items():
        med = statistics.median(ts)
        out[name] = {"seconds": ts, "median_s": med, f"{unit}_per_s": samples / med}
    if "torch" in out:
        out["ratio"] = out["fastnn"][f"{unit}_per_s"] / out["torch"][f"{unit}_per_s"]
    return out


def parser(doc, out_name, quick_help):
    """A benchmark's command line with the options every timed benchmark takes: ``--repeats``,
    ``--no-busy``, ``--quick`` (``quick_help`` says what it trims) and ``--out`` (a JSON file
    under the results folder by default)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-busy", action="store_true",
                   help="skip the runs beside a busy competing process")
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--out", default=str(RESULTS / out_name))
    return p
