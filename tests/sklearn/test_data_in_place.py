"""The estimators read X in place: a memory-mapped (read-only) X trains and predicts with memory
that follows a batch, not X (peak RSS measured in a process of its own).

Each case runs in a fresh process that first reads every page of the map and compiles what the
case runs (on its first ``WARM_ROWS`` rows, so that no compile is measured), then resets the
peak (``clear_refs``) and runs the case on the whole X. The mapped pages are resident before
the reset, so they are not growth: a copy of X adds ``FILE_MB`` to the growth, more than any
case's allowance (checked, and shown by a control that copies X on purpose).
"""
import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from fastnn.sklearn import MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor

ROWS, FEATURES = 150_000, 128   # a 73 MiB float32 file
BATCH = 4096                    # the minibatch solvers' batch_size
LBFGS_HIDDEN = 8                # hidden units of the lbfgs case (16 in the others)
ITEMSIZE = 4                    # float32
WARM_ROWS = 20_000              # the warm-up's rows: every kernel takes its big-data path
FILE_MB = ROWS * FEATURES * ITEMSIZE / 2**20

# What a case may add to peak RSS, in MiB:
FIXED_MB = 8                                    # allocator arenas, thread buffers, small arrays
BATCHES_MB = 4 * BATCH * FEATURES * ITEMSIZE / 2**20   # a few gathered or converted batches: 8
ROW_BYTES = 64                                  # the targets and outputs: 8 values of 8 bytes
                                                # per row (encoded y, order, labels, scores)


def _lbfgs_workspace_mb(hidden=LBFGS_HIDDEN, outputs=1):
    """lbfgs trains on all rows at once (scikit-learn's does too): its activations and deltas
    hold every row's hidden and output units, 2 x ROWS x (hidden + outputs) values: 10.3 MiB."""
    return 2 * ROWS * (hidden + outputs) * ITEMSIZE / 2**20


def allowance_mb(kind):
    """The peak-RSS growth a case is allowed: a few batches, the targets and the outputs (and
    for lbfgs its full-batch workspace); never a copy of X."""
    mb = FIXED_MB + BATCHES_MB + ROWS * ROW_BYTES / 2**20
    if kind.endswith("lbfgs"):
        mb += _lbfgs_workspace_mb()
    return mb


KINDS = ["MLPClassifier", "MLPClassifier-lbfgs", "MLPRegressor", "MLPClassifier-partial_fit",
         "NeuralNetClassifier", "NeuralNetClassifier-partial_fit", "NeuralNetRegressor"]

_CASE = f"WARM_ROWS, BATCH, LBFGS_HIDDEN = {WARM_ROWS}, {BATCH}, {LBFGS_HIDDEN}\n" + \
    textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    from fastnn.sklearn import (MLPClassifier, MLPRegressor, NeuralNetClassifier,
                                NeuralNetRegressor)
    import fastnn.nn as nn

    path, kind, copy = sys.argv[1], sys.argv[2], sys.argv[3] == "copy"

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(key + ":")) / 1024

    X = np.load(path, mmap_mode="r")
    assert not X.flags.writeable
    y = (np.asarray(X[:, 0]) > 0).astype(np.int64)   # reads every page of the map
    target = y.astype(np.float32) if kind.endswith("Regressor") else y
    batch = dict(batch_size=BATCH, random_state=0)
    if kind == "MLPClassifier-lbfgs":
        make = lambda: MLPClassifier((LBFGS_HIDDEN,), solver="lbfgs", max_iter=2,
                                     random_state=0)
    elif kind.startswith("MLPClassifier"):
        make = lambda: MLPClassifier((16,), max_iter=1, **batch)
    elif kind == "MLPRegressor":
        make = lambda: MLPRegressor(hidden_layer_sizes=(16,), max_iter=1, **batch)
    elif kind.startswith("NeuralNetClassifier"):
        make = lambda: NeuralNetClassifier([nn.Dense(16), nn.ReLU()], max_iter=1, **batch)
    else:
        make = lambda: NeuralNetRegressor([nn.Dense(16), nn.ReLU()], max_iter=1, **batch)

    def run(X, target):
        est = make()
        if kind.endswith("partial_fit"):
            est.partial_fit(X, target, classes=np.array([0, 1]))
            est.partial_fit(X, target)
        else:
            est.fit(X, target)
        est.predict(X)
        est.score(X, target)

    warnings.simplefilter("ignore")
    # compiles what the big run runs: enough rows that the kernels take their parallel paths
    run(np.array(X[:WARM_ROWS]) if copy else X[:WARM_ROWS], target[:WARM_ROWS])
    from fastnn._kernels.compile_log import compile_log
    with compile_log() as log:
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                          # VmHWM := VmRSS
        mapped = X                                # the map stays mapped (and resident)
        if copy:                                  # the control: what a copy of X would add
            X = np.array(mapped)
        run(X, target)
        peak = status("VmHWM")
    print(json.dumps(dict(growth_mb=peak - before, file_mb=X.nbytes / 2**20,
                          compiled=[c.name for c in log])))
""")


def _clear_refs_works():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_needs_clear_refs = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _clear_refs_works(),
    reason="peak RSS reset needs Linux's /proc/self/clear_refs")


@pytest.fixture(scope="module")
def memmap_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "x.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(ROWS, FEATURES))
    rng = np.random.default_rng(0)
    for lo in range(0, ROWS, 10_000):
        mm[lo:lo + 10_000] = rng.standard_normal((min(10_000, ROWS - lo), FEATURES))
    mm.flush()
    del mm
    return path


def _growth(path, kind, copy=False):
    out = subprocess.run([sys.executable, "-c", _CASE, str(path), kind,
                          "copy" if copy else "in-place"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert abs(r["file_mb"] - FILE_MB) < 1e-6, r
    # a compile inside the measured run would count the compiler's memory as growth
    assert not r["compiled"], f"the warm-up did not compile what {kind} runs: {r}"
    return r["growth_mb"]


@_needs_clear_refs
@pytest.mark.parametrize("kind", KINDS)
def test_fit_and_predict_on_a_memory_map_do_not_copy_x(memmap_file, kind):
    """fit (or two partial_fit calls), predict and score on a read-only memory map raise peak RSS
    by at most the case's allowance beyond the mapped pages: a copy of X would not fit in it."""
    allowance = allowance_mb(kind)
    assert allowance < 0.6 * FILE_MB, (kind, allowance)  # a copy of X alone would fail
    growth = _growth(memmap_file, kind)
    print(kind, f"growth {growth:.1f} MiB, allowance {allowance:.1f} MiB")
    assert growth <= allowance, (kind, growth, allowance)


@_needs_clear_refs
def test_a_copy_of_x_is_caught_by_the_measurement(memmap_file):
    """The control: the same case with a deliberate copy of X grows by the file's size more, and
    fails the allowance the in-place case passes."""
    kind = "MLPClassifier-lbfgs"  # the largest allowance
    growth = _growth(memmap_file, kind, copy=True)
    assert growth >= FILE_MB, growth
    assert growth > allowance_mb(kind), growth


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor, NeuralNetClassifier,
                                 NeuralNetRegressor])
def test_read_only_and_converted_inputs_give_the_same_model(cls):
    """A read-only X, an F-ordered X and a float64 X (NeuralNet: converted) train the model a
    writable C-ordered X trains."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    if cls in (MLPRegressor, NeuralNetRegressor):
        y = X[:, 1] * 2
    frozen = X.copy()
    frozen.flags.writeable = False
    results = []
    for data in (X, frozen, np.asfortranarray(X)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls(max_iter=3, random_state=0).fit(data, y)
        results.append(est.predict(data))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    if cls in (NeuralNetClassifier, NeuralNetRegressor):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls(max_iter=3, random_state=0).fit(X.astype(np.float64), y)
        assert est.model_.dtype == np.float32
        np.testing.assert_array_equal(est.predict(X.astype(np.float64)), results[0])
