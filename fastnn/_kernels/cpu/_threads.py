"""Who owns the CPU cores while fastnn works: Numba's thread pool, with BLAS held to one thread.

Two thread pools on one machine fight: after a BLAS call OpenBLAS's pthreads keep spinning while
Numba's OpenMP workers wake up, and the other way round (a LeNet-5 epoch on two cores took 3.15 s
with both pools, 0.90 s with BLAS on one thread). So inside fastnn's CPU work (``cpu_work()``)
every BLAS library runs single-threaded and parallel work goes through ``numba.prange`` only;
where a matrix product is large enough, the kernels split it into row blocks inside ``prange``.
The previous BLAS settings come back when the outermost ``cpu_work()`` exits.

The thread count of that pool is the smallest of:

- ``set_num_threads(n)`` if called, else ``max_threads()``: ``NUMBA_NUM_THREADS`` when the user
  set it (honoured even above the core count: Numba sizes its pool from it), else the cores this
  process may run on (affinity, cgroup CPU quota), and ``OMP_NUM_THREADS`` when set (joblib's
  process workers set both to ``cores // n_jobs``),
- the BLAS thread count found on entry, when the user lowered it below the cores
  (``threadpoolctl.threadpool_limits``; BLAS's own default is one thread per core),
- the cores divided by the number of Python threads inside ``cpu_work()`` at once (a threaded
  ``GridSearchCV`` does not oversubscribe),
- unless ``set_num_threads`` was called: the cores that other processes leave free, looked at on
  entry and every ``LOAD_CHECK_S`` while the work runs (see ``_threads_now``).

Nesting costs one attribute lookup; the outermost entry costs a few microseconds. Importing this
module imports nothing heavy (Numba loads at the first ``cpu_work()``), so layers and estimators
can decorate their entry points with ``cpu_bound`` at import time.
"""
import functools
import os
import threading
from time import monotonic as _monotonic
from .._validate import is_int

_lock = threading.Lock()
_local = threading.local()
_active = 0           # Python threads inside cpu_work()
_requested = None     # set_num_threads(n)


def _env_int(name):
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value >= 1 else None


def _read_ints(path, count):
    try:
        with open(path) as f:
            words = f.read().split()
    except OSError:
        return None
    try:
        return [-1 if w == "max" else int(w) for w in words[:count]]
    except ValueError:
        return None


def _quota_cpus(quota_us, period_us):
    """CPUs a quota of ``quota_us`` per ``period_us`` allows, rounded up; None for no quota."""
    if quota_us <= 0 or period_us <= 0:  # 'max' (v2) or -1 (v1): no quota
        return None
    return max(1, -(-quota_us // period_us))


def _cgroup_cpu_limit(root="/sys/fs/cgroup", self_cgroup="/proc/self/cgroup"):
    """The CPUs that cgroup quotas allow this process, rounded up; None without a quota.

    Docker ``--cpus=2`` and Kubernetes CPU limits set such a quota, and a process that starts
    one thread per host core under it is throttled. cgroup v2: ``cpu.max`` of the process's
    cgroup and of each cgroup above it (the smallest quota wins); v1: ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us`` of its ``cpu`` cgroup. Inside a container the process's cgroup is
    often the mount's root, which is looked at too (as joblib's ``cpu_count`` does).
    """
    v2_dirs, v1_dirs = [], []
    try:
        with open(self_cgroup) as f:
            for line in f:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) != 3:
                    continue
                rel = parts[2].strip("/")
                if parts[0] == "0" and parts[1] == "":
                    path = rel
                    while True:
                        v2_dirs.append(os.path.join(root, path) if path else root)
                        if not path:
                            break
                        path = os.path.dirname(path)
                elif "cpu" in parts[1].split(","):
                    for mount in (parts[1], "cpu", "cpu,cpuacct"):
                        v1_dirs.append(os.path.join(root, mount, rel) if rel
                                       else os.path.join(root, mount))
    except OSError:
        pass
    v2_dirs.append(root)
    v1_dirs.append(os.path.join(root, "cpu"))
    limits = []
    for d in dict.fromkeys(v2_dirs):
        q = _read_ints(os.path.join(d, "cpu.max"), 2)
        if q and len(q) == 2:
            limits.append(_quota_cpus(*q))
    if not limits:
        for d in dict.fromkeys(v1_dirs):
            quota = _read_ints(os.path.join(d, "cpu.cfs_quota_us"), 1)
            period = _read_ints(os.path.join(d, "cpu.cfs_period_us"), 1)
            if quota and period:
                limits.append(_quota_cpus(quota[0], period[0]))
                break
    limits = [n for n in limits if n is not None]
    return min(limits) if limits else None


@functools.lru_cache(maxsize=1)
def _quota_cores():
    """``_cgroup_cpu_limit()`` read once per process (a quota is set when a container starts)."""
    return _cgroup_cpu_limit()


def usable_cores():
    """The cores this process may use: its affinity (else the logical count), and no more than
    a cgroup CPU quota allows (containers), as joblib's ``cpu_count`` counts them."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _quota_cores()
    return max(1, min(cores, quota) if quota else cores)


@functools.lru_cache(maxsize=1)
def max_threads():
    """Threads fastnn may use at most; read once per process (Numba fixes its pool size at
    import too).

    - ``NUMBA_NUM_THREADS`` set in the environment: that many (the size of Numba's pool), even
      above the cores this process may run on; the user asked for it (a test of thread counts
      on a small machine, an oversubscription on purpose).
    - Not set: Numba's default pool, and no more than ``usable_cores()`` (CPU affinity, a cgroup
      CPU quota: Numba's default counts the affinity only).
    - ``OMP_NUM_THREADS``, when set, caps either.
    """
    import numba
    limits = [numba.config.NUMBA_NUM_THREADS]
    if _env_int("NUMBA_NUM_THREADS") is None:  # Numba's default: cap it at the usable cores
        limits.append(usable_cores())
    omp = _env_int("OMP_NUM_THREADS")
    if omp is not None:
        limits.append(omp)
    return max(1, min(limits))


def set_num_threads(n):
    """Use ``n`` threads for fastnn's CPU work (``None``: back to the default, every core allowed).

    ``n`` above ``max_threads()`` is capped there: ``NUMBA_NUM_THREADS`` when set in the
    environment (else the usable cores), and ``OMP_NUM_THREADS``. A count set here is used as
    it is: the load of other processes does not lower it (``_threads_now``); only a caller's
    threadpoolctl limit and other Python threads working at once do. BLAS always runs on one
    thread inside fastnn's work.
    """
    global _requested
    import numba
    if n is not None:
        if not is_int(n) or n < 1:
            raise ValueError(f"the number of threads must be an int >= 1 or None, got {n!r}")
        n = min(int(n), max_threads())
    _requested = n
    numba.set_num_threads(get_num_threads())  # direct kernel calls from this thread too


def get_num_threads():
    """The number of threads fastnn's CPU work uses now (outside any limit of the caller)."""
    return _requested if _requested is not None else max_threads()


@functools.lru_cache(maxsize=1)
def _blas_libraries():
    import numpy  # noqa: F401  (NumPy's BLAS: np.matmul from Python)
    import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS: np.dot inside @njit)
    from threadpoolctl import ThreadpoolController
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


def _share(base, active):
    """Threads for one of ``active`` Python threads working at once, at most ``base``."""
    return max(1, min(base, max_threads() // max(active, 1)))


LOAD_CHECK_S = 0.25  # how often a running cpu_work() looks at the other processes' load


def _others_running():
    """Runnable threads of other processes right now (Linux: /proc), or 0 when unknown.

    The kernel's count of runnable threads (/proc/loadavg) minus this process's own.
    """
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    own += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except OSError:  # the thread ended meanwhile
                pass
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - own)


_load = [float("-inf"), 0]  # [when, others running]: one reading serves every thread


def _others_now():
    """``_others_running()``, read at most once every ``LOAD_CHECK_S`` in the whole process: a
    reading costs about 0.1 ms (/proc), which direct kernel calls must not pay every time."""
    now = _monotonic()
    if now - _load[0] >= LOAD_CHECK_S:
        _load[1] = _others_running()
        _load[0] = now
    return _load[1]


def _threads_now():
    """Threads for this Python thread's work now: its share of the cores, and by default (no
    ``set_num_threads``) fewer where other processes keep cores busy. A parallel region waits
    for its slowest thread, so one thread that shares its core with a busy process stalls the
    rest: beside one busy process on 2 cores, LeNet-5 trained at 7,300 images/s on 1 thread and
    2,960 on 2 (quiet: 7,200 and 7,800)."""
    n = _share(_local.base, _active)
    _local.active = _active
    if _requested is None and n > 1:
        # the cores other processes leave free, also under a NUMBA_NUM_THREADS above the cores
        others = _others_now()
        if others:
            n = max(1, min(n, min(max_threads(), usable_cores()) - others))
    _local.next_check = _monotonic() + LOAD_CHECK_S
    return n


def _enter():
    global _active
    import numba
    libs = _blas_libraries()
    saved_blas = [(lib, lib.num_threads) for lib in libs]
    with _lock:
        _active += 1
        active = _active
    base = get_num_threads()
    user_blas = [t for _, t in saved_blas if t is not None]
    # the caller limited BLAS below the cores: take it as a limit on us. A BLAS count of the
    # cores or more is BLAS's own default (OpenBLAS starts one thread per core), no limit on an
    # explicit NUMBA_NUM_THREADS above the cores.
    if user_blas and max(user_blas) < min(base, usable_cores()):
        base = max(user_blas)
    saved_numba = numba.get_num_threads()
    _local.base, _local.active = base, active
    numba.set_num_threads(_threads_now())  # at most max_threads() <= NUMBA_NUM_THREADS
    for lib, t in saved_blas:
        if t != 1:
            lib.set_num_threads(1)
    return saved_blas, saved_numba


def rebalance():
    """Inside ``cpu_work()``: follow a change in the number of Python threads working at once,
    and (every ``LOAD_CHECK_S``) in the load of other processes."""
    if getattr(_local, "depth", 0) and (_local.active != _active
                                         or _monotonic() >= _local.next_check):
        import numba
        n = _threads_now()
        if n != numba.get_num_threads():
            numba.set_num_threads(n)


def _exit(saved):
    global _active
    import numba
    saved_blas, saved_numba = saved
    for lib, t in saved_blas:
        if t != 1 and t is not None:
            lib.set_num_threads(t)
    numba.set_num_threads(saved_numba)
    with _lock:
        _active -= 1


class _CPUWork:
    """The context manager behind ``cpu_work()`` (a class: nesting must cost next to nothing)."""

    __slots__ = ()

    def __enter__(self):
        depth = getattr(_local, "depth", 0)
        if depth:
            _local.depth = depth + 1
            rebalance()
        else:
            _local.saved = _enter()
            _local.depth = 1
        return self

    def __exit__(self, *exc):
        _local.depth -= 1
        if _local.depth == 0:
            saved, _local.saved = _local.saved, None
            _exit(saved)
        return False


_CPU_WORK = _CPUWork()


def working():
    """Whether this thread is inside ``cpu_work()`` (fastnn's work, BLAS held to one thread)."""
    return getattr(_local, "depth", 0) > 0


def cpu_work():
    """Run fastnn's CPU work inside (``with cpu_work():``): BLAS on one thread, Numba on
    fastnn's thread count; reentrant."""
    return _CPU_WORK


def cpu_bound(fn):
    """Decorator: run ``fn`` inside ``cpu_work()``."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with _CPU_WORK:
            return fn(*args, **kwargs)
    return run
