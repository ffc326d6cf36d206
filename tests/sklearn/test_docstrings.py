"""The estimators' docstrings: every constructor parameter and fitted attribute documented (and
nothing that does not exist), numpydoc's format, and Examples that run as doctests."""
import doctest
import inspect
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from numpydoc.docscrape import ClassDoc
from numpydoc.validate import validate
from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning

from fastnn.sklearn import MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor

ESTIMATORS = [MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor]
ids = [cls.__name__ for cls in ESTIMATORS]


def _section(cls, name):
    return {p.name: p for p in ClassDoc(cls)[name]}


def _public_fitted(est, fit):
    """The public attributes (``name_``) that ``fit(est)`` adds."""
    before = set(vars(est))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(est)
    return {k for k in set(vars(est)) - before if k.endswith("_") and not k.startswith("_")}


def _fits(cls):
    """Fits that between them set every fitted attribute the estimator has: each solver, with
    and without early stopping, X with feature names."""
    if cls in (MLPClassifier, NeuralNetClassifier):
        X, y = load_iris(return_X_y=True)
    else:
        X, y = make_regression(60, 4, random_state=0)
        y = y / y.std()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    if cls in (MLPClassifier, MLPRegressor):
        small = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
        settings = [dict(solver="lbfgs"), dict(solver="adam"),
                    dict(solver="sgd", early_stopping=True)]
    else:
        small = dict(max_iter=2, random_state=0)
        settings = [dict(), dict(early_stopping=True)]
    fits = [(cls(**small, **s), lambda est: est.fit(X, y)) for s in settings]
    fits.append((cls(**small), lambda est: est.fit(frame, y)))
    return fits


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_parameters_section_lists_exactly_the_constructor_parameters(cls):
    documented = _section(cls, "Parameters")
    params = cls().get_params(deep=False)
    assert set(params) - set(documented) == set(), "undocumented parameters"
    assert set(documented) - set(params) == set(), "documented parameters that do not exist"
    signature = inspect.signature(cls.__init__).parameters
    assert list(documented) == [name for name in signature if name != "self"], \
        "documented in another order than the signature's"
    for name, entry in documented.items():
        assert entry.type and "".join(entry.desc).strip(), f"{name}: type or meaning missing"
        default = re.search(r"default=(.+)$", entry.type)
        assert default, f"{name}: no default= in {entry.type!r}"
        assert eval(default.group(1), {"np": np}) == signature[name].default, \
            f"{name}: documented {default.group(0)}, the signature has {signature[name].default!r}"


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_attributes_section_lists_exactly_the_fitted_attributes(cls):
    documented = _section(cls, "Attributes")
    seen = set()
    for est, fit in _fits(cls):
        fitted = _public_fitted(est, fit)
        assert fitted - set(documented) == set(), f"undocumented fitted attributes of {est}"
        seen |= fitted
    assert set(documented) - seen == set(), "documented attributes that no fit sets"
    for name, entry in documented.items():
        assert entry.type and "".join(entry.desc).strip(), f"{name}: type or meaning missing"


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_docstring_follows_numpydoc(cls):
    errors = validate(f"fastnn.sklearn.{cls.__name__}")["errors"]
    assert errors == []
    doc = ClassDoc(cls)
    assert doc["See Also"] and doc["Notes"] and doc["Examples"]


@pytest.mark.slow
@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_examples_run_and_print_what_they_show(cls):
    (test,) = doctest.DocTestFinder(recurse=False).find(cls, cls.__name__, globs={})
    assert test.examples, "no examples"
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
    assert result.attempted == len(test.examples)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)], \
        "the examples should converge"
