"""The playground's pure functions: data settings, datasets, edits and CSV files (``_data``),
model settings, features and views (``_model``), the exports (``_export``) and the loss
history (``_session``)."""
import ast
import base64
import contextlib
import dataclasses
import io
import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn.playground import _data, _export, _model, _session
from fastnn.playground._data import DataError, DataSpec, Points
from fastnn.playground._model import ModelError, ModelSpec

DATASETS = _data.CLASSIFICATION + _data.REGRESSION


def _spec(**kw):
    return DataSpec.from_json(kw)


def _points(**kw):
    return _data.generate(_spec(**kw))


# -- data settings -----------------------------------------------------------------------------

def test_data_spec_defaults():
    assert DataSpec.from_json({}) == DataSpec()
    assert dataclasses.asdict(DataSpec()) == {
        "dataset": "circle", "noise": 0.0, "classes": 2, "ratio": 0.5, "seed": 0,
        "points": _data.DEFAULT_POINTS, "regression": False}


def test_data_spec_from_json():
    spec = _spec(dataset="spiral", noise=0.25, classes=4, ratio=0.8, seed=9, points=123)
    assert spec == DataSpec("spiral", 0.25, 4, 0.8, 9, 123, False)
    assert isinstance(spec.classes, int) and isinstance(spec.points, int)
    assert isinstance(spec.seed, int)
    assert _spec(**dataclasses.asdict(spec)) == spec  # its own JSON round trips
    assert _spec(points=50.0).points == 50


@pytest.mark.parametrize("dataset", _data.TWO_CLASS_ONLY)
def test_two_class_datasets_keep_two_classes(dataset):
    assert _spec(dataset=dataset, classes=5).classes == 2


@pytest.mark.parametrize("dataset", _data.REGRESSION)
def test_regression_datasets_have_no_classes(dataset):
    spec = _spec(dataset=dataset, classes=4, regression=False)
    assert spec.regression is True and spec.classes == 0
    assert _spec(dataset="circle", regression=True).regression is False  # the dataset decides


@pytest.mark.parametrize("d, message", [
    ([], "must be a JSON object"),
    ({"dataset": "Circle"}, "dataset must be one of"),
    ({"dataset": None}, "got None"),
    ({"extra": 1}, "unknown data setting 'extra'"),
    ({"noise": -0.1}, "noise must be between 0.0 and 0.5"),
    ({"noise": float("nan")}, "noise must be a number, got nan"),
    ({"noise": float("inf")}, "noise must be a number"),
    ({"classes": True}, "classes must be a number, got True"),
    ({"classes": 1}, "classes must be between 2 and 5"),
    ({"classes": 3.5}, "classes must be a whole number"),
    ({"ratio": 0.95}, "ratio must be between 0.1 and 0.9"),
    ({"seed": 2**31}, "seed must be between"),
    ({"points": 5}, "points must be between 10 and 2000"),
    ({"points": "100"}, "points must be a number, got '100'"),
])
def test_bad_data_specs(d, message):
    with pytest.raises(DataError, match=re.escape(message)):
        DataSpec.from_json(d)


def test_error_messages_show_a_short_rendering():
    with pytest.raises(DataError) as exc:
        DataSpec.from_json({"dataset": "x" * 500})
    assert len(str(exc.value)) < 200 and str(exc.value).endswith("...")


# -- the datasets ------------------------------------------------------------------------------

@pytest.mark.parametrize("classes", [2, 3, 4, 5])
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset(dataset, classes):
    points = _points(dataset=dataset, classes=classes, points=150, seed=3)
    assert points.X.shape == (150, 2) and points.X.dtype == np.float64
    assert np.abs(points.X).max() <= _data.DOMAIN
    assert points.test.shape == (150,) and points.test.dtype == bool
    assert points.source == "generated"
    if dataset in _data.REGRESSION:
        assert points.regression and points.class_names == [] and points.n_classes == 0
        assert points.y.dtype == np.float64
        assert np.abs(points.y).max() <= 1.0 and points.y.std() > 0.05
        return
    k = 2 if dataset in _data.TWO_CLASS_ONLY else classes
    assert not points.regression and points.n_classes == k
    assert points.class_names == [str(c) for c in range(k)]
    assert points.y.dtype == np.int64
    assert set(points.y.tolist()) == set(range(k))  # every class present, no other
    assert set(points.y[~points.test].tolist()) == set(range(k))
    assert (points.X.std(axis=0) > 0.5).all()


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 0.73, 0.9])
@pytest.mark.parametrize("dataset", ["circle", "moons", "plane"])
def test_the_train_ratio(dataset, ratio):
    for n in (10, 101, 400):
        points = _points(dataset=dataset, ratio=ratio, points=n)
        assert int((~points.test).sum()) == round(ratio * n)
        X_tr, y_tr, X_te, y_te = points.split()
        assert len(X_tr) == len(y_tr) == round(ratio * n) and len(X_te) == len(y_te)
        assert len(X_tr) + len(X_te) == n


@pytest.mark.parametrize("dataset", DATASETS)
def test_datasets_are_reproducible(dataset):
    a, b = _points(dataset=dataset, seed=4), _points(dataset=dataset, seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.test, b.test)
    c = _points(dataset=dataset, seed=5)  # (spiral without noise: only the split moves)
    assert not (np.array_equal(a.X, c.X) and np.array_equal(a.test, c.test))


@pytest.mark.parametrize("dataset", DATASETS)
def test_noise_changes_the_points(dataset):
    """Every dataset's noise changes it: the positions, or (circle, xor, and the regression
    targets, as in TensorFlow Playground) the labels of points that stay put."""
    quiet, noisy = _points(dataset=dataset, noise=0.0), _points(dataset=dataset, noise=0.5)
    moved = not np.allclose(quiet.X, noisy.X)
    relabelled = not np.allclose(quiet.y, noisy.y)
    assert moved or relabelled
    assert np.abs(noisy.X).max() <= _data.DOMAIN
    if not moved:  # the labels of a good share of the points change
        assert np.mean(~np.isclose(quiet.y, noisy.y)) > 0.05


def test_noise_blurs_the_classes():
    """With noise, a point's class agrees less with the class of the nearby quiet points."""
    quiet = _points(dataset="circle", noise=0.0)
    radius = np.hypot(*quiet.X.T)
    assert (radius[quiet.y == 0].max() < radius[quiet.y == 1].min())  # a clean disc and ring
    noisy = _points(dataset="circle", noise=0.5)
    assert radius[noisy.y == 0].max() > radius[noisy.y == 1].min()


def test_a_two_class_dataset_always_has_two_classes():
    # xor with 10 points, seed 597, noise 0.5: every noisy label is 0
    points = _points(dataset="xor", points=10, seed=597, noise=0.5)
    assert points.n_classes == 2


# -- edits -------------------------------------------------------------------------------------

def test_add_a_point():
    points = _points(points=20)
    added = _data.apply_edit(points, {"add": [1.25, -6, 1]})
    assert len(added.y) == 21 and len(points.y) == 20  # a new Points: the old one is kept
    np.testing.assert_array_equal(added.X[-1], [1.25, -6.0])
    assert added.y[-1] == 1 and added.y.dtype == np.int64
    assert not added.test[-1]
    np.testing.assert_array_equal(added.X[:-1], points.X)
    assert added.class_names == points.class_names and added.source == points.source


def test_add_a_regression_point():
    points = _points(dataset="multigauss", points=20)
    added = _data.apply_edit(points, {"add": [0, 0, -0.5]})
    assert added.y[-1] == -0.5 and added.y.dtype == np.float64 and not added.test[-1]
    with pytest.raises(DataError, match="the target must be between -1.0 and 1.0"):
        _data.apply_edit(points, {"add": [0, 0, 1.01]})


@pytest.mark.parametrize("rect", [[-1, -2, 3, 0.5], [3, 0.5, -1, -2], [-1, 0.5, 3, -2]])
def test_delete_a_rectangle(rect):
    points = _points(points=300, seed=2)
    out = _data.apply_edit(points, {"delete": rect})
    x0, x1, y0, y1 = min(rect[0], rect[2]), max(rect[0], rect[2]), min(rect[1], rect[3]), \
        max(rect[1], rect[3])
    inside = ((points.X[:, 0] >= x0) & (points.X[:, 0] <= x1) & (points.X[:, 1] >= y0)
              & (points.X[:, 1] <= y1))
    assert 0 < inside.sum() < 300
    np.testing.assert_array_equal(out.X, points.X[~inside])
    np.testing.assert_array_equal(out.y, points.y[~inside])
    np.testing.assert_array_equal(out.test, points.test[~inside])
    assert _data.apply_edit(out, {"delete": rect}).X.shape == out.X.shape  # nothing left there


def test_delete_everything_and_an_empty_rectangle():
    points = _points(points=30)
    assert len(_data.apply_edit(points, {"delete": [-6, -6, 6, 6]}).y) == 0
    assert len(_data.apply_edit(points, {"delete": [7, 7, 8, 8]}).y) == 30


@pytest.mark.parametrize("edit, message", [
    ("add", "an edit is"),
    ({}, "an edit is"),
    ({"add": [0, 0, 0], "delete": [0, 0, 1, 1]}, "an edit is"),
    ({"paint": [0, 0]}, "unknown edit 'paint'"),
    ({"add": [0, 0]}, "add takes a list of 3 numbers"),
    ({"add": (0, 0, 0)}, "add takes a list of 3 numbers"),
    ({"add": [0, 0, None]}, "add must be a number, got None"),
    ({"add": [0, 0, float("nan")]}, "add must be a number, got nan"),
    ({"add": [6.01, 0, 0]}, "x must be between -6.0 and 6.0"),
    ({"add": [0, -6.01, 0]}, "y must be between -6.0 and 6.0"),
    ({"add": [0, 0, -1]}, "the class must be between 0 and 1"),
    ({"add": [0, 0, 1.5]}, "the class must be a whole number"),
    ({"delete": [0, 0, 1, 1, 1]}, "delete takes a list of 4 numbers"),
    ({"delete": [0, 0, 1, "1"]}, "delete must be a number"),
])
def test_bad_edits(edit, message):
    with pytest.raises(DataError, match=re.escape(message)):
        _data.apply_edit(_points(points=20), edit)


def test_max_points_holds_for_additions():
    full = _points(points=_data.MAX_POINTS)
    with pytest.raises(DataError, match=f"at most {_data.MAX_POINTS}"):
        _data.apply_edit(full, {"add": [0, 0, 0]})
    fewer = _data.apply_edit(full, {"delete": [-6, -6, 0, 0]})
    assert len(_data.apply_edit(fewer, {"add": [0, 0, 0]}).y) == len(fewer.y) + 1


def test_check_usable():
    points = _points(points=20)
    _data.check_usable(points)
    empty = _data.apply_edit(points, {"delete": [-6, -6, 6, 6]})
    with pytest.raises(DataError, match="too few training points"):
        _data.check_usable(empty)
    one = _data.apply_edit(empty, {"add": [0, 0, 1]})
    with pytest.raises(DataError, match="too few training points"):
        _data.check_usable(one)
    same = _data.apply_edit(one, {"add": [1, 1, 1]})
    with pytest.raises(DataError, match="single class"):
        _data.check_usable(same)
    _data.check_usable(_data.apply_edit(same, {"add": [2, 2, 0]}))
    regression = _points(dataset="plane", points=10)
    _data.check_usable(regression)


def test_points_to_json():
    points = _points(dataset="gauss", classes=3, points=12)
    j = points.to_json()
    assert j["count"] == 12 and len(j["x"]) == len(j["y"]) == len(j["label"]) == 12
    assert j["classes"] == ["0", "1", "2"] and j["regression"] is False
    assert set(j["test"]) <= {0, 1} and sum(j["test"]) == int(points.test.sum())
    np.testing.assert_allclose(j["x"], points.X[:, 0], atol=5e-5)
    assert all(isinstance(v, int) for v in j["label"])
    assert _points(dataset="plane", points=10).to_json()["classes"] == []


# -- CSV files ---------------------------------------------------------------------------------

def _csv(text):
    return text.encode()


def test_parse_csv_with_a_header_and_names():
    data = _csv("x,y,animal\n1,10,cat\n2,20,dog\n3,30,cat\n4,40,bird\n")
    points = _data.parse_csv(data, regression=False, ratio=0.5, seed=0)
    assert points.class_names == ["bird", "cat", "dog"] and points.n_classes == 3
    assert points.y.tolist() == [1, 2, 1, 0]
    assert points.source == "upload" and not points.regression
    np.testing.assert_allclose(points.X[:, 0], [-5.5, -5.5 / 3, 5.5 / 3, 5.5])
    np.testing.assert_allclose(points.X[:, 1], points.X[:, 0])
    assert int((~points.test).sum()) == 2


@pytest.mark.parametrize("text", [
    "1,2,a\n3,4,b\n5,6,a\n7,8,b\n",                 # no header
    "x;y;label\n1;2;a\n3;4;b\n5;6;a\n7;8;b\n",      # semicolons
    "x\ty\tlabel\n1\t2\ta\n3\t4\tb\n5\t6\ta\n7\t8\tb\n",  # tabs
    "\ufeffx,y,label\r\n1,2,a\r\n3,4,b\r\n5,6,a\r\n7,8,b\r\n",  # Excel: BOM, CRLF
    "\n1, 2, a\n\n3, 4, b \n5,6,a\n7,8,b\n\n",     # blank lines, spaces
    '"x","y","label"\n"1","2","a"\n"3","4","b"\n"5","6","a"\n"7","8","b"\n',  # quoted
])
def test_parse_csv_dialects(text):
    points = _data.parse_csv(_csv(text), regression=False)
    assert points.class_names == ["a", "b"] and points.y.tolist() == [0, 1, 0, 1]
    np.testing.assert_allclose(points.X[:, 0], [-5.5, -5.5 / 3, 5.5 / 3, 5.5])


def test_parse_csv_numeric_labels_sort_as_numbers():
    points = _data.parse_csv(_csv("0,0,10\n1,1,2\n2,2,1\n3,3,2\n"), regression=False)
    assert points.class_names == ["1", "2", "10"] and points.y.tolist() == [2, 1, 0, 1]


def test_parse_csv_regression():
    points = _data.parse_csv(_csv("x,y,t\n0,0,100\n1,5,300\n2,1,200\n3,3,150\n"),
                             regression=True)
    assert points.regression and points.class_names == [] and points.n_classes == 0
    np.testing.assert_allclose(points.y, [-1, 1, 0, -0.5])
    assert np.abs(points.X).max() == pytest.approx(5.5)
    constant = _data.parse_csv(_csv("0,0,7\n1,1,7\n2,2,7\n3,3,7\n"), regression=True)
    np.testing.assert_array_equal(constant.y, 0.0)


def test_parse_csv_a_constant_column():
    points = _data.parse_csv(_csv("5,0,a\n5,1,b\n5,2,a\n5,3,b\n"), regression=False)
    np.testing.assert_array_equal(points.X[:, 0], 0.0)


def test_parse_csv_uses_ratio_and_seed():
    text = _csv("".join(f"{i},{i * i % 7},{'ab'[i % 2]}\n" for i in range(50)))
    a = _data.parse_csv(text, False, ratio=0.8, seed=1)
    assert int((~a.test).sum()) == 40
    np.testing.assert_array_equal(a.test, _data.parse_csv(text, False, 0.8, 1).test)
    assert not np.array_equal(a.test, _data.parse_csv(text, False, 0.8, 2).test)


@pytest.mark.parametrize("text, regression, message", [
    (b"x,y,label\n1,2,a\n3,4\n5,6,b\n7,8,a\n", False,
     "line 3: expected 3 columns (x, y, label), found 2"),
    (b"1,2,a\n3,4,b\n5,6,a\n7,8,b,c\n", False, "line 4: expected 3 columns"),
    (b"1,2\n3,4\n5,6\n7,8\n", False, "line 1: expected 3 columns"),
    (b"x,y,c\n1,2,a\n3,4,b\n5,six,a\n7,8,b\n", False,
     "line 4, column 2: 'six' is not a number (columns 1 and 2 are the point's x and y)"),
    (b"1,2,a\n\n\n3,4,b\n5,6,a\ninf,8,b\n", False, "line 6, column 1: 'inf' is not a number"),
    (b"1,2,a\n3,4,a\n5,6,a\n7,8,a\n", False, "the label column has 1 distinct values"),
    (b"1,2,a\n3,4,b\n5,6,c\n7,8,d\n9,1,e\n2,3,f\n", False,
     "6 distinct values; the playground takes 2 to 5 classes"),
    (b"1,2,a\n3,4,b\n5,6,a\n7,8,\n", False, "the label '' is not a short name"),
    (b"1,2,a\n3,4,b\x00\n5,6,a\n7,8,b\n", False, "the file is binary"),
    (b"1,2,a\n3,4,b\n5,6,\xe9\n7,8,b\n", False, "not UTF-8"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", False, "not UTF-8"),
    (b"x,y,label\n1,2,a\n3,4,b\n5,6,a\n", False, "at least 4 rows"),
    (b"\n\n  \n", False, "at least 4 rows"),
    (b"1,2,3\n3,4,b\n5,6,1\n7,8,2\n", True, "line 2, column 3: 'b' is not a number"),
])
def test_bad_csv_files(text, regression, message):
    with pytest.raises(DataError, match=re.escape(message)):
        _data.parse_csv(text, regression)


def test_csv_too_many_rows():
    rows = "".join(f"{i},{i % 9},{'ab'[i % 2]}\n" for i in range(_data.MAX_POINTS + 1))
    with pytest.raises(DataError, match=f"the file has {_data.MAX_POINTS + 1} rows"):
        _data.parse_csv(_csv(rows), False)
    assert len(_data.parse_csv(_csv("x,y,c\n" + rows[rows.index("\n") + 1:]), False).y) == \
        _data.MAX_POINTS


@pytest.mark.parametrize("label", ["a'); import os", "b\"", "os.system(1)", "x;y", "a\\b",
                                   "{}", "<b>", "`id`", "$HOME", "a" * 41, "#c"])
def test_csv_labels_must_be_short_names(label):
    quoted = '"' + label.replace('"', '""') + '"'
    text = _csv(f"x,y,label\n1,2,ok\n3,4,{quoted}\n5,6,ok\n7,8,{quoted}\n")
    with pytest.raises(DataError, match="is not a short name"):
        _data.parse_csv(text, False)


@pytest.mark.parametrize("label", ["Iris setosa", "v1.2", "a+b", "x-y", "under_score", "élan",
                                   "a" * 40, "7"])
def test_csv_labels_that_are_short_names(label):
    points = _data.parse_csv(_csv(f"1,2,{label}\n3,4,zz\n5,6,{label}\n7,8,zz\n"), False)
    assert label in points.class_names


_CSVISH = st.lists(st.sampled_from(list("0123456789.,;\t\n -e\"'abcx\x00") +
                                   ["\ufeff", "nan", "inf", "1e400", "\r\n", "\r"]),
                   max_size=80).map("".join)


@given(text=_CSVISH, regression=st.booleans())
def test_parse_csv_only_raises_data_error(text, regression):
    """Any text (lone CR line ends included) parses or raises DataError."""
    try:
        points = _data.parse_csv(text.encode(), regression)
    except DataError:
        return
    assert 4 <= len(points.y) <= _data.MAX_POINTS
    assert np.abs(points.X).max() <= _data.DOMAIN - 0.5 + 1e-9
    assert np.isfinite(points.y).all()
    if regression:
        assert np.abs(points.y).max() <= 1.0 + 1e-12
    else:
        assert _data.MIN_CLASSES <= points.n_classes <= _data.MAX_CLASSES


@given(data=st.binary(max_size=120),
       regression=st.booleans())
def test_parse_csv_bytes_only_raise_data_error(data, regression):
    try:
        _data.parse_csv(data, regression)
    except DataError:
        pass


# -- model settings ----------------------------------------------------------------------------

def test_model_spec_defaults():
    assert ModelSpec.from_json({}) == ModelSpec()
    assert ModelSpec().to_json() == {
        "layers": [[4, "tanh"], [2, "tanh"]], "features": ["x", "y"], "loss": "cross_entropy",
        "optimizer": "adam", "lr": 0.03, "batch_size": 10, "l2": 0.0, "dropout": 0.0,
        "seed": 0}


def test_model_spec_round_trip():
    d = {"layers": [[16, "relu"]] * _model.MAX_LAYERS, "features": list(_model.FEATURES),
         "loss": "squared_error", "optimizer": "adagrad", "lr": 1e-6, "batch_size": 256,
         "l2": 10.0, "dropout": 0.9, "seed": 2**31 - 1}
    spec = ModelSpec.from_json(d)
    assert spec.to_json() == d
    assert ModelSpec.from_json({"layers": []}).layers == []
    assert ModelSpec.from_json({"features": ["siny", "y", "x", "siny"]}).features == \
        ["x", "y", "siny"]


@pytest.mark.parametrize("d, message", [
    ("tanh", "must be a JSON object"),
    ({"hidden": []}, "unknown model setting 'hidden'"),
    ({"layers": [[4, "tanh"]] * (_model.MAX_LAYERS + 1)}, "the model is too large: 7 hidden"),
    ({"layers": [[_model.MAX_UNITS + 1, "relu"]]}, "too large: hidden layer 1 has 17 units"),
    ({"layers": [[4, "relu"], [-1, "relu"]]}, "hidden layer 2: units must be a whole number"),
    ({"layers": [["4", "relu"]]}, "units must be a whole number"),
    ({"layers": [[4, "relu", 0.5]]}, "must be [units, activation]"),
    ({"layers": [[4, "ReLU"]]}, "hidden layer 1's activation must be one of"),
    ({"layers": [[4, ["relu"]]]}, "activation must be one of"),
    ({"layers": {"0": [4, "relu"]}}, "layers must be a list"),
    ({"features": "x"}, "choose at least one input feature"),
    ({"features": ["x", "x3"]}, "a feature must be one of x, y, x2, y2, xy, sinx, siny"),
    ({"loss": "mse"}, "loss must be one of"),
    ({"optimizer": "Adam"}, "optimizer must be one of"),
    ({"lr": 5e-7}, "the learning rate must be between 1e-06 and 10.0"),
    ({"lr": 10.5}, "the learning rate must be between"),
    ({"lr": None}, "the learning rate must be a number, got None"),
    ({"lr": float("nan")}, "the learning rate must be a number"),
    ({"batch_size": 1.5}, "batch size must be a whole number"),
    ({"batch_size": 1000}, "batch size must be between 1 and 256"),
    ({"l2": 11}, "L2 must be between 0.0 and 10.0"),
    ({"dropout": 1.0}, "dropout must be between 0.0 and 0.9"),
    ({"seed": -3}, "seed must be between 0 and"),
])
def test_bad_model_specs(d, message):
    with pytest.raises(ModelError, match=re.escape(message)):
        ModelSpec.from_json(d)


def test_parameter_count_and_the_size_check(monkeypatch):
    spec = ModelSpec.from_json({"layers": [[3, "tanh"], [2, "relu"]],
                                "features": ["x", "y", "xy"]})
    assert _model.parameter_count(spec, 4) == (3 + 1) * 3 + (3 + 1) * 2 + (2 + 1) * 4
    built = _model.build(spec, 3, 4)
    assert built.flat.data.size == _model.parameter_count(spec, 4)
    assert _model.parameter_count(ModelSpec(layers=[]), 1) == 3
    spec.check_size(_data.MAX_CLASSES)
    monkeypatch.setattr(_model, "MAX_PARAMETERS", 20)
    with pytest.raises(ModelError, match="the model is too large: 32 parameters, the "
                                         "playground trains at most 20"):
        spec.check_size(4)


def test_n_outputs():
    spec = ModelSpec()
    assert _model.n_outputs(spec, _points(dataset="gauss", classes=4, points=20)) == 4
    assert _model.n_outputs(spec, _points(dataset="plane", points=20)) == 1


def test_features():
    X = np.array([[1.0, 2.0], [-0.5, 3.0]])
    spec = ModelSpec.from_json({"features": list(_model.FEATURES)})
    F = _model.features(spec, X)
    assert F.dtype == np.float32 and F.shape == (2, 7)
    expected = np.column_stack([X[:, 0], X[:, 1], X[:, 0] ** 2, X[:, 1] ** 2, X[:, 0] * X[:, 1],
                                np.sin(X[:, 0]), np.sin(X[:, 1])])
    np.testing.assert_allclose(F, expected, rtol=1e-6)
    only = _model.features(ModelSpec.from_json({"features": ["sinx", "xy"]}), X)
    np.testing.assert_allclose(only, expected[:, [4, 5]], rtol=1e-6)


def test_targets():
    points = _points(dataset="gauss", classes=3, points=12)
    y = points.y
    t = _model.targets(ModelSpec(), points, y)
    assert t.dtype == np.int64 and t.tolist() == y.tolist()
    t = _model.targets(ModelSpec(loss="squared_error"), points, y)
    assert t.dtype == np.float32 and t.shape == (12, 3)
    np.testing.assert_array_equal(t.argmax(axis=1), y)
    np.testing.assert_array_equal(t.sum(axis=1), 1)
    reg = _points(dataset="plane", points=10)
    t = _model.targets(ModelSpec(), reg, reg.y)
    assert t.dtype == np.float32 and t.shape == (10, 1)


def test_build():
    spec = ModelSpec.from_json({"layers": [[3, "leaky_relu"], [2, "sigmoid"]], "dropout": 0.5,
                                "features": ["x", "y", "x2"]})
    model = _model.build(spec, 3, 4)
    names = [type(layer).__name__ for layer in model.layers]
    assert names == ["Dense", "LeakyReLU", "Dropout", "Dense", "Sigmoid", "Dropout", "Dense"]
    out, hidden = _model.outputs(model, np.zeros((5, 3), np.float32))
    assert out.shape == (5, 4) and [h.shape for h in hidden] == [(5, 3), (5, 2)]
    # the seed fixes the initial weights
    again = _model.build(spec, 3, 4)
    np.testing.assert_array_equal(model.flat.data, again.flat.data)
    other = _model.build(dataclasses.replace(spec, seed=1), 3, 4)
    assert not np.array_equal(model.flat.data, other.flat.data)


@pytest.mark.parametrize("name, expected", [
    ("sgd", ("sgd", {})), ("momentum", ("sgd", {"momentum": 0.9})),
    ("nesterov", ("sgd", {"momentum": 0.9, "nesterov": True})), ("adagrad", ("adagrad", {})),
    ("rmsprop", ("rmsprop", {})), ("adam", ("adam", {}))])
def test_fit_options_and_optimizers(name, expected):
    spec = ModelSpec(optimizer=name)
    assert _model.fit_options(spec, False) == ("cross_entropy", *expected)
    assert _model.fit_options(spec, True)[0] == "mse"
    assert _model.fit_options(ModelSpec(loss="squared_error"), False)[0] == "mse"
    assert _model.make_optimizer(spec, _model.build(spec, 2, 2)) is not None


@pytest.mark.parametrize("layers, ok, why", [
    ([[4, "tanh"], [2, "tanh"]], True, ""),
    ([[4, "relu"]], True, ""),
    ([[4, "sigmoid"]], True, ""),
    ([], True, ""),
    ([[4, "leaky_relu"]], False, "no leaky ReLU"),
    ([[4, "relu"], [2, "sigmoid"]], False, "share one activation"),
])
def test_onnx_support(layers, ok, why):
    support = _model.onnx_support(ModelSpec(layers=layers))
    assert support["ok"] is ok and why in support["why"]


def test_view_and_weights():
    spec = ModelSpec.from_json({"layers": [[3, "relu"], [2, "tanh"]]})
    points = _points(dataset="gauss", classes=3, points=30)
    model = _model.build(spec, 2, 3)
    view = _model.view(spec, model, regression=False)
    region = view["region"]
    assert region["kind"] == "classes" and region["n"] == _model.GRID
    assert region["extent"] == _data.DOMAIN
    labels = np.frombuffer(base64.b64decode(region["label"]), np.uint8)
    assert labels.size == _model.GRID ** 2 and labels.max() < 3
    assert np.frombuffer(base64.b64decode(region["confidence"]), np.uint8).size == \
        _model.GRID ** 2
    assert [len(u["maps"]) for u in view["units"]] == [3, 2]
    assert view["units"][1]["lo"] == -1.0 and view["units"][1]["hi"] == 1.0
    for unit in view["units"]:
        for m in unit["maps"]:
            assert len(base64.b64decode(m)) == _model.UNIT_GRID ** 2
    # the top left cell of the grid is (-6, 6)
    out, _ = _model.outputs(model, _model.features(spec, _model.grid(_model.GRID)))
    assert labels[0] == out[0].argmax()
    assert _model.grid(_model.GRID)[0] == pytest.approx([-6 + 6 / _model.GRID,
                                                         6 - 6 / _model.GRID])
    w = _model.weights(model)
    assert [np.array(a).shape for a in w] == [(2, 3), (3, 2), (2, 3)]
    reg = _model.view(spec, _model.build(spec, 2, 1), regression=True)["region"]
    assert reg["kind"] == "regression" and (reg["lo"], reg["hi"]) == (-1.0, 1.0)
    assert len(base64.b64decode(reg["value"])) == _model.GRID ** 2
    assert points.n_classes == 3


def test_scores():
    points = _points(dataset="gauss", classes=3, points=60)
    spec = ModelSpec()
    model = _model.build(spec, 2, 3)
    X_tr, y_tr, _, _ = points.split()
    loss, accuracy = _model.scores(spec, model, X_tr, y_tr, points)
    out, _ = _model.outputs(model, _model.features(spec, X_tr))
    p = _model.softmax(out)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(len(y_tr)), y_tr])))
    assert accuracy == pytest.approx(np.mean(out.argmax(axis=1) == y_tr))
    sq = ModelSpec(loss="squared_error")
    loss, _ = _model.scores(sq, model, X_tr, y_tr, points)
    assert loss == pytest.approx(np.mean((out - np.eye(3)[y_tr]) ** 2))
    assert _model.scores(spec, model, X_tr[:0], y_tr[:0], points) == (None, None)
    reg = _points(dataset="plane", points=20)
    rmodel = _model.build(spec, 2, 1)
    loss, accuracy = _model.scores(spec, rmodel, reg.X, reg.y, reg)
    out, _ = _model.outputs(rmodel, _model.features(spec, reg.X))
    assert accuracy is None and loss == pytest.approx(np.mean((out[:, 0] - reg.y) ** 2))


def test_softmax():
    z = np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])
    np.testing.assert_allclose(_model.softmax(z), [[0.5, 0.5], [0.25, 0.75]])


# -- exports (without a server) ----------------------------------------------------------------

@pytest.mark.parametrize("setup", [
    ({"dataset": "circle"}, {"layers": [[3, "tanh"]]}),
    ({"dataset": "gauss", "classes": 4}, {"layers": [[5, "relu"], [3, "relu"]],
                                          "features": ["x", "y", "xy", "sinx"]}),
    ({"dataset": "spiral", "classes": 3}, {"layers": [], "loss": "squared_error"}),
    ({"dataset": "plane"}, {"layers": [[4, "sigmoid"]], "features": ["x2", "y"]}),
])
def test_as_mlp_is_the_network(setup):
    data, model = setup
    points = _points(points=60, **data)
    spec = ModelSpec.from_json(model)
    net = _model.build(spec, len(spec.features), _model.n_outputs(spec, points))
    rng = np.random.default_rng(0)
    net.flat.data[...] = rng.normal(0, 0.8, net.flat.data.shape)
    mlp = _export.as_mlp(spec, points, net)
    X = np.vstack([points.X, rng.uniform(-6, 6, (100, 2))])
    F = _model.features(spec, X)
    out, _ = _model.outputs(net, F)
    if points.regression:
        np.testing.assert_allclose(mlp.predict(F).reshape(-1), out[:, 0], rtol=1e-4, atol=1e-5)
        return
    np.testing.assert_allclose(mlp.predict_proba(F), _model.softmax(out), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(mlp.predict(F), out.argmax(axis=1))


def test_as_mlp_refuses_what_sklearn_cannot_hold():
    spec = ModelSpec(layers=[[4, "leaky_relu"]])
    with pytest.raises(ValueError, match="leaky ReLU"):
        _export.as_mlp(spec, _points(points=20), _model.build(spec, 2, 2))


def test_fastnn_file_round_trips():
    import fastnn
    spec = ModelSpec(layers=[[3, "sigmoid"]], dropout=0.2)
    net = _model.build(spec, 2, 3)
    loaded = fastnn.load(io.BytesIO(_export.fastnn_file(net)))
    x = _model.features(spec, np.random.default_rng(0).uniform(-6, 6, (50, 2)))
    np.testing.assert_array_equal(_model.outputs(loaded, x)[0], _model.outputs(net, x)[0])


def _script(data, model, epochs=2, points=None):
    points = points if points is not None else _points(points=60, **data)
    spec = ModelSpec.from_json(model)
    return _export.python_script(spec, points, epochs), points


def _exec(script):
    """Run a script here (not in a subprocess: fastnn is already imported); its printed lines."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(script, "playground_model.py", "exec"), {"__name__": "__main__"})  # noqa: S102
    return out.getvalue()


def test_python_script_for_classes():
    script, points = _script({"dataset": "gauss", "classes": 3},
                             {"layers": [[4, "relu"], [3, "tanh"]], "optimizer": "momentum",
                              "features": ["x", "y2", "siny"], "l2": 0.01, "dropout": 0.25})
    tree = ast.parse(script)
    assert ast.get_docstring(tree).startswith("The fastnn playground's network (4 relu, 3 tanh; "
                                              "3 classes)")
    assert "from fastnn.sklearn import NeuralNetClassifier" in script
    assert "CLASSES = ['0', '1', '2']" in script
    assert "np.column_stack([x, y * y, np.sin(y)])" in script
    assert "optimizer_options={'momentum': 0.9}" in script and "alpha=0.01" in script
    assert "nn.Dropout(0.25)" in script and "max_iter=2," in script
    assert all(len(line) <= 100 for line in script.splitlines())
    printed = _exec(script)
    accuracy = float(re.fullmatch(r"test accuracy (\S+)\n", printed).group(1))
    assert 0 <= accuracy <= 1
    # the script's arrays are the points (rounded to 4 decimals)
    namespace = {}
    exec(compile(script.split("\n\n\ndef features")[0], "s", "exec"), namespace)  # noqa: S102
    X_tr, y_tr, X_te, y_te = points.split()
    np.testing.assert_allclose(namespace["X_train"], X_tr, atol=5e-5)
    np.testing.assert_array_equal(namespace["y_train"], y_tr)
    np.testing.assert_allclose(namespace["X_test"], X_te, atol=5e-5)
    np.testing.assert_array_equal(namespace["y_test"], y_te)


def test_python_script_for_regression_and_squared_error():
    script, _ = _script({"dataset": "multigauss"}, {"layers": [[5, "tanh"]]})
    assert "NeuralNetRegressor" in script and "CLASSES" not in script
    mse = float(re.fullmatch(r"test mean squared error (\S+)\n", _exec(script)).group(1))
    assert math.isfinite(mse) and mse >= 0
    script, _ = _script({"dataset": "blobs", "classes": 4},
                        {"loss": "squared_error", "layers": [[4, "relu"]],
                         "optimizer": "nesterov"})
    assert "NeuralNetRegressor" in script and "np.eye(4)[y_train]" in script
    assert "squared error" in ast.get_docstring(ast.parse(script))
    accuracy = float(re.fullmatch(r"test accuracy (\S+)\n", _exec(script)).group(1))
    assert 0 <= accuracy <= 1


def test_python_script_epochs_and_names():
    names = ["Iris setosa", "v1.2", "a+b"]
    text = "".join(f"{i},{i * 7 % 5},{names[i % 3]}\n" for i in range(12)).encode()
    points = _data.parse_csv(text, False)
    script = _export.python_script(ModelSpec(), points, 0)
    assert "max_iter=1," in script  # at least one epoch
    line = next(line for line in script.splitlines() if line.startswith("CLASSES = "))
    assert ast.literal_eval(line.split(" = ", 1)[1].split("  #")[0]) == sorted(names)
    assert "an uploaded file's columns were scaled" in script
    compile(script, "playground_model.py", "exec")


def test_python_script_on_emptied_points_compiles():
    points = _data.apply_edit(_points(points=20), {"delete": [-6, -6, 6, 6]})
    script = _export.python_script(ModelSpec(), points, 3)
    compile(script, "playground_model.py", "exec")
    assert "X_train = np.zeros((0, 2))" in script


def test_python_script_without_test_points_runs():
    text = b"1,2,a\n3,4,b\n5,6,a\n7,8,b\n"
    points = _data.parse_csv(text, False, ratio=0.9)
    assert not points.test.any()
    _exec(_export.python_script(ModelSpec(), points, 1))


# -- the loss history --------------------------------------------------------------------------

def test_record_replaces_an_epochs_point_and_thins():
    history = {"epoch": [], "train": [], "test": []}
    _session._record(history, 0, 1.0, 2.0)
    _session._record(history, 0, 0.5, 1.5)  # the same epoch again: replaced
    assert history == {"epoch": [0], "train": [0.5], "test": [1.5]}
    for epoch in range(1, _session.HISTORY + 1):
        _session._record(history, epoch, 1.0 / epoch, 2.0 / epoch)
    assert len(history["epoch"]) <= _session.HISTORY
    assert history["epoch"][0] == 0 and history["epoch"][-1] == _session.HISTORY
    assert history["epoch"] == sorted(history["epoch"])
    assert len(history["train"]) == len(history["test"]) == len(history["epoch"])


def test_thin():
    history = {"epoch": list(range(1000)), "train": list(range(1000)),
               "test": list(range(1000))}
    thin = _session._thin(history, 400)
    assert len(thin["epoch"]) <= 400 and thin["epoch"][0] == 0 and thin["epoch"][-1] == 999
    assert thin["train"] == thin["epoch"]
    small = {"epoch": [0, 1], "train": [1.0, 0.5], "test": [1.0, 0.6]}
    assert _session._thin(small, 400) == small and _session._thin(small, 400) is not small


def test_limits_to_json():
    limits = _session.Limits(max_sessions=3, idle_seconds=5, run_seconds=7, max_epochs=11)
    assert limits.to_json() == {
        "max_sessions": 3, "idle_seconds": 5, "run_seconds": 7, "max_epochs": 11,
        "max_points": _data.MAX_POINTS, "max_layers": _model.MAX_LAYERS,
        "max_units": _model.MAX_UNITS, "max_parameters": _model.MAX_PARAMETERS,
        "max_batch": _model.MAX_BATCH}


def test_points_dataclass():
    p = Points(np.zeros((2, 2)), np.array([0, 1]), np.array([False, True]), False, ["a", "b"])
    assert p.source == "generated" and p.n_classes == 2
