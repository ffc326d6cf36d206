"""What fastnn runs on: versions, CPU, thread pools, kernel cache and CUDA (``fastnn info``).

``info()`` returns the facts as a dict; ``show_versions()`` prints them, as
``sklearn.show_versions()`` does. Nothing here raises: a fact that cannot be found reads as None
or as the reason it is missing.
"""
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from ._kernels.runtime import usable_cores  # noqa: F401 (imports nothing heavy)

# distribution name -> label; the last three are optional
_DISTRIBUTIONS = (("numpy", "numpy"), ("numba", "numba"), ("scikit-learn", "scikit-learn"),
                  ("scipy", "scipy"), ("threadpoolctl", "threadpoolctl"), ("torch", "torch"),
                  ("numba-cuda", "numba-cuda"), ("matplotlib", "matplotlib"))
_ENV = ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "NUMBA_CACHE_DIR", "NUMBA_ENABLE_CUDASIM",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def version(dist):
    """The installed version of distribution ``dist``, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu():
    """CPU model and SIMD flags from /proc/cpuinfo (platform.processor() elsewhere)."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
            if f in flags]
    return {"model": model or platform.processor() or None, "simd": simd}


def _cores():
    logical = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return logical, usable


def _loadavg():
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def _run_parallel_kernel():
    """Run one tiny parallel fastnn kernel, so that Numba picks its threading layer.

    Returns the kernel (a Numba dispatcher) or the error as a string.
    """
    try:
        from fastnn._kernels.runtime import start_thread_pool
        return start_thread_pool()
    except Exception as exc:  # report, never fail
        return f"{type(exc).__name__}: {exc}"


def _threads(kernel):
    out = {}
    try:
        import numba
        out["numba_config_num_threads"] = numba.config.NUMBA_NUM_THREADS
        out["numba_num_threads"] = numba.get_num_threads()
        try:
            out["numba_threading_layer"] = numba.threading_layer()
        except ValueError:
            why = kernel if isinstance(kernel, str) else "no parallel kernel has run"
            out["numba_threading_layer"] = f"not yet chosen ({why})"
    except Exception as exc:
        out["numba_error"] = f"{type(exc).__name__}: {exc}"
    try:
        from fastnn.kernels import get_num_threads
        out["fastnn_num_threads"] = get_num_threads()
    except Exception as exc:
        out["fastnn_num_threads"] = f"{type(exc).__name__}: {exc}"
    pools = []
    try:
        import numpy  # noqa: F401  (NumPy's BLAS)
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS: np.dot inside @njit)
        except ImportError:
            pass
        from threadpoolctl import threadpool_info
        for lib in threadpool_info():
            pools.append({k: lib.get(k) for k in ("user_api", "internal_api", "num_threads",
                                                   "version", "threading_layer", "architecture",
                                                   "filepath")})
    except Exception as exc:
        pools.append({"error": f"{type(exc).__name__}: {exc}"})
    out["pools"] = pools
    out["env"] = {k: os.environ[k] for k in _ENV if k in os.environ}
    return out


def _kernel_cache():
    """Where fastnn's compiled kernels are cached (the folder Numba's locators pick, through
    ``fastnn._kernels.runtime``), whether it can be written, and how much is there."""
    out = {"numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR") or None, "directory": None,
           "writable": False, "files": 0, "bytes": 0}
    try:
        from fastnn._kernels import runtime
        out["directory"], out["writable"] = runtime.cache_folder()
        sizes = []
        for p in runtime.cache_entries(out["directory"]) if out["directory"] else []:
            try:
                sizes.append(os.lstat(p).st_size)
            except OSError:
                pass
        out["files"], out["bytes"] = len(sizes), sum(sizes)
    except Exception as exc:  # report, never fail
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def clear_kernel_cache(everywhere=False):
    """Remove fastnn's kernel cache entries from the folder in use (``everywhere``: from every
    folder they may be in). Returns ``(removed, errors)``: ``(path, bytes)`` and ``(path, why)``."""
    from fastnn._kernels.runtime import clear_cache
    return clear_cache(everywhere)


def format_kernel_cache(k):
    """The kernel cache part of ``info()`` as ``(label, text)`` pairs."""
    where = (f"NUMBA_CACHE_DIR={k['numba_cache_dir']}" if k["numba_cache_dir"]
             else "NUMBA_CACHE_DIR not set")
    if k.get("error") or not k["directory"]:
        return [("directory", f"none ({k.get('error') or 'no folder can be used'}; {where})"),
                ("writable", "no: kernels compile in memory in every process; set "
                             "NUMBA_CACHE_DIR to a writable folder")]
    return [("directory", f"{k['directory']} ({where})"),
            ("size", f"{_size(k['bytes'])} in {k['files']} files"),
            ("writable", "yes" if k["writable"] else
             ("no: the entries there load, " if k["files"] else "no: ")
             + "kernels compiled anew stay in memory (again in every process); set "
             "NUMBA_CACHE_DIR to a writable folder")]


def _cuda():
    out = {"numba_cuda": version("numba-cuda"), "available": False, "device": None}
    try:
        from fastnn._kernels._device import cuda_simulated
        from fastnn._kernels._dispatch import (_cuda_driver_loadable, cuda_available,
                                               resolve_device)
        out["simulator"] = bool(cuda_simulated())
        out["driver"] = bool(_cuda_driver_loadable())
        # the simulator is a testing tool, not a GPU (device='auto' ignores it): numba.cuda
        # (seconds to import) is only asked about a real driver
        if out["driver"] and not out["simulator"]:
            out["available"] = bool(cuda_available())
        if out["available"]:
            try:
                from numba import cuda
                dev = cuda.get_current_device()
                name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
                cc = getattr(dev, "compute_capability", None)
                out["device"] = name + (f" (compute capability {cc[0]}.{cc[1]})" if cc else "")
            except Exception as exc:
                out["device"] = f"unknown ({type(exc).__name__}: {exc})"
        out["auto_device"] = resolve_device("auto")
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def info():
    """fastnn's environment as a dict: ``fastnn``, ``system``, ``dependencies``, ``threads``,
    ``kernel_cache`` and ``cuda``. Runs one tiny parallel CPU kernel first (Numba chooses its
    threading layer at the first parallel kernel); never raises."""
    import fastnn
    logical, usable = _cores()
    kernel = _run_parallel_kernel()
    return {
        "fastnn": {"version": fastnn.__version__,
                   "location": str(Path(fastnn.__file__).resolve().parent)},
        "system": {"python": sys.version.replace("\n", " "), "executable": sys.executable,
                   "platform": platform.platform(), "machine": platform.machine(),
                   "cpu": _cpu(), "cpu_count": logical, "affinity_count": usable,
                   "loadavg": _loadavg()},
        "dependencies": {label: version(dist) for dist, label in _DISTRIBUTIONS},
        "threads": _threads(kernel),
        "kernel_cache": _kernel_cache(),
        "kernels": _kernel_target(),
        "cuda": _cuda(),
    }


def _kernel_target():
    """The instruction set the CPU kernels compile for and the kernel shapes chosen from it,
    and the CPU quota of a container."""
    try:
        from fastnn import kernels
        out = dict(kernels.cpu_target())
    except Exception as exc:  # report, never fail
        return {"error": f"{type(exc).__name__}: {exc}"}
    try:
        from fastnn._kernels.runtime import cpu_quota
        out["cpu_quota"] = cpu_quota()
    except Exception as exc:
        out["cpu_quota"] = f"{type(exc).__name__}: {exc}"
    return out


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def format_info(d):
    """``info()`` as readable text."""
    def block(title, pairs):
        width = max(len(k) for k, _ in pairs)
        return [f"\n{title}:"] + [f"  {k:>{width}}: {v}" for k, v in pairs]

    s, t, c, k = d["system"], d["threads"], d["cuda"], d["kernel_cache"]
    cpu = s["cpu"]["model"] or "unknown"
    if s["cpu"]["simd"]:
        cpu += f" ({', '.join(s['cpu']['simd'])})"
    la = s["loadavg"]
    lines = [f"fastnn {d['fastnn']['version']} ({d['fastnn']['location']})"]
    lines += block("System", [
        ("python", s["python"]), ("executable", s["executable"]), ("platform", s["platform"]),
        ("cpu", cpu),
        ("cpu count", f"{s['cpu_count']} logical, {s['affinity_count']} usable by this process "
                      "(sched_getaffinity)"),
        ("load average", "unknown" if not la else " ".join(f"{v:.2f}" for v in la)
         + " (1, 5, 15 min)")])
    lines += block("Python dependencies",
                   [(name, v or "not installed") for name, v in d["dependencies"].items()])
    pairs = [("numba", f"NUMBA_NUM_THREADS {t.get('numba_config_num_threads')}, "
                       f"get_num_threads() {t.get('numba_num_threads')}, threading layer "
                       f"{t.get('numba_threading_layer')}"),
             ("fastnn", f"get_num_threads() {t.get('fastnn_num_threads')} (BLAS runs on one "
                        "thread inside fastnn's work)")]
    for p in t["pools"]:
        if "error" in p:
            pairs.append(("threadpoolctl", p["error"]))
            continue
        extra = ", ".join(f"{key} {p[key]}" for key in ("threading_layer", "architecture")
                          if p.get(key))
        pairs.append((p["user_api"] or "?",
                      f"{p['internal_api']} {p['version'] or '(version unknown)'}, {p['num_threads']} threads"
                      + (f", {extra}" if extra else "") + f" ({p['filepath']})"))
    if not t["pools"]:
        pairs.append(("BLAS/OpenMP", "none loaded (threadpoolctl found no pool)"))
    if t["env"]:
        pairs.append(("environment", " ".join(f"{key}={v}" for key, v in t["env"].items())))
    lines += block("Threads", pairs)
    lines += block("Kernel cache", format_kernel_cache(k))
    kt = d.get("kernels", {})
    if "error" in kt:
        lines += block("CPU kernels", [("error", kt["error"])])
    elif kt:
        quota = kt.get("cpu_quota")
        lines += block("CPU kernels", [
            ("instruction set", f"{kt['instruction_set']} ({kt['vector_registers']} vector "
                                f"registers of {kt['vector_bits']} bits), compiled for "
                                f"{kt['cpu']} ({kt['source']})"),
            ("conv register tile", f"{kt['conv_tile']} (rows x columns of the product's "
                                   "accumulators)"),
            ("cpu quota", "none (no cgroup CPU limit)" if quota is None
             else f"{quota} CPUs (cgroup), fastnn's threads are capped there")])
    if "error" in c:
        cuda = [("error", c["error"])]
    else:
        status = ("no (the numba.cuda simulator is on: NUMBA_ENABLE_CUDASIM=1)" if c.get("simulator")
                  else "yes" if c["available"] else
                  "no (numba-cuda is not installed)" if not c["numba_cuda"] else
                  "no (no CUDA driver found)" if not c.get("driver") else
                  "no (numba.cuda.is_available() is False)")
        cuda = [("available", status)]
        if c["device"]:
            cuda.append(("device", c["device"]))
        cuda.append(("device='auto'", f"runs on {c.get('auto_device')}"))
    lines += block("CUDA", cuda)
    return "\n".join(lines)


def show_versions():
    """Print fastnn's version and its environment: Python and the libraries, the CPU and every
    thread pool, the kernel cache and CUDA (what a bug report needs)."""
    print(format_info(info()))
