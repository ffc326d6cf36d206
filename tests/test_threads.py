"""Who owns the cores: BLAS on one thread inside fastnn's work, Numba on fastnn's thread count."""
import os
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastnn
from fastnn import kernels as K
from fastnn._kernels.cpu import linear as cpu_linear
from fastnn._kernels.cpu._threads import max_threads


def blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


with K.cpu_work():  # loads every BLAS library the kernels use, so the counts below are stable
    pass


@pytest.fixture
def restore_threads():
    yield
    fastnn.set_num_threads(None)


def test_inside_cpu_work_blas_has_one_thread_and_numba_the_rest(monkeypatch, restore_threads):
    from fastnn._kernels.cpu import _threads
    monkeypatch.setattr(_threads, "_others_running", lambda: 0)  # as on a quiet machine
    before = blas_threads()
    with K.cpu_work():
        assert all(n == 1 for n in blas_threads())
        assert numba.get_num_threads() == fastnn.get_num_threads()
        with K.cpu_work():  # nesting keeps the outer settings
            assert all(n == 1 for n in blas_threads())
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before


def test_set_num_threads_sets_the_pool_and_validates(restore_threads):
    fastnn.set_num_threads(1)
    assert fastnn.get_num_threads() == 1
    with K.cpu_work():
        assert numba.get_num_threads() == 1
    fastnn.set_num_threads(10 ** 6)  # capped at what the machine and the environment allow
    assert fastnn.get_num_threads() == max_threads()
    fastnn.set_num_threads(None)
    assert fastnn.get_num_threads() == max_threads()
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="number of threads"):
            fastnn.set_num_threads(bad)


def test_a_threadpoolctl_limit_of_the_caller_limits_fastnn(restore_threads):
    with threadpool_limits(limits=1):
        with K.cpu_work():
            assert numba.get_num_threads() == 1


def test_environment_limits_are_respected():
    code = ("import fastnn, numba; from fastnn import kernels as K\n"
            "with K.cpu_work(): print(fastnn.get_num_threads(), numba.get_num_threads())")
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env = dict(os.environ, **{var: "1"})
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True, timeout=120).stdout.split()
        assert out == ["1", "1"], var


def test_concurrent_python_threads_share_the_cores(restore_threads):
    if max_threads() < 2:
        pytest.skip("needs two cores")
    inside, release, seen = threading.Barrier(2), threading.Event(), []

    def work():
        with K.cpu_work():
            inside.wait(timeout=30)
            K.relu(np.ones(4, np.float32))  # a kernel call follows the number of workers
            seen.append(numba.get_num_threads())
            release.wait(timeout=30)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    while len(seen) < 2 and all(t.is_alive() for t in threads):
        threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join()
    assert sum(seen) <= max_threads()


def test_failed_work_restores_the_pools(restore_threads):
    before = blas_threads()
    with pytest.raises(RuntimeError):
        with K.cpu_work():
            raise RuntimeError("boom")
    assert blas_threads() == before
    with K.cpu_work():  # and the scope still works afterwards
        assert all(n == 1 for n in blas_threads())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(256, 300, 200), (1000, 64, 100), (70, 1024, 512)])
def test_blocked_matrix_products_match_the_reference(m, k, n, dtype):
    assert cpu_linear._block_rows(m, n, k) > 0  # these shapes take the parallel blocked path
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    dy = rng.standard_normal((m, n)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    # float64 einsum references (tests/naive's explicit sums are too slow at these sizes)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    y = K.linear(x, w, b)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, np.einsum("mk,nk->mn", x64, w64) + b, rtol=tol,
                               atol=tol * np.sqrt(k))
    want = (np.einsum("mn,nk->mk", dy64, w64), np.einsum("mn,mk->nk", dy64, x64), dy64.sum(0))
    for got, want in zip(K.linear_backward(dy, x, w), want):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(max(m, n)))


def test_dense_training_is_identical_with_one_and_two_threads(restore_threads):
    from fastnn.nn import Dense, ReLU, Sequential, fit
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 300)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    weights = []
    for n in (1, 2):
        fastnn.set_num_threads(n)
        model = Sequential(Dense(256), ReLU(), Dense(10), seed=0)
        fit(model, x, y, epochs=2, batch_size=256, seed=0)
        weights.append(model.flat.data.copy())
    np.testing.assert_array_equal(weights[0], weights[1])


def test_default_threads_leave_the_cores_other_processes_keep_busy(monkeypatch, restore_threads):
    from fastnn._kernels.cpu import _threads
    if max_threads() < 2:
        pytest.skip("needs two cores")
    monkeypatch.setattr(_threads, "_others_running", lambda: 1)
    with K.cpu_work():
        assert numba.get_num_threads() == max_threads() - 1
    fastnn.set_num_threads(max_threads())  # an explicit count is kept whatever the load
    with K.cpu_work():
        assert numba.get_num_threads() == max_threads()


def test_the_load_is_looked_at_again_while_work_runs(monkeypatch, restore_threads):
    from fastnn._kernels.cpu import _threads
    if max_threads() < 2:
        pytest.skip("needs two cores")
    busy = {"others": 0}
    monkeypatch.setattr(_threads, "_others_running", lambda: busy["others"])
    monkeypatch.setattr(_threads, "LOAD_CHECK_S", 0.0)
    with K.cpu_work():
        assert numba.get_num_threads() == max_threads()
        busy["others"] = 1
        with K.cpu_work():  # a kernel call inside long work
            assert numba.get_num_threads() == max_threads() - 1


def test_others_running_reads_a_count():
    from fastnn._kernels.cpu import _threads
    assert _threads._others_running() >= 0


def test_conv_weight_gradient_is_identical_with_one_and_two_threads(restore_threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    dy = rng.standard_normal((16, 16, 10, 10)).astype(np.float32)
    grads = []
    for n in (1, 2):
        fastnn.set_num_threads(n)
        with K.cpu_work():
            grads.append(K.conv2d_backward(dy, x, w))
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
