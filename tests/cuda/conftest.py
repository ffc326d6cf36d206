"""GPU kernel tests: under the numba.cuda simulator unless FASTNN_REAL_GPU=1 (see tests/conftest.py).

Each test runs a CUDA kernel on tiny shapes and compares it with the CPU kernel
(``fastnn.kernels.cpu``) or a naive reference, to float32 rounding. Without numba-cuda the
directory is not collected; with FASTNN_REAL_GPU=1 and no usable GPU every test is skipped.
"""
import os
import sys
import threading

import numpy as np
import pytest

# Every block of fastnn's CUDA allocator is handed out filled with 0xFF bytes (NaN floats): a
# kernel reading an output element it has not written fails its test (fastnn/_kernels/cuda/_alloc)
os.environ.setdefault("FASTNN_CUDA_ALLOC_POISON", "1")

try:
    from numba import cuda
except ImportError:  # numba-cuda missing
    cuda = None
    collect_ignore_glob = ["test_*.py"]


def _atomic_simulator_shared_arrays():
    """Make the simulator's ``cuda.shared.array`` safe for the threads of one block.

    numba-cuda 0.30.4's ``FakeCUDAShared.array`` looks the array up by the calling line and
    creates it when missing, without a lock: two threads switched between the lookup and the store
    get two different "shared" arrays, and the block's barriers then guard nothing. That was
    issue 14's drift (a GPU fit off the CPU fit now and then, in a different test each time):
    in 60 repeated simulator fits, each of the 6 that drifted had such a double allocation in a
    GEMM's shared buffers. Same lookup key as the original (file and line of the caller); the
    dynamic (size 0) and aligned requests go to the original.
    """
    from numba.cuda.simulator import kernelapi
    cls = kernelapi.FakeCUDAShared
    if getattr(cls.array, "atomic", False):
        return
    original = cls.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            res = self._allocations.get(key)
            if res is None:
                res = self._allocations[key] = np.empty(shape, dtype)
        return res

    array.atomic = True
    cls.array = array


if cuda is not None and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    _atomic_simulator_shared_arrays()


def _gpu_missing():
    from cuda_helpers import SIMULATOR
    if cuda is None or SIMULATOR:
        return False
    try:
        return not cuda.is_available()
    except Exception:
        return True


def pytest_configure(config):
    # tiny test shapes launch tiny grids on purpose
    config.addinivalue_line("filterwarnings",
                            "ignore:Grid size:numba.core.errors.NumbaPerformanceWarning")


def pytest_collection_modifyitems(config, items):
    if _gpu_missing():
        skip = pytest.mark.skip(reason="FASTNN_REAL_GPU=1 but no CUDA device is available")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True, scope="module")
def _fast_simulator_barriers():
    """The simulator's block manager busy-polls its threads for ``syncthreads`` and waits a whole
    GIL switch interval (5 ms) per turn; at 0.2 ms the CUDA tests run about 5x faster. The more
    frequent switches also vary the thread interleavings, as a missing barrier would need to
    show (they also exposed the simulator's racy shared arrays: see above)."""
    from cuda_helpers import SIMULATOR
    if not SIMULATOR:
        yield
        return
    before = sys.getswitchinterval()
    sys.setswitchinterval(2e-4)
    yield
    sys.setswitchinterval(before)


@pytest.fixture
def dev():
    """Host -> device copy."""
    return cuda.to_device


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)
