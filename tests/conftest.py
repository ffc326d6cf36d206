"""Settings and fixtures for every test: the CUDA simulator switch, Hypothesis profiles, ``rng``,
an opt-in address-space limit and the compile-time summary (tests/cuda adds its own)."""
import os

# GPU tests run everywhere: under the numba.cuda simulator unless FASTNN_REAL_GPU=1.
# This must happen before anything imports numba.cuda.
if os.environ.get("FASTNN_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# -- opt-in address-space limit (``ulimit -v``): FASTNN_TEST_ADDRESS_LIMIT_MB=400 -------------
# Set once, at the start of the first test (after the imports, so it starts from the imported
# process's size): RLIMIT_AS = VmSize + that many MB. Linux only.

_ADDRESS_LIMIT = {}


@pytest.fixture(autouse=True)
def _address_space_limit():
    extra = os.environ.get("FASTNN_TEST_ADDRESS_LIMIT_MB")
    if extra and not _ADDRESS_LIMIT:
        import resource
        with open("/proc/self/status") as f:
            vmsize = next(int(line.split()[1]) << 10 for line in f if line.startswith("VmSize:"))
        limit = vmsize + (int(extra) << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        _ADDRESS_LIMIT.update(vmsize=vmsize, limit=limit)
    yield


# -- how long the suite spends compiling kernels (printed at the end: a first run compiles) ------

_COMPILES = {}


def pytest_sessionstart(session):
    from fastnn._kernels.compile_log import compile_log
    _COMPILES["context"] = compile_log()
    _COMPILES["log"] = _COMPILES["context"].__enter__()


def pytest_sessionfinish(session):
    """Close the compile log; (kernels, functions, seconds) go to ``_COMPILES["own"]`` (and to
    the controller, in a pytest-xdist worker)."""
    log = _COMPILES.pop("log", None)
    if log is None:
        return
    _COMPILES.pop("context").__exit__(None, None, None)
    _COMPILES["own"] = (sum(c.depth == 0 for c in log), len(log), log.total())
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fastnn_compiled"] = _COMPILES["own"]


def pytest_testnodedown(node, error):  # pytest-xdist's controller, as each worker ends
    counts = getattr(node, "workeroutput", {}).get("fastnn_compiled")
    if counts:
        _COMPILES.setdefault("workers", []).append(counts)


def pytest_terminal_summary(terminalreporter):
    if _ADDRESS_LIMIT:
        terminalreporter.write_line(
            f"fastnn: address space limited to {_ADDRESS_LIMIT['limit'] >> 20} MB (the process "
            f"took {_ADDRESS_LIMIT['vmsize'] >> 20} MB at its first test)")
    workers = _COMPILES.get("workers")
    kernels, functions, seconds = ([sum(c) for c in zip(*workers)] if workers
                                   else _COMPILES.get("own", (0, 0, 0.0)))
    who = f"the {len(workers)} test workers" if workers else "this test process"
    terminalreporter.write_line(
        f"fastnn: {who} compiled {kernels} kernels ({functions} functions) in {seconds:.0f} s "
        "(kernels found in the cache are not counted; subprocesses neither)")
