"""NeuralNetRegressor (and the classifier) with graph modules: Residual, Branches and Columns in
``layers``; fit / predict / score, nested parameters reaching into the containers, clone,
grid search, save/load."""
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import fastnn
from fastnn.nn import Branches, Columns, Dense, ReLU, Residual, Tanh
from fastnn.sklearn import NeuralNetClassifier, NeuralNetRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 5))
    y = np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] + 0.3 * x[:, 4] ** 2
    return x, y


def _graph_layers(width=16):
    return [Columns([(0, 3), (3, 5)], [Dense(width), Tanh()], [Dense(8), ReLU()]),
            Residual(Dense(width + 8), Tanh(), Dense(width + 8)),
            Branches([Dense(8), Tanh()], Dense(8), merge="add"), ReLU()]


def _regressor(**kw):
    params = dict(layers=_graph_layers(), max_iter=150, learning_rate_init=0.01, batch_size=32,
                  random_state=0)
    params.update(kw)
    return NeuralNetRegressor(**params)


def test_regressor_with_a_graph_fits_predicts_and_scores():
    x, y = _data()
    reg = _regressor().fit(x[:240], y[:240])
    pred = reg.predict(x[240:])
    assert pred.shape == (60,) and pred.dtype == np.float32
    assert reg.score(x[240:], y[240:]) > 0.85
    assert reg.n_outputs_ == 1 and reg.n_iter_ <= 150
    assert [type(layer).__name__ for layer in reg.model_.layers] == [
        "Columns", "Residual", "Branches", "ReLU", "Dense"]
    # every parameter in the model's one flat buffer
    params = reg.model_.parameters()
    assert reg.model_.flat.size == sum(p.size for p in params)
    assert all(np.shares_memory(p.data, reg.model_.flat.data) for p in params)
    # the estimator's layers are templates: never built, never trained
    assert not any(layer.built for layer in reg.layers)


def test_regressor_with_a_graph_several_targets_and_float64():
    x, y = _data(200, seed=1)
    targets = np.column_stack([y, x[:, 0] - x[:, 1]])
    reg = _regressor(dtype=np.float64, max_iter=60).fit(x, targets)
    pred = reg.predict(x)
    assert pred.shape == (200, 2) and pred.dtype == np.float64 and reg.n_outputs_ == 2
    assert reg.score(x, targets) > 0.8


def test_nested_parameters_reach_into_every_container():
    reg = _regressor()
    params = reg.get_params()
    assert params["layers__0__branches__0__0__units"] == 16
    assert params["layers__0__groups"] == [[0, 3], [3, 5]]
    assert params["layers__1__layers__0__units"] == 24
    assert params["layers__2__merge"] == "add"
    reg.set_params(layers__0__branches__0__0__units=12, layers__1__layers__0__units=20,
                   layers__1__layers__2__units=20, layers__2__branches__1__0__units=8,
                   optimizer__eps=1e-7)
    assert reg.layers[0].branches[0][0].units == 12
    assert reg.layers[1].layers[0].units == 20 and reg.optimizer_options == {"eps": 1e-7}
    with pytest.raises(ValueError, match="Invalid parameter"):
        reg.set_params(layers__1__layers__0__nonsense=1)
    copy = clone(reg)
    assert copy.get_params()["layers__0__branches__0__0__units"] == 12
    assert copy.layers[0] is not reg.layers[0]
    x, y = _data(120)
    copy.set_params(max_iter=5).fit(x, y)
    assert copy.model_.layers[0].branches[0][0].weight.data.shape == (12, 3)
    assert copy.model_.layers[1].layers[0].weight.data.shape == (20, 20)


def test_a_nested_parameter_that_breaks_the_graph_names_the_fix():
    x, y = _data(60)
    reg = _regressor(max_iter=2).set_params(layers__1__layers__2__units=7)
    with pytest.raises(ValueError, match="projection shortcut"):
        reg.fit(x, y)
    assert not hasattr(reg, "model_")


def test_grid_search_over_a_parameter_inside_a_container():
    x, y = _data(160, seed=2)
    search = GridSearchCV(_regressor(max_iter=20),
                          {"layers__2__merge": ["add", "concat"],
                           "layers__1__layers__0__units": [8, 24]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x, y)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert best.model_.layers[2].merge == best.get_params()["layers__2__merge"]
    assert best.model_.layers[1].layers[0].units == best.get_params()[
        "layers__1__layers__0__units"]


def test_graph_estimators_save_load_and_warm_start(tmp_path):
    x, y = _data(120, seed=3)
    reg = _regressor(max_iter=10, warm_start=True).fit(x, y)
    path = tmp_path / "reg.fastnn"
    fastnn.save(reg, path)
    loaded = fastnn.load(path)
    np.testing.assert_array_equal(loaded.predict(x), reg.predict(x))
    before = np.array(loaded.model_.flat.data)
    loaded.fit(x, y)   # warm start: goes on from the loaded weights
    assert loaded.n_iter_ == reg.n_iter_ + 10
    assert not np.array_equal(before, loaded.model_.flat.data)
    labels = np.where(y > np.median(y), "high", "low")
    clf = NeuralNetClassifier(layers=_graph_layers(8), max_iter=30, learning_rate_init=0.01,
                              random_state=0).fit(x, labels)
    assert clf.score(x, labels) > 0.8
    np.testing.assert_allclose(clf.predict_proba(x).sum(axis=1), 1, rtol=1e-5)
