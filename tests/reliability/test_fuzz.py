"""Fuzzing in CI (bounded, seeded): the loader in a process under a memory limit, kernel
arguments valid and invalid, estimator inputs side by side with scikit-learn."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn.kernels as K

HERE = os.path.dirname(os.path.abspath(__file__))
LIMIT_BYTES = 6 << 30  # address space of the fuzzing process (a bomb fails it, not the machine)


@pytest.mark.skipif(sys.platform == "win32", reason="resource limits are POSIX")
def test_mutated_and_crafted_files_only_ever_raise_value_error_in_bounded_memory():
    code = ("import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_AS, ({LIMIT_BYTES}, {LIMIT_BYTES})); "
            "sys.argv = ['fuzz_loader.py', '150', '20261202']; "
            "runpy.run_path('fuzz_loader.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["tried"] >= 300 and summary["rejected"] >= summary["tried"] // 2, summary
    # peak RSS over all the files beyond loading the valid ones: under 64 MB (4.7 MB measured)
    assert summary["rss_peak_kib"] - summary["rss_before_kib"] < 64 << 10, summary


FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
ints = st.integers(-3, 6)


@FUZZ
@given(n=st.integers(0, 3), c=st.integers(0, 4), hw=st.integers(0, 7), co=st.integers(0, 4),
       k=st.integers(0, 4), stride=ints, padding=ints, dilation=ints, groups=ints,
       bias=st.booleans(), relu=st.booleans())
def test_conv2d_arguments_either_work_or_raise_a_clear_error(n, c, hw, co, k, stride, padding,
                                                             dilation, groups, bias, relu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = rng.standard_normal((co, max(c // max(groups, 1), 0), k, k)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32) if bias else None
    try:
        y = K.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     activation="relu" if relu else None)
    except (ValueError, TypeError) as err:
        assert str(err)
        return
    span = dilation * (k - 1) + 1
    assert y.shape == (n, co, (hw + 2 * padding - span) // stride + 1,
                       (hw + 2 * padding - span) // stride + 1)
    assert y.dtype == np.float32 and (not relu or not (y < 0).any())


@FUZZ
@given(kernel=ints, stride=ints | st.none(), padding=ints, hw=st.integers(0, 6))
def test_pool_arguments_either_work_or_raise_a_clear_error(kernel, stride, padding, hw):
    x = np.ones((2, 3, hw, hw), np.float32)
    try:
        y, idx = K.max_pool2d(x, kernel, stride, padding)
    except (ValueError, TypeError) as err:
        assert str(err)
        return
    assert y.dtype == np.float32 and idx.shape == y.shape
    dx = K.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    assert dx.shape == x.shape and np.isclose(dx.sum(), y.size)


X_VALUES = st.sampled_from([0.0, 1.0, -2.5, np.nan, np.inf, 1e30])


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(rows=st.integers(0, 6), cols=st.integers(0, 3), fill=X_VALUES,
       labels=st.lists(st.integers(0, 2), min_size=0, max_size=6),
       dtype=st.sampled_from([np.float64, np.float32, np.int64, object]))
def test_estimator_inputs_fail_as_scikit_learn_fails(rows, cols, fill, labels, dtype):
    from sklearn.neural_network import MLPClassifier as SkMLP

    from fastnn.sklearn import MLPClassifier
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, cols))
    if rows and cols:
        X[0, 0] = fill
    X = X.astype(dtype)
    y = np.array((labels * 3)[:rows] + [0] * max(0, rows - 3 * len(labels)))[:rows]
    outcomes = []
    for cls in (SkMLP, MLPClassifier):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cls(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
            outcomes.append(None)
        except Exception as err:  # noqa: BLE001 - the type is what is compared
            outcomes.append(type(err))
    assert outcomes[0] == outcomes[1], (outcomes, X, y)
