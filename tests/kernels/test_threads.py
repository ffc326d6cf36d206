"""Who owns the cores: BLAS on one thread inside fastnn's work, Numba on fastnn's thread count."""
import contextlib
import json
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
    monkeypatch.setattr(_threads, "_load", [float("-inf"), 0])  # no reading kept from before
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


_CAP_SCRIPT = """
import json, fastnn, numba
from fastnn import kernels as K
from fastnn._kernels.cpu import _threads
_threads._quota_cores = lambda: 1        # a machine (a container) that allows one core
_threads._others_running = lambda: 0     # a quiet machine
with K.cpu_work():
    by_default = numba.get_num_threads()
fastnn.set_num_threads(10 ** 6)
with K.cpu_work():
    asked = numba.get_num_threads()
fastnn.set_num_threads(None)
_threads._others_running = lambda: 1     # now one busy process: it takes the only core
_threads._load = [float("-inf"), 0]
with K.cpu_work():
    busy = numba.get_num_threads()
print(json.dumps([_threads.usable_cores(), _threads.max_threads(), by_default, asked, busy]))
"""


@pytest.mark.parametrize("env,want", [
    # the user asked for 3: honoured above the cores; beside a busy process, the free cores
    ({"NUMBA_NUM_THREADS": "3"}, [1, 3, 3, 3, 1]),
    ({}, [1, 1, 1, 1, 1]),                         # Numba's default: capped at the usable cores
    ({"NUMBA_NUM_THREADS": "3", "OMP_NUM_THREADS": "2"}, [1, 2, 2, 2, 1]),  # OMP still caps
], ids=["explicit", "unset", "explicit-omp"])
def test_an_explicit_numba_num_threads_is_honoured_above_the_cores(env, want):
    """``NUMBA_NUM_THREADS`` set by the user caps fastnn's threads, even above the usable cores
    (Numba sizes its pool from it); unset, Numba's default is capped at the usable cores. Beside
    busy processes either way the default count drops to the cores they leave free."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", _CAP_SCRIPT], env={**base, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == want


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


@pytest.mark.parametrize("inside", [True, False], ids=["in-cpu_work", "direct"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(256, 300, 200), (1000, 64, 100), (70, 1024, 512)])
def test_blocked_matrix_products_match_the_reference(m, k, n, dtype, inside):
    # inside fastnn's work these shapes take the parallel blocked path; called directly, one
    # BLAS call with BLAS's own threads
    assert cpu_linear._block_rows(m, n, k) > 0
    with K.cpu_work() if inside else contextlib.nullcontext():
        _check_linear_against_reference(m, k, n, dtype)


def _check_linear_against_reference(m, k, n, dtype):
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
    monkeypatch.setattr(_threads, "_load", [float("-inf"), 0])  # no reading kept from before
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


# -- per-call costs: paid once per process or per interval, not per call -------------------------

def test_the_load_is_read_once_per_interval_for_all_calls(monkeypatch, restore_threads):
    from fastnn._kernels.cpu import _threads
    reads = []
    monkeypatch.setattr(_threads, "_others_running", lambda: reads.append(1) or 0)
    monkeypatch.setattr(_threads, "_load", [float("-inf"), 0])
    monkeypatch.setattr(_threads, "LOAD_CHECK_S", 60.0)
    for _ in range(50):
        with K.cpu_work():
            pass
    assert len(reads) == 1


def test_direct_kernel_calls_leave_the_thread_pools_alone(monkeypatch):
    from fastnn._kernels.cpu import _threads

    def no_switch():
        raise AssertionError("a direct call changed hands of the thread pools")

    monkeypatch.setattr(_threads, "_enter", no_switch)
    before = blas_threads()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 84)).astype(np.float32)
    w = rng.standard_normal((10, 84)).astype(np.float32)
    y = K.linear(x, w, np.zeros(10, np.float32), activation="relu")
    K.linear_backward(y, x, w)
    big = rng.standard_normal((1024, 512)).astype(np.float32)
    K.linear(big, rng.standard_normal((512, 512)).astype(np.float32))
    assert blas_threads() == before
    np.testing.assert_allclose(y, np.maximum(x @ w.T, 0), rtol=1e-5, atol=1e-5)


def test_device_detection_is_done_once_per_process():
    from fastnn._kernels import _dispatch
    _dispatch.resolve_device("auto")
    hits = _dispatch._cuda_driver_loadable.cache_info().hits
    for _ in range(5):
        _dispatch.resolve_device("auto")
    info = _dispatch._cuda_driver_loadable.cache_info()
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
        assert info.hits == hits + 5 and info.misses == 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_small_predict_does_not_switch_thread_pools(monkeypatch):
    from fastnn._kernels.cpu import _threads
    from fastnn.sklearn import MLPClassifier
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), rng.integers(0, 3, 60)  # 60 rows x 64 MACs: small
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    want = clf.predict_proba(X)

    def no_switch():
        raise AssertionError("predict on a few rows changed hands of the thread pools")

    monkeypatch.setattr(_threads, "_enter", no_switch)
    np.testing.assert_array_equal(clf.predict_proba(X), want)
    np.testing.assert_array_equal(clf.predict_proba(X[:1]), clf.predict_proba(X[:1]))


def test_forward_buffers_are_kept_per_thread_and_size():
    from fastnn._kernels import mlp as kmlp
    m = kmlp.model([5, 8, 3], 3, 4, 1)
    assert kmlp.model([5, 8, 3], 3, 4, 1) is m
    ws = kmlp.forward_rows(m, 16, np.dtype(np.float64))
    assert kmlp.forward_rows(m, 16, np.dtype(np.float64)) is ws
    assert kmlp.forward_rows(m, 17, np.dtype(np.float64)) is not ws
    other = []
    t = threading.Thread(target=lambda: other.append(kmlp.forward_rows(m, 16,
                                                                       np.dtype(np.float64))))
    t.start()
    t.join()
    assert other[0][0] is not ws[0]


# -- CPU quotas (containers) --------------------------------------------------------------------

def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_of_the_process_and_its_parents(tmp_path):
    from fastnn._kernels.cpu._threads import _cgroup_cpu_limit
    root, me = tmp_path / "cg", tmp_path / "self_cgroup"
    _write(me, "0::/kubepods/pod1/ctr\n")
    _write(root / "kubepods" / "pod1" / "ctr" / "cpu.max", "max 100000\n")
    _write(root / "kubepods" / "pod1" / "cpu.max", "250000 100000\n")   # 2.5 CPUs -> 3
    _write(root / "kubepods" / "cpu.max", "max 100000\n")
    assert _cgroup_cpu_limit(str(root), str(me)) == 3
    _write(root / "kubepods" / "cpu.max", "150000 100000\n")            # a parent's is smaller
    assert _cgroup_cpu_limit(str(root), str(me)) == 2


def test_cgroup_v2_quota_at_the_mount_root_as_in_a_container(tmp_path):
    from fastnn._kernels.cpu._threads import _cgroup_cpu_limit
    root, me = tmp_path / "cg", tmp_path / "self_cgroup"
    _write(me, "0::/\n")
    _write(root / "cpu.max", "200000 100000\n")  # docker --cpus=2
    assert _cgroup_cpu_limit(str(root), str(me)) == 2
    _write(root / "cpu.max", "max 100000\n")
    assert _cgroup_cpu_limit(str(root), str(me)) is None
    _write(root / "cpu.max", "50000 100000\n")    # half a CPU still gets one thread
    assert _cgroup_cpu_limit(str(root), str(me)) == 1
    assert _cgroup_cpu_limit(str(root), str(tmp_path / "missing")) == 1


def test_cgroup_v1_quota(tmp_path):
    from fastnn._kernels.cpu._threads import _cgroup_cpu_limit
    root, me = tmp_path / "cg", tmp_path / "self_cgroup"
    _write(me, "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n")
    d = root / "cpu,cpuacct" / "docker" / "abc"
    _write(d / "cpu.cfs_quota_us", "300000\n")
    _write(d / "cpu.cfs_period_us", "100000\n")
    assert _cgroup_cpu_limit(str(root), str(me)) == 3
    _write(d / "cpu.cfs_quota_us", "-1\n")
    assert _cgroup_cpu_limit(str(root), str(me)) is None


def test_no_or_broken_cgroup_files_mean_no_quota(tmp_path):
    from fastnn._kernels.cpu._threads import _cgroup_cpu_limit
    assert _cgroup_cpu_limit(str(tmp_path / "none"), str(tmp_path / "none")) is None
    _write(tmp_path / "cpu.max", "garbage\n")
    assert _cgroup_cpu_limit(str(tmp_path), str(tmp_path / "none")) is None


def test_a_quota_caps_the_thread_count(monkeypatch):
    from fastnn._kernels.cpu import _threads
    monkeypatch.setattr(_threads, "_quota_cores", lambda: 1)
    assert _threads.usable_cores() == 1


def _make_cpu_cgroup(name):
    """A real cgroup with a quota of one CPU (v2, else v1), or None where this machine does not
    let us create one (not root, read-only cgroupfs, no cpu controller)."""
    v2 = "/sys/fs/cgroup/cgroup.controllers"
    try:
        if os.path.exists(v2):
            d = f"/sys/fs/cgroup/{name}"
            os.mkdir(d)
            with open(f"{d}/cpu.max", "w") as f:
                f.write("100000 100000")
            return d
        d = f"/sys/fs/cgroup/cpu/{name}"
        os.mkdir(d)
        with open(f"{d}/cpu.cfs_period_us", "w") as f:
            f.write("100000")
        with open(f"{d}/cpu.cfs_quota_us", "w") as f:
            f.write("100000")
        return d
    except OSError:
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cgroups are Linux's")
def test_a_real_cgroup_quota_is_honoured():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores to tell a quota of one CPU from the core count")
    d = _make_cpu_cgroup(f"fastnn-test-{os.getpid()}")
    if d is None:
        pytest.skip("this machine does not let the tests create a cgroup with a CPU quota")
    try:
        code = ("import os, sys; open(sys.argv[1] + '/cgroup.procs', 'w').write(str(os.getpid()));"
                "from fastnn._kernels.cpu._threads import usable_cores; print(usable_cores())")
        out = subprocess.run([sys.executable, "-c", code, d], capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0 and "cgroup.procs" in out.stderr:
            pytest.skip("cannot move a process into the new cgroup here")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["1"]
    finally:
        os.rmdir(d)
