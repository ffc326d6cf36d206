"""ONNX export of MLPClassifier / MLPRegressor with skl2onnx, run by onnxruntime (onnx extra)."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

from fastnn.sklearn import MLPClassifier, MLPRegressor, register_onnx_converters  # noqa: E402

register_onnx_converters()

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]
DTYPES = [np.float32, np.float64]
# onnxruntime against fastnn's kernels, computing in the same precision
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _data(dtype, n=80, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(dtype), rng


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _run(model, X, sample=None, **kwargs):
    """Export with skl2onnx, run on X with onnxruntime; returns (graph, outputs)."""
    onx = skl2onnx.to_onnx(model, X[:1] if sample is None else sample, **kwargs)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return onx, sess.run(None, {sess.get_inputs()[0].name: X})


def _targets(kind, rng, n):
    if kind == "binary":
        return rng.integers(0, 2, n) * 7 + 3  # labels 3 and 10
    if kind == "binary-str":
        return np.array(["no", "yes"])[rng.integers(0, 2, n)]
    if kind == "multiclass":
        return np.array([2, 5, 11, 40])[rng.integers(0, 4, n)]
    if kind == "multiclass-str":
        return np.array(["ant", "bee", "cat"])[rng.integers(0, 3, n)]
    assert kind == "multilabel"
    return (rng.random((n, 3)) > 0.5).astype(np.int64)


def _assert_labels(labels, expected, proba, tol):
    """Equal labels, except where two probabilities are within the tolerance of each other
    (a tie that rounding may break either way)."""
    expected = np.asarray(expected)
    assert labels.shape == expected.shape
    if expected.ndim == 2:  # multilabel: 0/1 per column, threshold 0.5
        differ = labels != expected
        assert np.all(np.abs(proba[differ] - 0.5) <= tol), "labels differ away from 0.5"
        return
    top2 = np.sort(proba, axis=1)[:, -2:]
    differ = labels != expected
    assert np.all(top2[differ, 1] - top2[differ, 0] <= tol), "labels differ away from a tie"


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["binary", "binary-str", "multiclass", "multiclass-str",
                                  "multilabel"])
def test_classifier_matches_fastnn(kind, dtype):
    X, rng = _data(dtype)
    y = _targets(kind, rng, len(X))
    clf = _fit(MLPClassifier((8, 5), max_iter=30, random_state=0), X, y)
    assert clf.coefs_[0].dtype == dtype
    X_test, _ = _data(dtype, n=200, seed=1)
    _, (labels, proba) = _run(clf, X_test, options={"zipmap": False})
    expected = clf.predict_proba(X_test)
    assert proba.dtype == dtype and proba.shape == expected.shape
    np.testing.assert_allclose(proba, expected, **TOL[dtype])
    _assert_labels(labels, clf.predict(X_test), proba, TOL[dtype]["atol"])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_regressor_matches_fastnn(n_outputs, loss, dtype):
    X, rng = _data(dtype)
    y = np.abs(X[:, :n_outputs] * 2 + 0.5 + rng.standard_normal((len(X), n_outputs)) * 0.1)
    y = y.ravel() if n_outputs == 1 else y
    reg = _fit(MLPRegressor(loss, hidden_layer_sizes=(8, 5), max_iter=30, random_state=0), X, y)
    X_test, _ = _data(dtype, n=200, seed=1)
    _, (out,) = _run(reg, X_test)
    assert out.dtype == dtype and out.shape == (len(X_test), n_outputs)
    expected = reg.predict(X_test)
    np.testing.assert_allclose(out.reshape(expected.shape), expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation(activation, dtype):
    X, rng = _data(dtype)
    X_test, _ = _data(dtype, n=200, seed=1)
    clf = _fit(MLPClassifier((8, 5), activation, max_iter=30, random_state=0), X,
               rng.integers(0, 3, len(X)))
    _, (labels, proba) = _run(clf, X_test, options={"zipmap": False})
    np.testing.assert_allclose(proba, clf.predict_proba(X_test), **TOL[dtype])
    _assert_labels(labels, clf.predict(X_test), proba, TOL[dtype]["atol"])
    reg = _fit(MLPRegressor(hidden_layer_sizes=(8, 5), activation=activation, max_iter=30,
                            random_state=0), X, X[:, 0] - X[:, 1] ** 2)
    _, (out,) = _run(reg, X_test)
    np.testing.assert_allclose(out.ravel(), reg.predict(X_test), **TOL[dtype])


@pytest.mark.parametrize("model_dtype, graph_dtype", [(np.float32, np.float64),
                                                      (np.float64, np.float32)])
def test_the_sample_sets_the_graph_precision(model_dtype, graph_dtype):
    # as for scikit-learn's models: the graph computes in the sample's precision, whatever
    # the dtype of coefs_
    X, rng = _data(model_dtype)
    clf = _fit(MLPClassifier((8,), max_iter=30, random_state=0), X, rng.integers(0, 3, len(X)))
    X_test, _ = _data(graph_dtype, n=200, seed=1)
    _, (_, proba) = _run(clf, X_test, options={"zipmap": False})
    assert proba.dtype == graph_dtype
    np.testing.assert_allclose(proba, clf.predict_proba(X_test), rtol=1e-4, atol=1e-5)


def test_forced_float32_model_exports_in_its_own_precision():
    X, rng = _data(np.float64)
    reg = _fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0,
                            dtype=np.float32), X, X[:, 0])
    assert reg.coefs_[0].dtype == np.float32
    X_test, _ = _data(np.float64, n=200, seed=1)
    sample = X_test[:1].astype(reg.coefs_[0].dtype)
    _, (out,) = _run(reg, X_test.astype(np.float32), sample=sample)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), reg.predict(X_test), **TOL[np.float32])


def _as_sklearn(est, sk_cls, X, y):
    """scikit-learn's MLP with ``est``'s hyper-parameters and weights."""
    params = {k: v for k, v in est.get_params().items() if k not in ("device", "dtype",
                                                                     "class_weight")}
    sk = _fit(sk_cls(**{**params, "max_iter": 1}), X, y)
    sk.coefs_ = [c.copy() for c in est.coefs_]
    sk.intercepts_ = [b.copy() for b in est.intercepts_]
    return sk


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["binary-str", "multiclass", "regression"])
def test_same_graph_and_outputs_as_sklearn(kind, dtype):
    X, rng = _data(dtype)
    X_test, _ = _data(dtype, n=200, seed=1)
    if kind == "regression":
        y = X[:, 0] * 3
        est = _fit(MLPRegressor(hidden_layer_sizes=(8, 5), activation="tanh", max_iter=30,
                                random_state=0), X, y)
        sk = _as_sklearn(est, SkMLPRegressor, X, y)
        kwargs = {}
    else:
        y = _targets(kind, rng, len(X))
        est = _fit(MLPClassifier((8, 5), "tanh", max_iter=30, random_state=0), X, y)
        sk = _as_sklearn(est, SkMLPClassifier, X, y)
        kwargs = {"options": {"zipmap": False}}
    onx, ours = _run(est, X_test, **kwargs)
    sk_onx, theirs = _run(sk, X_test, **kwargs)
    assert [n.op_type for n in onx.graph.node] == [n.op_type for n in sk_onx.graph.node]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_multilabel_matches_sklearn_in_float32():
    # skl2onnx's float32 graph for scikit-learn's multilabel MLP (its float64 one does not run)
    X, rng = _data(np.float32)
    y = _targets("multilabel", rng, len(X))
    est = _fit(MLPClassifier((8,), max_iter=30, random_state=0), X, y)
    sk = _as_sklearn(est, SkMLPClassifier, X, y)
    X_test, _ = _data(np.float32, n=200, seed=1)
    _, ours = _run(est, X_test, options={"zipmap": False})
    _, theirs = _run(sk, X_test, options={"zipmap": False})
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_zipmap_and_pipeline():
    # ZipMap (skl2onnx's default output of probabilities) takes float32 only: a float32 graph
    X, rng = _data(np.float32)
    y = _targets("multiclass-str", rng, len(X))
    pipe = _fit(make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=30,
                                                              random_state=0)), X, y)
    X_test, _ = _data(np.float32, n=50, seed=1)
    _, (labels, proba) = _run(pipe, X_test)  # one {class: probability} per row
    expected = pipe.predict_proba(X_test)
    assert [sorted(row) for row in proba] == [sorted(pipe.classes_)] * len(X_test)
    got = np.array([[row[c] for c in pipe.classes_] for row in proba])
    np.testing.assert_allclose(got, expected, **TOL[np.float32])
    _assert_labels(labels, pipe.predict(X_test), expected, TOL[np.float32]["atol"])


@pytest.mark.parametrize("kind", ["multiclass-str", "multilabel"])
def test_loaded_model_exports_as_the_fitted_one(tmp_path, kind):
    import fastnn
    X, rng = _data(np.float64)
    clf = _fit(MLPClassifier((8,), max_iter=5, random_state=0), X, _targets(kind, rng, len(X)))
    fastnn.save(clf, tmp_path / "model.fnn")
    back = fastnn.load(tmp_path / "model.fnn")
    _, ours = _run(clf, X, options={"zipmap": False})
    _, loaded = _run(back, X, options={"zipmap": False})
    for a, b in zip(ours, loaded):
        np.testing.assert_array_equal(a, b)


def test_output_class_labels_option():
    X, rng = _data(np.float32)
    clf = _fit(MLPClassifier((8,), max_iter=5, random_state=0), X, _targets("multiclass", rng,
                                                                            len(X)))
    _, outputs = _run(clf, X, options={"zipmap": False, "output_class_labels": True})
    np.testing.assert_array_equal(outputs[2], clf.classes_)


@pytest.mark.parametrize("est", [MLPClassifier(), MLPRegressor()], ids=["classifier", "regressor"])
def test_unfitted_model_is_refused(est):
    with pytest.raises(NotFittedError):
        skl2onnx.to_onnx(est, np.zeros((1, 3), np.float32))


def test_missing_skl2onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # import skl2onnx raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[onnx\]'"):
        register_onnx_converters()


def _python(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    return out.stdout.split()


def test_registration_on_import_only_when_skl2onnx_is_loaded():
    alias = ("import skl2onnx, fastnn.sklearn as s\n"
             "def alias():\n"
             "    try:\n"
             "        return skl2onnx.get_model_alias(s.MLPRegressor)\n"
             "    except RuntimeError:\n"
             "        return None\n")
    before = _python("import sys, fastnn.sklearn\n"
                     "print('skl2onnx' in sys.modules)\n" + alias
                     + "print(alias()); s.register_onnx_converters(); print(alias())")
    assert before == ["False", "None", "FastnnMLPRegressor"]
    after = _python("import skl2onnx\n" + alias + "print(alias())")
    assert after == ["FastnnMLPRegressor"]
