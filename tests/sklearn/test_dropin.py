"""The MLP drop-ins side by side with scikit-learn's: the same call on both, the same outcome
(values, attributes, counters, dtypes, warnings, error types and messages)."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.utils._param_validation import InvalidParameterError

from fastnn.sklearn import MLPClassifier, MLPRegressor, NeuralNetClassifier

PAIRS = [(SkMLPClassifier, MLPClassifier), (SkMLPRegressor, MLPRegressor)]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16, y[:600]


def _both(call):
    """``call(cls)`` on scikit-learn's classifier and on fastnn's: (result or error, warnings)."""
    out = []
    for cls in (SkMLPClassifier, MLPClassifier):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = call(cls)
            except Exception as err:  # noqa: BLE001 - the type and message are compared
                result = (type(err), str(err))
        out.append((result, [(w.category, str(w.message)) for w in caught]))
    return out


def _same(call):
    sk, ours = _both(call)
    assert sk == ours


def test_lbfgs_warm_start_fits_twice(digits):
    X, y = digits

    def call(cls):
        m = cls(hidden_layer_sizes=(10,), solver="lbfgs", warm_start=True, max_iter=5,
                random_state=0)
        m.fit(X, y)
        m.fit(X, y)
        return m.n_iter_, m.t_
    _same(call)


def test_warm_start_counts_iterations_per_call_and_warns_each_time(digits):
    X, y = digits

    def call(cls):
        m = cls(hidden_layer_sizes=(10,), warm_start=True, max_iter=3, random_state=0, tol=0)
        m.fit(X, y)
        first = (m.n_iter_, m.t_)
        m.fit(X, y)
        return first, m.n_iter_, m.t_, len(m.loss_curve_)
    _same(call)


def test_partial_fit_counters_and_classes_checks(digits):
    X, y = digits

    def counters(cls):
        m = cls(hidden_layer_sizes=(10,), random_state=0)
        m.partial_fit(X, y, classes=np.unique(y))
        first = (m.n_iter_, m.t_)
        m.partial_fit(X, y)
        return first, m.n_iter_, m.t_, len(m.loss_curve_)
    _same(counters)
    _same(lambda cls: cls(hidden_layer_sizes=(5,)).partial_fit(X, y, classes=[2]))
    _same(lambda cls: cls(hidden_layer_sizes=(5,)).partial_fit(X, y, classes=np.unique(y))
          .partial_fit(X, y, classes=[0, 1]))
    _same(lambda cls: cls(hidden_layer_sizes=(5,)).partial_fit(X, y))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_dtypes_follow_x_as_in_scikit_learn(digits, dtype):
    X, y = digits
    Xd = (X * 16).astype(dtype)

    def call(cls):
        m = cls(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(Xd, y)
        return (m.coefs_[0].dtype, m.intercepts_[0].dtype, m.predict_proba(Xd).dtype,
                m.predict_proba(Xd.astype(np.float64)).dtype, m.predict(Xd).dtype)
    _same(call)


def test_float32_can_still_be_forced_on_float64_data(digits):
    X, y = digits
    m = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, y)
    assert m.coefs_[0].dtype == np.float32
    assert m.predict_proba(X).dtype == np.float32  # a forced dtype holds for the outputs too


@pytest.mark.parametrize("params", [
    dict(alpha=-1), dict(learning_rate_init=float("nan")), dict(solver="newton"),
    dict(activation="swish"), dict(batch_size=0), dict(momentum=2.0), dict(max_iter=0),
    dict(validation_fraction=1.0), dict(beta_1=1.0), dict(epsilon=0), dict(tol=-1),
    dict(hidden_layer_sizes=(0,)), dict(learning_rate="sometimes"), dict(shuffle="yes"),
])
def test_invalid_parameters_raise_scikit_learns_errors(digits, params):
    X, y = digits
    (sk, _), (ours, _) = _both(lambda cls: cls(**params).fit(X, y))
    assert sk == ours and issubclass(ours[0], ValueError)


def test_regressor_loss_parameter_is_validated_as_scikit_learn_does(digits):
    X, y = digits
    errors = []
    for cls in (SkMLPRegressor, MLPRegressor):
        with pytest.raises(InvalidParameterError) as err:
            cls(loss="huber").fit(X, y.astype(float))
        errors.append(str(err.value))
    assert errors[0] == errors[1]


def test_neuralnet_parameters_are_checked_by_the_same_machinery(digits):
    X, y = digits
    with pytest.raises(InvalidParameterError, match="'learning_rate_init' parameter of "
                                                    "NeuralNetClassifier"):
        NeuralNetClassifier(learning_rate_init=-1).fit(X, y)


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_the_same_fitted_attributes_after_each_kind_of_fit(digits, solver, early_stopping):
    X, y = digits

    def call(cls):
        m = cls(hidden_layer_sizes=(5,), solver=solver, max_iter=3, random_state=0,
                early_stopping=early_stopping).fit(X, y)
        names = {k for k in vars(m) if k.endswith("_") and not k.startswith("_")}
        return names - {"validation_losses_"}  # fastnn's one documented addition
    _same(call)


@pytest.mark.parametrize("labels", [(0, 1), (False, True), ("a", "b")])
def test_early_stopping_with_a_class_of_one_member_fails_as_scikit_learn_fails(labels):
    """The stratified split's error names the binarized class as scikit-learn does ('True')."""
    X = np.random.default_rng(0).standard_normal((40, 3))
    y = np.array([labels[0]] * 39 + [labels[1]])

    def call(cls):
        return cls(hidden_layer_sizes=(4,), early_stopping=True, max_iter=2).fit(X, y)
    sk, ours = _both(call)
    assert sk == ours
    assert sk[0][0] is ValueError and "['True']" in sk[0][1]


def test_ctrl_c_keeps_the_epochs_trained_so_far(digits, monkeypatch):
    from fastnn.sklearn import _epochs
    X, y = digits
    real = _epochs._CPUEpochs.epoch
    calls = []

    def interrupted(self, sample_idx, opt):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, sample_idx, opt)

    monkeypatch.setattr(_epochs._CPUEpochs, "epoch", interrupted)
    m = MLPClassifier(hidden_layer_sizes=(5,), max_iter=50, random_state=0, device="cpu")
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        m.fit(X, y)
    assert m.n_iter_ == 2 and len(m.loss_curve_) == 2
    assert m.predict(X).shape == (len(X),)


def _failures(X, y):
    """Calls that fail on a fitted estimator, each in a different place (a diverging fit:
    test_reliability.py::test_estimators_raise_scikit_learns_error_and_keep_a_fitted_model)."""
    return {
        # a fresh fit on other features that fails after n_features_in_ is reset
        "features": lambda m: m.set_params(early_stopping=True,
                                           validation_fraction=0.001).fit(X[:, :10], y),
        "nan target": lambda m: m.fit(X, np.where(np.arange(len(y)) == 3, np.nan, y)),
        "bad parameter": lambda m: m.set_params(alpha=-1).fit(X, y),
        "partial_fit classes": lambda m: m.partial_fit(X, y, classes=[0, 1]),
        "warm start features": lambda m: m.set_params(warm_start=True).fit(X[:, :10], y),
    }


@pytest.mark.parametrize("cls", [MLPClassifier, NeuralNetClassifier])
def test_a_failed_fit_leaves_a_fitted_estimator_exactly_as_it_was(digits, cls):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = cls(max_iter=3, random_state=0).fit(X, y)
    proba = fitted.predict_proba(X)
    params = fitted.get_params()
    for what, fail in _failures(X, y).items():
        before = dict(vars(fitted))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises((ValueError, FloatingPointError), match=""):
                try:
                    fail(fitted)
                except (ValueError, FloatingPointError):
                    raise
                else:
                    pytest.fail(f"{what}: did not fail")
        fitted.set_params(**params)
        assert set(vars(fitted)) == set(before), what
        assert fitted.n_features_in_ == X.shape[1], what
        np.testing.assert_array_equal(fitted.predict_proba(X), proba, err_msg=what)


# -- NeuralNet estimators: what a skorch user expects ---------------------------------------------

def _cnn(**params):
    import fastnn.nn as nn
    return NeuralNetClassifier([nn.Conv2D(4, 3), nn.ReLU(), nn.Flatten()], input_shape=(1, 8, 8),
                               max_iter=2, random_state=0, **params)


def test_nested_parameters_reach_layers_and_the_optimizer(digits):
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    X, y = digits
    X = X.astype(np.float32)
    est = _cnn(optimizer="sgd", optimizer_options={"momentum": 0.9})
    params = est.get_params()
    assert params["layers__0__filters"] == 4 and params["optimizer__momentum"] == 0.9
    assert "layers__0__filters" not in est.get_params(deep=False)
    changed = clone(est).set_params(layers__0__filters=8, optimizer__momentum=0.5)
    assert changed.layers[0].filters == 8 and est.layers[0].filters == 4  # no shared layers
    assert changed.optimizer_options == {"momentum": 0.5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = GridSearchCV(est, {"layers__0__filters": [2, 4], "optimizer__momentum": [0.5, 0.9]},
                            cv=2).fit(X[:300], y[:300])
    assert set(grid.best_params_) == {"layers__0__filters", "optimizer__momentum"}
    assert grid.best_estimator_.model_.layers[0].filters == grid.best_params_["layers__0__filters"]
    with pytest.raises(ValueError, match="layers has 3 layers"):
        est.set_params(layers__7__filters=2)
    with pytest.raises(ValueError, match="valid: "):
        est.set_params(layers__0__colour=2)


def test_unknown_parameters_name_the_estimator():
    from fastnn.sklearn import NeuralNetRegressor
    for cls in (NeuralNetClassifier, NeuralNetRegressor):
        with pytest.raises(TypeError, match=f"{cls.__name__}.__init__"):
            cls(hidden_layer_sizes=(3,))


def test_class_weight_multiplies_the_sample_weights(digits):
    X, y = digits
    X = X.astype(np.float32)
    weights = {c: (3.0 if c == 0 else 1.0) for c in range(10)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = NeuralNetClassifier(max_iter=2, random_state=0, class_weight=weights).fit(X, y)
        b = NeuralNetClassifier(max_iter=2, random_state=0).fit(
            X, y, sample_weight=np.where(y == 0, 3.0, 1.0))
        balanced = NeuralNetClassifier(max_iter=2, random_state=0, class_weight="balanced")
        balanced.fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-5, atol=1e-6)
    assert balanced.predict(X).shape == y.shape


def test_callbacks_run_inside_fit(digits):
    import fastnn.nn as nn
    X, y = digits
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        NeuralNetClassifier(max_iter=3, random_state=0, callbacks=[
            nn.LambdaCallback(lambda epoch, logs: seen.append((epoch, "loss" in logs)))]).fit(X, y)
    assert seen == [(0, True), (1, True), (2, True)]


def test_nested_parameters_and_class_weights_survive_save_and_load(digits):
    import io

    import fastnn
    X, y = digits
    X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _cnn(optimizer="sgd", optimizer_options={"momentum": 0.5},
                   class_weight={0: 2.0, 3: 0.5}).fit(X, y)
    buf = io.BytesIO()
    fastnn.save(est, buf)
    buf.seek(0)
    loaded = fastnn.load(buf)
    assert loaded.class_weight == {0: 2.0, 3: 0.5}
    assert loaded.get_params()["optimizer__momentum"] == 0.5
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


# -- scikit-learn's own checks on the default instances -------------------------------------------

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn.sklearn import NeuralNetRegressor  # noqa: E402


def _excused(estimator):
    # The NeuralNet estimators compute in float32 by default (their documented dtype); the
    # sample-weight equivalence checks compare at 1e-7, so they run on a float64 instance below.
    if isinstance(estimator, (NeuralNetClassifier, NeuralNetRegressor)) and \
            estimator.dtype == np.float32:
        return {"check_sample_weight_equivalence_on_dense_data": "float32 by default"}
    return {}


@parametrize_with_checks([MLPClassifier(), MLPRegressor(), NeuralNetClassifier(),
                          NeuralNetRegressor()], expected_failed_checks=_excused)
def test_default_instances_pass_scikit_learns_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


@pytest.mark.parametrize("cls", [NeuralNetClassifier, NeuralNetRegressor])
def test_sample_weight_equivalence_at_float64(cls):
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_sample_weight_equivalence_on_dense_data(cls.__name__, cls(dtype=np.float64))


@pytest.mark.parametrize("params", [
    dict(solver="sgd", learning_rate="adaptive"), dict(solver="sgd", learning_rate="invscaling"),
    dict(solver="sgd", learning_rate="constant"), dict(solver="adam")])
def test_the_learning_rate_rules_are_scikit_learns(params, capsys):
    """``fastnn.sklearn._optimizer.Solver`` against scikit-learn's own optimizer objects: the
    same learning rates after each epoch and each stall, the same stop decisions and messages."""
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

    from fastnn.sklearn._optimizer import Solver, SolverState
    est = MLPClassifier(learning_rate_init=0.01, power_t=0.4, **params)
    ours = Solver(est, SolverState.new(est.solver, 2, np.float64, 0.01))
    if est.solver == "sgd":
        ref = SGDOptimizer([np.zeros(2)], learning_rate_init=0.01,
                           lr_schedule=est.learning_rate, power_t=0.4)
    else:
        ref = AdamOptimizer([np.zeros(2)], learning_rate_init=0.01)
    for epoch in range(12):
        ref.iteration_ends(epoch * 100)
        ours.iteration_ends(epoch * 100)
        assert ours.learning_rate == ref.learning_rate
        if epoch % 3 == 2:
            expected = ref.trigger_stopping("stalled.", True)
            said = capsys.readouterr().out
            assert ours.trigger_stopping("stalled.", True) == expected
            assert capsys.readouterr().out == said
            assert ours.learning_rate == ref.learning_rate
