"""ONNX export of NeuralNetClassifier / NeuralNetRegressor, graph models included (Residual,
Branches, Columns, Embedding...), run by onnxruntime and onnx's reference evaluator against
fastnn's predict / predict_proba; layers without a converter raise fastnn's own error."""

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

from fastnn import nn  # noqa: E402
from fastnn.sklearn import (NeuralNetClassifier, NeuralNetRegressor,  # noqa: E402
                            register_onnx_converters)

from tests.sklearn.test_onnx import _fit, _run  # noqa: E402

register_onnx_converters()

# onnxruntime against fastnn's kernels; float64 graphs compute GELU's erf in float32
TOL = {np.float32: dict(rtol=1e-5, atol=2e-6), np.float64: dict(rtol=1e-7, atol=1e-7)}


def _table(n=120, seed=0, dtype=np.float32):
    """5 numeric columns, then a column of codes 0..3 (as floats, as OrdinalEncoder gives)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    X[:, 5] = rng.integers(0, 4, n)
    return X.astype(dtype), rng


def _every_layer():
    """Each container and each layer with a converter, nested."""
    return [
        nn.Columns([(0, 5), (5, 6)], [nn.Dense(8), nn.BatchNorm(), nn.ReLU()],
                   [nn.Embedding(4, 3, padding_idx=0), nn.Flatten()]),
        nn.Residual(nn.Dense(11), nn.LayerNorm(), nn.GELU(), nn.Dropout(0.2), nn.Dense(11)),
        nn.Residual(nn.Dense(6), nn.Sigmoid(), shortcut=nn.Dense(6)),
        nn.Branches([nn.Dense(4), nn.Tanh()], [nn.Dense(4), nn.ELU(0.5)],
                    nn.Residual(nn.Dense(6), nn.ReLU(), nn.Dense(4), shortcut=nn.Dense(4)),
                    merge="add"),
        nn.Branches(nn.Dense(3), [nn.Dense(2), nn.LeakyReLU(0.2)], merge="concat"),
        nn.PReLU(), nn.Reshape((5, 1)), nn.Flatten(),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_graph_classifier_matches_predict_proba(dtype):
    X, rng = _table(dtype=dtype)
    y = np.array(["ant", "bee", "cat"])[rng.integers(0, 3, len(X))]
    clf = _fit(NeuralNetClassifier(layers=_every_layer(), max_iter=8, random_state=0,
                                   dtype=dtype, learning_rate_init=0.01), X, y)
    # the running statistics moved: BatchNorm folds something real
    assert not np.allclose(clf.model_.layers[0].branches[0][1].running_mean, 0)
    _, (labels, proba) = _run(clf, X, options={"zipmap": False})
    assert proba.dtype == dtype and proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba, clf.predict_proba(X), **TOL[dtype])
    np.testing.assert_array_equal(labels, clf.predict(X))


@pytest.mark.parametrize("labels", [np.array([3, 7]), np.array([-1.0, 2.0, 5.0]),
                                    np.array(["no", "yes"])])
def test_graph_classifier_labels_and_zipmap(labels):
    X, rng = _table(80, seed=1)
    y = labels[rng.integers(0, len(labels), len(X))]
    clf = _fit(NeuralNetClassifier(layers=[nn.Residual(nn.Dense(6), nn.Tanh())], max_iter=5,
                                   random_state=0), X, y)
    _, (got, maps) = _run(clf, X)   # ZipMap: one {class: probability} per row
    np.testing.assert_array_equal(got, clf.predict(X))
    proba = np.array([[row[c] for c in sorted(row)] for row in maps])
    np.testing.assert_allclose(proba, clf.predict_proba(X), **TOL[np.float32])


@pytest.mark.parametrize("outputs", [1, 2])
def test_graph_regressor_matches_predict(outputs):
    X, rng = _table(100, seed=2)
    y = X[:, 0] - X[:, 1] * X[:, 2] + 0.3 * X[:, 5]
    y = np.column_stack([y, X[:, 3]]) if outputs == 2 else y
    reg = _fit(NeuralNetRegressor(layers=_every_layer(), max_iter=8, random_state=0,
                                  learning_rate_init=0.01), X, y)
    _, (pred,) = _run(reg, X)
    assert pred.shape == (len(X), outputs)
    np.testing.assert_allclose(pred, reg.predict(X).reshape(len(X), outputs), rtol=1e-5,
                               atol=1e-5)


def test_tabular_pipeline_exports_and_the_reference_evaluator_agrees():
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(3)
    n = 150
    X = np.column_stack([rng.standard_normal((n, 4)), 10.0 * rng.integers(0, 7, n),
                         rng.integers(0, 3, n)]).astype(np.float32)
    y = (X[:, 0] + (X[:, 4] > 30) > 0.5).astype(np.int64)
    prep = ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3]),
                              ("cat", OrdinalEncoder(), [4, 5])])
    net = NeuralNetClassifier(
        layers=[nn.Columns([(0, 4), (4, 5), (5, 6)], [nn.Dense(8), nn.ReLU()],
                           [nn.Embedding(7, 2), nn.Flatten()], [nn.Embedding(3, 2), nn.Flatten()]),
                nn.Dense(8), nn.ReLU()], max_iter=10, random_state=0, learning_rate_init=0.01)
    pipe = _fit(Pipeline([("prep", prep), ("net", net)]), X, y)
    onx, (labels, proba) = _run(pipe, X, options={id(net): {"zipmap": False}})
    np.testing.assert_array_equal(labels, pipe.predict(X))
    np.testing.assert_allclose(proba, pipe.predict_proba(X), **TOL[np.float32])
    ref_labels, ref_proba = ReferenceEvaluator(onx).run(None, {"X": X})
    np.testing.assert_array_equal(ref_labels, labels)
    np.testing.assert_allclose(ref_proba, proba, rtol=1e-5, atol=1e-6)


def test_input_shape_softmax_and_an_older_opset():
    """Rows reshaped to input_shape, a Dense on the last axis of 3-D input, a Softmax layer, and
    LayerNorm's ReduceMean before opset 18 (axes as an attribute)."""
    X, rng = _table(60, seed=4)
    y = rng.integers(0, 2, len(X))
    clf = _fit(NeuralNetClassifier(
        layers=[nn.Dense(4), nn.LayerNorm(), nn.Softmax(), nn.Flatten(), nn.Dense(5),
                nn.LayerNorm((5,))], input_shape=(3, 2), max_iter=5, random_state=0), X, y)
    for opset in (None, 15):
        onx, (labels, proba) = _run(clf, X, target_opset=opset, options={"zipmap": False})
        np.testing.assert_allclose(proba, clf.predict_proba(X), **TOL[np.float32])
        np.testing.assert_array_equal(labels, clf.predict(X))
    assert {op.version for op in onx.opset_import if op.domain in ("", "ai.onnx")} == {15}


def test_layers_without_a_converter_raise_fastnns_error_naming_them():
    X, rng = _table(40, seed=5)
    y = rng.integers(0, 2, len(X))
    cases = [
        (NeuralNetClassifier(layers=[nn.Conv1D(2, 3), nn.Flatten()], input_shape=(1, 6)),
         r"layer 0 \(Conv1D\) has no ONNX converter"),
        (NeuralNetRegressor(layers=[nn.Residual(nn.Dense(6), nn.ReLU()),
                                    nn.Branches(nn.Dense(2), [nn.Reshape((1, 6)),
                                                              nn.GlobalMaxPool1D()])]),
         r"layer 1 \(Branches\) > branch 1, layer 1 \(GlobalMaxPool1D\) has no ONNX"),
        (NeuralNetClassifier(layers=[nn.Reshape((6, 1)), nn.GRU(2)]),
         r"layer 1 \(GRU\) has no ONNX converter"),
    ]
    for est, match in cases:
        _fit(est.set_params(max_iter=2, random_state=0), X, y)
        with pytest.raises(ValueError, match=match) as info:
            skl2onnx.to_onnx(est, X[:1])
        assert "Supported layers: Dense" in str(info.value)
        assert "containers Sequential, Residual, Branches, Columns" in str(info.value)
    with pytest.raises(ValueError, match=r"Softmax over axis 1"):
        skl2onnx.to_onnx(_fit(NeuralNetClassifier(
            layers=[nn.Reshape((3, 2)), nn.Softmax(axis=1), nn.Flatten()], max_iter=2), X, y),
            X[:1])
    with pytest.raises(NotFittedError):
        skl2onnx.to_onnx(NeuralNetClassifier(layers=[nn.Dense(3)]), X[:1])


def test_nested_sequentials_and_a_projection_shortcut_export():
    """A Sequential inside the layers, as a Residual's shortcut and as its path."""
    X, rng = _table()
    y = (X[:, 0] > 0).astype(int)
    layers = [nn.Sequential(nn.Dense(8), nn.ReLU()),
              nn.Residual(nn.Sequential(nn.Dense(5), nn.Tanh()),
                          shortcut=nn.Sequential(nn.Dense(5), nn.BatchNorm())),
              nn.Dense(3)]
    est = _fit(NeuralNetClassifier(layers=layers, max_iter=10, random_state=0), X, y)
    _, (labels, proba) = _run(est, X, options={"zipmap": False})
    np.testing.assert_allclose(proba, est.predict_proba(X), **TOL[np.float32])
    np.testing.assert_array_equal(labels, est.predict(X))


def test_x_fitted_in_its_per_sample_shape_exports_with_that_rank():
    """No input_shape: X of shape (N, 4, 3) itself; LayerNorm and Softmax act on the last axis."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 4, 3)).astype(np.float32)
    y = rng.standard_normal((60, 2)).astype(np.float32)
    layers = [nn.Dense(5), nn.LayerNorm(), nn.Softmax(), nn.Flatten(), nn.Dense(2)]
    est = _fit(NeuralNetRegressor(layers=layers, max_iter=5, random_state=0), X, y)
    _, (pred,) = _run(est, X)
    np.testing.assert_allclose(pred, est.predict(X), **TOL[np.float32])


def test_a_negative_embedding_code_is_refused_not_wrapped():
    """fastnn refuses code -1; the ONNX graph must not read the last row for it."""
    X, rng = _table()
    y = (X[:, 0] > 0).astype(int)
    layers = [nn.Columns([(0, 5), (5, 6)], nn.Dense(4), [nn.Embedding(4, 2), nn.Flatten()]),
              nn.Dense(2)]
    est = _fit(NeuralNetClassifier(layers=layers, max_iter=5, random_state=0), X, y)
    bad = X[:3].copy()
    bad[1, 5] = -1
    with pytest.raises(ValueError):
        est.predict(bad)
    onx = skl2onnx.to_onnx(est, X[:1], options={"zipmap": False})
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="out of (data )?bounds|must be within"):
        sess.run(None, {sess.get_inputs()[0].name: bad})
