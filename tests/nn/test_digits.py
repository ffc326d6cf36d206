"""End-to-end training on scikit-learn's digits: a CNN, an MLP, an LSTM and a GRU.

Fixed split (``train_test_split(test_size=0.25, random_state=0)``), X scaled by 1/16, fixed seeds.
Each test prints its test accuracy and wall time (``pytest -s``). ``FASTNN_STRICT_TIMING=1``
also asserts that each training takes under a minute (leave it off on a busy machine).
"""
import os
import time

import numpy as np
import pytest

from fastnn.nn import Sequential
from fastnn.nn.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from fastnn.nn.recurrent import GRU, LSTM
from fastnn.nn.training import evaluate, fit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return train_test_split(x, y, test_size=0.25, random_state=0)


def train_and_score(name, model, shape, digits, **kwargs):
    x_train, x_test, y_train, y_test = digits
    x_train = x_train.reshape((-1,) + shape)
    x_test = x_test.reshape((-1,) + shape)
    model.build(shape)
    model.predict(x_test[:2])  # compile (or load from cache) outside the timed region
    start = time.perf_counter()
    history = fit(model, x_train, y_train, **kwargs)
    seconds = time.perf_counter() - start
    acc = evaluate(model, x_test, y_test)["accuracy"]
    print(f"\ndigits {name}: test accuracy {acc:.4f}, training {seconds:.1f} s "
          f"({len(history)} epochs)")
    if os.environ.get("FASTNN_STRICT_TIMING") == "1":
        assert seconds < 60, f"{name} took {seconds:.1f} s"
    return acc


def test_cnn(digits):
    model = Sequential(Conv2D(16, 3, padding=1), BatchNorm(), ReLU(),
                       Conv2D(32, 3, padding=1), BatchNorm(), ReLU(), MaxPool2D(2),
                       Flatten(), Dropout(0.3), Dense(10), seed=0)
    acc = train_and_score("CNN", model, (1, 8, 8), digits, epochs=12, batch_size=64, lr=4e-3,
                          optimizer="adamw", weight_decay=0.05,
                          schedule=("cosine", {"T_max": 12}), seed=0)
    assert acc >= 0.98


def test_mlp(digits):
    model = Sequential(Dense(256), ReLU(), Dropout(0.4), Dense(10), seed=0)
    acc = train_and_score("MLP", model, (64,), digits, epochs=50, batch_size=16, lr=2e-3,
                          optimizer="adamw", weight_decay=0.01,
                          schedule=("cosine", {"T_max": 50}), seed=0)
    assert acc >= 0.97


def test_lstm(digits):
    model = Sequential(LSTM(64), Dense(10), seed=0)
    acc = train_and_score("LSTM", model, (8, 8), digits, epochs=20, batch_size=32, lr=1e-2,
                          clip_norm=1.0, schedule=("cosine", {"T_max": 20}), seed=0)
    assert acc >= 0.95


def test_gru(digits):
    model = Sequential(GRU(64), Dense(10), seed=0)
    acc = train_and_score("GRU", model, (8, 8), digits, epochs=20, batch_size=32, lr=1e-2,
                          clip_norm=1.0, schedule=("cosine", {"T_max": 20}), seed=0)
    assert acc >= 0.95
