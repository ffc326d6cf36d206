"""NeuralNetClassifier / NeuralNetRegressor: the estimator contract with CNN and RNN layers."""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnn.nn import GRU, Branches, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Residual
from fastnn.sklearn import MLPClassifier, NeuralNetClassifier, NeuralNetRegressor


@parametrize_with_checks([NeuralNetClassifier(max_iter=100, dtype=np.float64),
                          NeuralNetRegressor(max_iter=100, dtype=np.float64),
                          NeuralNetClassifier(layers=[Dense(32), ReLU(),
                                                      Residual(Dense(32), ReLU(), Dense(32)),
                                                      ReLU(), Branches(Dense(16), Dense(16)),
                                                      ReLU()],
                                              max_iter=100, dtype=np.float64)])
def test_sklearn_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, random_state=0, test_size=0.25)


def small_cnn():
    return [Conv2D(8, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(32), ReLU()]


def _fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def test_cnn_and_gru_on_digits(digits):
    Xtr, Xte, ytr, yte = digits
    cnn = _fit(NeuralNetClassifier(small_cnn(), input_shape=(1, 8, 8), max_iter=15, batch_size=32,
                                   learning_rate_init=3e-3, random_state=0), Xtr, ytr)
    assert cnn.score(Xte, yte) >= 0.95
    assert cnn.model_[0].filters == 8 and cnn.layers[0].built is False  # layers copied at fit
    rnn = _fit(NeuralNetClassifier([GRU(32)], input_shape=(8, 8), max_iter=15, batch_size=32,
                                   learning_rate_init=5e-3, random_state=0), Xtr, ytr)
    assert rnn.score(Xte, yte) >= 0.9
    shaped = Xte.reshape(-1, 8, 8)
    np.testing.assert_array_equal(rnn.predict(shaped), rnn.predict(Xte))


def test_reproducible_and_batch_independent_predictions(digits):
    Xtr, Xte, ytr, _ = digits
    a = _fit(NeuralNetClassifier(small_cnn(), input_shape=(1, 8, 8), max_iter=2, random_state=1),
             Xtr, ytr)
    b = _fit(NeuralNetClassifier(small_cnn(), input_shape=(1, 8, 8), max_iter=2, random_state=1),
             Xtr, ytr)
    np.testing.assert_array_equal(a.model_.flat.data, b.model_.flat.data)
    full = a.predict_proba(Xte)
    np.testing.assert_allclose(a.predict_proba(Xte[::-1]), full[::-1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.predict_proba(Xte[:3]), full[:3], rtol=1e-5, atol=1e-7)


def test_partial_fit_warm_start_and_failed_fit(digits):
    Xtr, _, ytr, _ = digits
    clf = NeuralNetClassifier(max_iter=3, random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(Xtr, ytr)
    clf.partial_fit(Xtr[:400], ytr[:400], classes=np.arange(10))
    clf.partial_fit(Xtr[400:], ytr[400:])
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2
    weights = clf.model_.flat.data.copy()
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(Xtr, ytr + 100)
    bad = Xtr.copy()
    bad[3, 3] = np.inf
    with pytest.raises(ValueError, match="infinity|NaN"):
        clf.fit(bad, ytr)
    np.testing.assert_array_equal(clf.model_.flat.data, weights)
    with pytest.raises(ValueError, match="input_shape"):
        NeuralNetClassifier(small_cnn(), input_shape=(1, 7, 7)).fit(Xtr, ytr)


def test_regressor_multi_output():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    Y = np.stack([X[:, 0] - 2 * X[:, 1], np.sin(X[:, 2])], axis=1)
    reg = _fit(NeuralNetRegressor([Dense(32), ReLU()], max_iter=150, learning_rate_init=1e-2,
                                  random_state=0), X, Y)
    assert reg.predict(X).shape == (400, 2) and reg.score(X, Y) > 0.8


def test_pipeline_grid_search_pickle(digits):
    Xtr, Xte, ytr, yte = digits
    pipe = make_pipeline(StandardScaler(), NeuralNetClassifier(max_iter=10, random_state=0))
    grid = GridSearchCV(pipe, {"neuralnetclassifier__learning_rate_init": [1e-3, 1e-2]},
                        cv=2, n_jobs=2)
    _fit(grid, Xtr, ytr)
    assert grid.best_score_ > 0.85
    restored = pickle.loads(pickle.dumps(grid.best_estimator_))
    np.testing.assert_array_equal(restored.predict(Xte), grid.best_estimator_.predict(Xte))
    assert clone(grid.best_estimator_).get_params()["neuralnetclassifier__max_iter"] == 10


def test_grid_search_on_dask_cluster(digits):
    distributed = pytest.importorskip("distributed")
    import joblib
    Xtr, _, ytr, _ = digits
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        grid = GridSearchCV(MLPClassifier(max_iter=20, learning_rate_init=0.01, random_state=0),
                            {"hidden_layer_sizes": [(16,), (32,)]}, cv=2)
        with joblib.parallel_backend("dask"):
            _fit(grid, Xtr, ytr)
    assert grid.best_score_ > 0.85 and len(grid.cv_results_["params"]) == 2


@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose_shows_accuracy_and_validation_loss_one_line_per_epoch(capsys, early_stopping):
    X, y = load_digits(return_X_y=True)
    NeuralNetClassifier([Dense(16), ReLU()], max_iter=2, verbose=1, random_state=0,
                        early_stopping=early_stopping).fit(X[:300] / 16.0, y[:300])
    out = capsys.readouterr().out.splitlines()
    epochs = [line for line in out if line.startswith("Epoch ")]
    assert len(epochs) == 2 and all("accuracy:" in line for line in epochs)
    assert all(("val_loss:" in line) == early_stopping for line in epochs)
