"""MLPClassifier / MLPRegressor: scikit-learn's contract, its results, and the ecosystem."""
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import neural_network as sknn
from sklearn.base import clone
from sklearn.datasets import load_digits, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnn.sklearn import MLPClassifier, MLPRegressor

# float64 runs the same arithmetic as scikit-learn, so its strict checks (sample-weight
# equivalence to 1e-7) apply; the float32 default is checked below with float32 tolerances.
CHECKED = [
    MLPClassifier(max_iter=50, dtype=np.float64),
    MLPClassifier(max_iter=50, dtype=np.float64, solver="sgd"),
    MLPClassifier(max_iter=50, dtype=np.float64, solver="lbfgs"),
    MLPRegressor(max_iter=50, dtype=np.float64),
    MLPRegressor(max_iter=50, dtype=np.float64, solver="lbfgs"),
]


@parametrize_with_checks(CHECKED)
def test_sklearn_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, random_state=0, test_size=0.25)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("params", [
    dict(solver="adam"),
    dict(solver="sgd"),
    dict(solver="sgd", nesterovs_momentum=False, learning_rate="invscaling"),
    dict(solver="sgd", learning_rate="adaptive", n_iter_no_change=2, tol=0.5),
    dict(solver="adam", early_stopping=True),
    dict(solver="lbfgs"),
    dict(solver="adam", activation="tanh", alpha=0.01, batch_size=64),
    dict(solver="adam", activation="logistic", shuffle=False),
])
def test_classifier_matches_scikit_learn_in_float64(digits, params):
    Xtr, Xte, ytr, yte = digits
    ref = _quiet(sknn.MLPClassifier((32,), random_state=0, max_iter=15, **params).fit, Xtr, ytr)
    ours = _quiet(MLPClassifier((32,), random_state=0, max_iter=15, dtype=np.float64,
                                **params).fit, Xtr, ytr)
    assert ours.n_iter_ == ref.n_iter_
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.loss_, ref.loss_, rtol=1e-9)
    if params["solver"] != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)
        assert ours.t_ == ref.t_
    if params.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, ref.validation_scores_)
        assert ours.best_validation_score_ == ref.best_validation_score_
        assert len(ours.validation_losses_) == ours.n_iter_
    np.testing.assert_allclose(ours.predict_proba(Xte), ref.predict_proba(Xte), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("params", [dict(), dict(loss="poisson"), dict(solver="lbfgs"),
                                    dict(solver="sgd", learning_rate_init=1e-3)])
def test_regressor_matches_scikit_learn_in_float64(params):
    X, y = make_regression(200, 8, n_targets=2, random_state=0)
    y = y / y.std()
    if params.get("loss") == "poisson":
        y = np.abs(y)
    ref = _quiet(sknn.MLPRegressor(hidden_layer_sizes=(16,), random_state=1, max_iter=20, **params).fit, X, y)
    ours = _quiet(MLPRegressor(hidden_layer_sizes=(16,), random_state=1, max_iter=20, dtype=np.float64,
                               **params).fit, X, y)
    assert ours.out_activation_ == ref.out_activation_
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-6, atol=1e-8)


def test_default_dtype_follows_x_and_float32_reaches_scikit_learn_accuracy(digits):
    Xtr, Xte, ytr, yte = digits
    ref = _quiet(sknn.MLPClassifier((64,), random_state=0, max_iter=60).fit, Xtr, ytr)
    ours = _quiet(MLPClassifier((64,), random_state=0, max_iter=60).fit, Xtr, ytr)
    assert ours.coefs_[0].dtype == np.float64  # float64 X: float64, as scikit-learn
    assert ours.predict_proba(Xte).dtype == np.float64
    np.testing.assert_allclose(ours.coefs_[0], ref.coefs_[0], atol=1e-6)
    fast = _quiet(MLPClassifier((64,), random_state=0, max_iter=60).fit,
                  Xtr.astype(np.float32), ytr)
    assert fast.coefs_[0].dtype == np.float32
    assert fast.predict_proba(Xte.astype(np.float32)).dtype == np.float32
    assert abs(fast.score(Xte, yte) - ref.score(Xte, yte)) <= 0.01
    np.testing.assert_allclose(fast.coefs_[0], ref.coefs_[0], atol=2e-3)


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_float32_sample_weight_equals_repetition(Est):
    rng = np.random.RandomState(42)
    X = rng.rand(15, 30)
    y = rng.randint(0, 3, 15)
    sw = rng.randint(0, 5, 15)
    a = _quiet(Est(max_iter=30, random_state=0).fit, X, y, sample_weight=sw)
    b = _quiet(Est(max_iter=30, random_state=0).fit, X.repeat(sw, 0), y.repeat(sw))
    method = "predict_proba" if Est is MLPClassifier else "predict"
    np.testing.assert_allclose(getattr(a, method)(X), getattr(b, method)(X), rtol=1e-3, atol=1e-4)


def test_same_random_state_same_model_and_row_order_independence(digits):
    Xtr, Xte, ytr, _ = digits
    a = _quiet(MLPClassifier((20,), random_state=3, max_iter=5).fit, Xtr, ytr)
    b = _quiet(MLPClassifier((20,), random_state=3, max_iter=5).fit, Xtr, ytr)
    for u, v in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(u, v)
    full = a.predict_proba(Xte)
    perm = np.random.default_rng(0).permutation(len(Xte))
    np.testing.assert_allclose(a.predict_proba(Xte[perm]), full[perm], rtol=1e-6)
    np.testing.assert_allclose(a.predict_proba(Xte[:7]), full[:7], rtol=1e-6)


def test_sparse_fortran_readonly_and_integer_inputs(digits):
    Xtr, Xte, ytr, _ = digits
    dense = _quiet(MLPClassifier((16,), random_state=0, max_iter=3).fit, Xtr, ytr)
    sparse = _quiet(MLPClassifier((16,), random_state=0, max_iter=3).fit, sp.csr_matrix(Xtr), ytr)
    np.testing.assert_allclose(sparse.predict_proba(sp.csr_matrix(Xte)), dense.predict_proba(Xte),
                               rtol=1e-4, atol=1e-6)
    ro = np.asfortranarray(Xtr)
    ro.flags.writeable = False
    fort = _quiet(MLPClassifier((16,), random_state=0, max_iter=3).fit, ro, ytr)
    np.testing.assert_allclose(fort.coefs_[0], dense.coefs_[0], rtol=1e-5, atol=1e-6)
    ints = _quiet(MLPClassifier((16,), random_state=0, max_iter=3).fit, (Xtr * 16).astype(int), ytr)
    assert ints.predict((Xte * 16).astype(int)).shape == (len(Xte),)


def test_binary_multilabel_and_string_labels():
    X, Y = make_multilabel_classification(120, 10, n_classes=3, random_state=0)
    clf = _quiet(MLPClassifier((16,), random_state=0, max_iter=50).fit, X, Y)
    assert clf.out_activation_ == "logistic" and clf.predict(X).shape == Y.shape
    y = np.where(X[:, 0] > np.median(X[:, 0]), "yes", "no")
    clf = _quiet(MLPClassifier((16,), random_state=0, max_iter=50).fit, X, y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1
    assert set(clf.predict(X)) <= {"yes", "no"} and clf.predict_proba(X).shape == (120, 2)


def test_class_weight_shifts_decisions():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.8 * rng.normal(size=300) > 1.0).astype(int)  # about 16 % positives
    plain = _quiet(MLPClassifier((8,), random_state=0, max_iter=80).fit, X, y)
    balanced = _quiet(MLPClassifier((8,), random_state=0, max_iter=80,
                                    class_weight="balanced").fit, X, y)
    assert balanced.predict(X).mean() > plain.predict(X).mean()


def test_warm_start_partial_fit_and_convergence_warning(digits):
    Xtr, _, ytr, _ = digits
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier((16,), random_state=0, max_iter=2).fit(Xtr, ytr)
    first = clf.coefs_[0].copy()
    clf.set_params(warm_start=True)
    with pytest.warns(ConvergenceWarning):  # each call may reach max_iter, as scikit-learn's
        clf.fit(Xtr, ytr)
    # n_iter_ counts this call's epochs, t_ every sample seen (scikit-learn's counters)
    assert clf.n_iter_ == 2 and clf.t_ == 4 * len(Xtr)
    assert not np.array_equal(first, clf.coefs_[0])
    inc = MLPClassifier((16,), random_state=0)
    inc.partial_fit(Xtr[:500], ytr[:500], classes=np.arange(10))
    inc.partial_fit(Xtr[500:], ytr[500:])
    assert inc.n_iter_ == 1 and inc.t_ == len(Xtr)
    with pytest.raises(ValueError, match="classes"):
        inc.partial_fit(Xtr, np.full(len(Xtr), 42))
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


def test_failed_fit_leaves_model_unchanged(digits):
    Xtr, _, ytr, _ = digits
    clf = _quiet(MLPClassifier((16,), random_state=0, max_iter=3).fit, Xtr, ytr)
    before = [c.copy() for c in clf.coefs_]
    bad = Xtr.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(bad, ytr)
    with pytest.raises(ValueError, match="features"):
        clf.predict(Xtr[:, :5])
    clf.set_params(warm_start=True)
    with pytest.raises(ValueError, match="classes"):
        clf.fit(Xtr, ytr % 3)
    for a, b in zip(before, clf.coefs_):
        np.testing.assert_array_equal(a, b)


def test_bad_parameters_raise_clear_errors(digits):
    Xtr, _, ytr, _ = digits
    for params, match in [(dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
                          (dict(solver="newton"), "solver"), (dict(alpha=-1), "alpha"),
                          (dict(dtype=np.int32), "dtype"), (dict(device="tpu"), "device")]:
        with pytest.raises(ValueError, match=match):
            MLPClassifier(**params).fit(Xtr, ytr)


def test_pipeline_grid_search_cross_val_clone_pickle(digits):
    Xtr, Xte, ytr, yte = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier((32,), random_state=0, max_iter=30))
    scores = _quiet(cross_val_score, pipe, Xtr, ytr, cv=3)
    assert scores.mean() > 0.9
    grid = GridSearchCV(MLPClassifier(random_state=0, max_iter=20, learning_rate_init=0.01),
                        {"hidden_layer_sizes": [(16,), (32,)]}, cv=2, n_jobs=2)
    _quiet(grid.fit, Xtr, ytr)
    assert grid.best_score_ > 0.85
    model = grid.best_estimator_
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(Xte), model.predict(Xte))
    assert clone(model).get_params() == model.get_params()


def test_voting_ensemble_and_joblib_round_trip(tmp_path, digits):
    import joblib
    from sklearn.ensemble import VotingClassifier
    Xtr, Xte, ytr, yte = digits
    vote = VotingClassifier([("a", MLPClassifier((16,), random_state=0, max_iter=30)),
                             ("b", MLPClassifier((32,), random_state=1, max_iter=30))],
                            voting="soft")
    _quiet(vote.fit, Xtr, ytr)
    assert vote.score(Xte, yte) > 0.9
    joblib.dump(vote, tmp_path / "vote.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "vote.joblib").predict(Xte),
                                  vote.predict(Xte))


def test_verbose_prints_loss(capsys, digits):
    Xtr, _, ytr, _ = digits
    _quiet(MLPClassifier((8,), random_state=0, max_iter=2, verbose=1).fit, Xtr, ytr)
    assert "Iteration 2, loss = " in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predict_follows_coefs_changed_in_place_replaced_or_pickled():
    # predict reads the parameters without copying them while coefs_ / intercepts_ are still
    # the views a fit made; every other way of changing them is seen as well
    from sklearn.datasets import load_iris

    from fastnn.sklearn import MLPClassifier
    X, y = load_iris(return_X_y=True)
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0).fit(X, y)

    def reference(est):
        h = np.maximum(X @ est.coefs_[0] + est.intercepts_[0], 0)
        z = h @ est.coefs_[1] + est.intercepts_[1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    np.testing.assert_allclose(clf.predict_proba(X), reference(clf), rtol=1e-10)
    clf.coefs_[0][:] *= 2.0          # in place
    clf.intercepts_[1][0] += 3.0
    np.testing.assert_allclose(clf.predict_proba(X), reference(clf), rtol=1e-10)
    clf.coefs_[1] = clf.coefs_[1] * -1.0  # replaced
    np.testing.assert_allclose(clf.predict_proba(X), reference(clf), rtol=1e-10)
    again = pickle.loads(pickle.dumps(clf))
    again.coefs_[0][:] = 0.5          # after a pickle round trip, in place
    np.testing.assert_allclose(again.predict_proba(X), reference(again), rtol=1e-10)
