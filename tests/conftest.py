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


# -- how long the suite spends compiling kernels (printed at the end: a first run compiles) ------

_COMPILES = {}


def pytest_sessionstart(session):
    from fastnn._kernels.compile_log import compile_log
    _COMPILES["context"] = compile_log()
    _COMPILES["log"] = _COMPILES["context"].__enter__()


def pytest_terminal_summary(terminalreporter):
    log = _COMPILES.get("log")
    if log is None:
        return
    _COMPILES["context"].__exit__(None, None, None)
    top = [c for c in log if c.depth == 0]
    terminalreporter.write_line(
        f"fastnn: this test process compiled {len(top)} kernels ({len(log)} functions) in "
        f"{log.total():.0f} s (kernels found in the cache are not counted; subprocesses neither)")
