"""The estimators read X in place: a memory-mapped (read-only) X trains and predicts with memory
that follows a batch, not X (peak RSS measured in a process of its own)."""
import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from fastnn.sklearn import MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor

ROWS, FEATURES = 150_000, 128   # a 77 MB float32 file
ALLOWANCE_MB = 24               # a few 4096-row batches, the targets and the outputs


def _clear_refs_works():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _clear_refs_works(),
                    reason="peak RSS reset needs Linux's /proc/self/clear_refs")
@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPClassifier-lbfgs", "MLPRegressor",
                                  "NeuralNetClassifier"])
def test_fit_and_predict_on_a_memory_map_do_not_copy_x(tmp_path, kind):
    path = tmp_path / "x.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(ROWS, FEATURES))
    rng = np.random.default_rng(0)
    for lo in range(0, ROWS, 10_000):
        mm[lo:lo + 10_000] = rng.standard_normal((min(10_000, ROWS - lo), FEATURES))
    mm.flush()
    del mm
    script = textwrap.dedent(f"""
        import json, sys, warnings
        import numpy as np
        from fastnn.sklearn import MLPClassifier, MLPRegressor, NeuralNetClassifier
        import fastnn.nn as nn

        def status(key):
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith(key + ":")) / 1024

        X = np.load({str(path)!r}, mmap_mode="r")
        assert not X.flags.writeable
        y = (np.asarray(X[:, 0]) > 0).astype(np.int64)   # reads every page of the map
        kind = {kind!r}
        def make():
            if kind == "MLPClassifier":
                return MLPClassifier((16,), max_iter=1, batch_size=4096, random_state=0)
            if kind == "MLPClassifier-lbfgs":
                return MLPClassifier((8,), solver="lbfgs", max_iter=2, random_state=0)
            if kind == "MLPRegressor":
                return MLPRegressor(hidden_layer_sizes=(16,), max_iter=1, batch_size=4096,
                                    random_state=0)
            return NeuralNetClassifier([nn.Dense(16), nn.ReLU()], max_iter=1,
                                       batch_size=4096, random_state=0)
        target = y.astype(np.float32) if kind == "MLPRegressor" else y
        warnings.simplefilter("ignore")
        small = make().fit(X[:300], target[:300])   # compiles what the big fit runs
        small.predict(X[:300])
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                            # VmHWM := VmRSS
        est = make().fit(X, target)
        est.predict(X)
        est.score(X, target)
        peak = status("VmHWM")
        print(json.dumps(dict(growth_mb=peak - before, file_mb=X.nbytes / 2**20)))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # the mapped pages count once; a copy of X would count them twice
    print(r)
    assert r["growth_mb"] <= r["file_mb"] + ALLOWANCE_MB, r


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
