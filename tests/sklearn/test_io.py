"""fastnn.save / fastnn.load for the scikit-learn estimators (no pickle)."""
import io
import json
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import fastnn
from fastnn.nn import Conv2D, Flatten, ReLU
from fastnn.sklearn import MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


CASES = [
    (lambda: MLPClassifier((20,), max_iter=3, random_state=0), "labels"),
    (lambda: MLPClassifier((20,), max_iter=3, random_state=0, solver="sgd"), "strings"),
    (lambda: MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0), "targets"),
    (lambda: NeuralNetClassifier([Conv2D(4, 3), ReLU(), Flatten()], input_shape=(1, 8, 8),
                                 max_iter=2, random_state=0), "strings"),
    (lambda: NeuralNetRegressor(max_iter=2, random_state=0), "targets"),
]


@pytest.mark.parametrize("make, target", CASES)
def test_round_trip_predicts_identically_and_keeps_training(tmp_path, data, make, target):
    X, y = data
    yy = {"labels": y, "strings": np.array([f"c{v}" for v in y]), "targets": X[:, :2]}[target]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = make().fit(X, yy)
    fastnn.save(est, tmp_path / "model.fnn")
    back = fastnn.load(tmp_path / "model.fnn")
    assert type(back) is type(est) and back.get_params().keys() == est.get_params().keys()
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.n_iter_ == est.n_iter_ and back.n_features_in_ == est.n_features_in_
    if hasattr(est, "classes_"):
        np.testing.assert_array_equal(back.classes_, est.classes_)
    # the optimizer state came along: one more epoch gives the same weights on both
    est.partial_fit(X, yy)
    back.partial_fit(X, yy)
    method = "predict" if target == "targets" else "predict_proba"
    np.testing.assert_allclose(getattr(back, method)(X[:20]), getattr(est, method)(X[:20]),
                               rtol=1e-5, atol=1e-7)


def test_crafted_class_path_is_refused(tmp_path, data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier((4,), max_iter=1).fit(X, y)
    buf = io.BytesIO()
    fastnn.save(est, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        members = {name: z.read(name) for name in z.namelist()}
    meta_name = "__fastnn__.npy"
    raw = np.load(io.BytesIO(members[meta_name]))
    meta = json.loads(raw.tobytes().decode())
    meta["class"] = "os.system"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data_ in members.items():
            if name == meta_name:
                arr = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
                b = io.BytesIO()
                np.save(b, arr)
                data_ = b.getvalue()
            z.writestr(name, data_)
    path = tmp_path / "crafted.fnn"
    path.write_bytes(out.getvalue())
    with pytest.raises(ValueError):
        fastnn.load(path)
    (tmp_path / "cut.fnn").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ValueError):
        fastnn.load(tmp_path / "cut.fnn")


def test_unfitted_estimator_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        fastnn.save(MLPClassifier(), tmp_path / "x.fnn")


def _rewrite(buf, change):
    """A copy of a saved file with ``change(name, array) -> array or None`` applied to members."""
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        members = {name: z.read(name) for name in z.namelist()}
    meta = json.loads(np.load(io.BytesIO(members["__fastnn__.npy"])).tobytes().decode())
    logical = meta["arrays"]  # member key -> the array's name
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, raw in members.items():
            if name != "__fastnn__.npy":
                arr = change(logical[name[:-4]], np.load(io.BytesIO(raw)))
                if arr is not None:
                    b = io.BytesIO()
                    np.save(b, arr)
                    raw = b.getvalue()
            z.writestr(name, raw)
    out.seek(0)
    return out


@pytest.mark.parametrize("member, bad", [
    ("solver/m", lambda a: a[:1]),                         # would be written past its end
    ("solver/v", lambda a: a[:1]),
    ("solver/m", lambda a: a.astype(np.float16)),
    ("solver/v", lambda a: np.full_like(a, np.nan)),
    ("coef/0", lambda a: a.astype(np.int64)),
    ("coef/1", lambda a: np.full_like(a, np.nan)),
    ("intercept/0", lambda a: a.astype(np.float32 if a.dtype == np.float64 else np.float64)),
])
def test_crafted_estimator_arrays_are_refused_before_any_kernel_runs(data, member, bad):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier((6,), max_iter=2, random_state=0).fit(X, y)
    buf = io.BytesIO()
    fastnn.save(est, buf)
    crafted = _rewrite(buf, lambda name, a: bad(a) if name == member else None)
    with pytest.raises(ValueError, match=member.split("/")[0] + "|layer"):
        fastnn.load(crafted)


def test_a_mismatched_optimizer_state_never_reaches_the_kernel(data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier((6,), max_iter=2, random_state=0).fit(X, y)
    est._optimizer_state.m = est._optimizer_state.m[:1]
    coefs = [c.copy() for c in est.coefs_]
    with pytest.raises(ValueError, match="optimizer state"):
        est.partial_fit(X, y)
    for a, b in zip(coefs, est.coefs_):  # the fitted model is left as it was
        np.testing.assert_array_equal(a, b)
