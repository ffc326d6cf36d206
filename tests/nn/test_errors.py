"""Errors that lead to the fix: they name the layer (index and class) and what to change."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

from fastnn.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, fit
from fastnn.sklearn import NeuralNetClassifier


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:60] / 16.0, y[:60]


def test_flat_image_rows_suggest_the_input_shape(digits):
    X, y = digits
    est = NeuralNetClassifier([Conv2D(4, 3), ReLU(), Flatten()], max_iter=1)
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2D\) of the Sequential.*"
                                         r"input_shape=\(1, 8, 8\)"):
        est.fit(X, y)
    assert not hasattr(est, "model_")


def test_a_dense_without_flatten_names_the_layer_that_needs_it(digits):
    X, y = digits
    est = NeuralNetClassifier([Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(2), Dense(8)],
                              input_shape=(1, 8, 8), max_iter=1)
    with pytest.raises(ValueError, match=r"add Flatten\(\) before layer 3 \(Dense\), which "
                                         r"receives per-sample shape \(4, 4, 4\)"):
        est.fit(X, y)


def test_pooling_that_leaves_nothing_names_the_layer_and_the_map():
    model = Sequential(Conv2D(4, 3), MaxPool2D(2), MaxPool2D(2), MaxPool2D(2), Flatten())
    with pytest.raises(ValueError, match=r"layer 3 \(MaxPool2D\).*leave a 1x1 map, smaller "
                                         r"than the window"):
        model.forward(np.zeros((2, 1, 8, 8), np.float32))
    assert not model.built


def test_other_layer_errors_keep_their_type_and_gain_the_layer():
    model = Sequential(Dense(4), ReLU(), Conv2D(2, 3))
    with pytest.raises(ValueError, match=r"layer 2 \(Conv2D\) of the Sequential, given "
                                         r"per-sample shape \(4,\).*Reshape to \(C, H, W\)"):
        fit(model, np.zeros((8, 5), np.float32), np.zeros(8, np.int64), epochs=1)
