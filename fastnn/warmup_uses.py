"""``fastnn warmup``: compile the kernels a use needs once, so that later processes load them.

Numba compiles a kernel on its first call (seconds per kernel) and keeps the machine code in its
on-disk cache, where every later process finds it. A use here runs what a user's program runs,
on tiny generated data, so exactly the kernels (and code paths) that program needs compile:

- ``mlp``: ``MLPClassifier`` (two and several classes) and ``MLPRegressor`` with default settings,
  the ``adam``, ``sgd`` and ``lbfgs`` solvers, small and large batches (one thread and row blocks
  on several), ``predict``;
- ``cnn``: ``NeuralNetClassifier`` with convolution layers of the shapes that take each
  convolution path (LeNet-5's, a 3x3 stack, 8x8 digits), pooling, batch norm and dropout;
- ``rnn``: ``NeuralNetClassifier`` with ``SimpleRNN``, ``LSTM`` and ``GRU`` layers;
- ``kernels``: every public kernel of ``fastnn.kernels`` (``fastnn.warmup``).

The MLP estimators follow X's dtype (float64 unless X is float32); the ``fastnn.nn`` layers
and NeuralNet estimators compute in float32. ``dtypes`` adds the other.
"""
import time
import warnings

import numpy as np

USES = ("mlp", "cnn", "rnn", "kernels")
DEFAULT_USES = ("mlp", "cnn")
_DEFAULT_DTYPE = {"mlp": "float64", "cnn": "float32", "rnn": "float32", "kernels": "float32"}


def _mlp(dtype):
    from fastnn.sklearn import MLPClassifier, MLPRegressor
    rng = np.random.default_rng(0)
    for rows, features in ((60, 6), (256, 300)):  # one row block, then several
        X = rng.standard_normal((rows, features)).astype(dtype)
        for classes in (3, 2):
            y = np.arange(rows) % classes
            for solver in ("adam", "sgd", "lbfgs"):
                clf = MLPClassifier(solver=solver, max_iter=2, random_state=0).fit(X, y)
                clf.predict(X[:1])
        reg = MLPRegressor(max_iter=2, random_state=0).fit(X, rng.standard_normal(rows))
        reg.predict(X)
    big = rng.standard_normal((2048, 300)).astype(dtype)  # a forward pass on row blocks
    clf.predict_proba(big)


def _neuralnet(layers, input_shape, dtype, rows=64):
    from fastnn.sklearn import NeuralNetClassifier
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, int(np.prod(input_shape)))).astype(dtype)
    y = np.arange(rows) % 3
    net = NeuralNetClassifier(layers, input_shape=input_shape, max_iter=1, batch_size=32,
                              random_state=0, dtype=dtype)
    net.fit(X, y).predict(X)


def _cnn(dtype):
    from fastnn.nn import (BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU)
    _neuralnet([Conv2D(6, 5, padding=2), ReLU(), MaxPool2D(2), Conv2D(16, 5), ReLU(),
                MaxPool2D(2), Flatten(), Dense(32), ReLU()], (1, 28, 28), dtype)
    _neuralnet([Conv2D(16, 3, padding=1), BatchNorm(), ReLU(), Conv2D(32, 3, padding=1), ReLU(),
                MaxPool2D(2), Flatten(), Dropout(0.5), Dense(32), ReLU()], (3, 16, 16), dtype)
    _neuralnet([Conv2D(6, 3), ReLU(), MaxPool2D(2), Flatten(), Dense(32), ReLU()], (1, 8, 8),
               dtype)


def _rnn(dtype):
    from fastnn.nn import GRU, LSTM, Dense, ReLU, SimpleRNN
    for cell in (SimpleRNN, LSTM, GRU):
        _neuralnet([cell(16), Dense(16), ReLU()], (6, 4), dtype)
        _neuralnet([cell(16, return_sequences=True), cell(8)], (6, 4), dtype)


def _kernels(dtype):
    from fastnn._kernels.warmup import warmup
    warmup(dtypes=(dtype,), verbose=False)


_RUN = {"mlp": _mlp, "cnn": _cnn, "rnn": _rnn, "kernels": _kernels}


def warm(uses=DEFAULT_USES, dtypes=None, verbose=True, stream=None):
    """Compile (or load from the kernel cache) what each use in ``uses`` needs.

    ``dtypes``: None for each use's own dtype, else float dtypes to warm for every use.
    Returns ``{use: CompileLog}`` (what compiled, how long each compile took; an empty log
    means everything came from the cache); ``verbose`` prints a line per use.
    """
    import sys
    from fastnn._kernels.compile_log import compile_log
    stream = stream or sys.stdout
    unknown = [u for u in uses if u not in _RUN]
    if unknown:
        raise ValueError(f"unknown uses {unknown}; choose from {list(USES)}")
    logs = {}
    for use in uses:
        kinds = [np.dtype(d).name for d in (dtypes or (_DEFAULT_DTYPE[use],))]
        t0 = time.perf_counter()
        with compile_log() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: two iterations on purpose
            for d in kinds:
                _RUN[use](d)
        seconds = time.perf_counter() - t0
        logs[use] = log
        if verbose:
            top = [c for c in log if c.depth == 0]
            what = (f"compiled {len(top)} kernels ({len(log)} functions) in "
                    f"{log.total():.1f} s" if log else "everything loaded from the cache")
            print(f"fastnn warmup: {use:<8} {', '.join(kinds)}: {what}; {seconds:.1f} s in all",
                  file=stream, flush=True)
    return logs
