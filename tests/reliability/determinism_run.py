"""Trains every layer class, the graph containers and every MLP solver with one seed and prints
a SHA-256 of the weights, histories and predictions per case, as JSON. Run by
tests/reliability/test_determinism.py in processes with different core counts and thread
settings: ``python determinism_run.py SETTING``.

SETTING: ``default``; ``one-core`` (the process is pinned to one CPU before fastnn is imported);
``set_num_threads`` (``fastnn.set_num_threads(1)``); ``set_num_threads=N``
(``fastnn.set_num_threads(N)``: a count the user asked for, which the load of other processes
does not lower, so the run really uses N threads on a busy machine too; with
``NUMBA_NUM_THREADS=N`` in the environment N may exceed the cores); ``threadpoolctl`` (BLAS
limited to one thread around every call). Environment variables (``NUMBA_NUM_THREADS``,
``OMP_NUM_THREADS``) come from the caller. A second argument, case names separated by "|", runs
only those.

The output also gives ``threads_used``: the largest Numba thread count in force at a kernel
call inside fastnn's work (``numba.get_num_threads()`` read as each kernel is dispatched, after
fastnn has set the pool for it), so the caller can check that a multi-thread run ran on that
many threads.
"""
import contextlib
import hashlib
import json
import os
import sys
import warnings

SETTING = sys.argv[1] if len(sys.argv) > 1 else "default"
ONLY = set(sys.argv[2].split("|")) if len(sys.argv) > 2 else None  # case names, else all
if SETTING == "one-core":
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import numba  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.base import is_classifier  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import fastnn  # noqa: E402
import fastnn.nn as nn  # noqa: E402
from fastnn._kernels import _dispatch  # noqa: E402
from fastnn._kernels.cpu import _threads  # noqa: E402
from fastnn.sklearn import (MLPClassifier, MLPRegressor, NeuralNetClassifier,  # noqa: E402
                            NeuralNetRegressor)

if SETTING == "set_num_threads":
    fastnn.set_num_threads(1)
elif SETTING.startswith("set_num_threads="):
    fastnn.set_num_threads(int(SETTING.split("=", 1)[1]))

_used = {"threads": 0}  # the most Numba threads in force at a kernel call inside fastnn's work
_impl = _dispatch.CPUBackend.impl


def _observed_impl(family):
    module = _impl(family)  # follows the load and the Python threads at work, then the kernel runs
    if _threads.working():
        _used["threads"] = max(_used["threads"], numba.get_num_threads())
    return module


_dispatch.CPUBackend.impl = staticmethod(_observed_impl)


def _limits():
    if SETTING != "threadpoolctl":
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1)


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _every_layer_cnn():
    return [nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.ReLU(), nn.MaxPool2D(2),
            nn.Conv2D(6, 3, padding=1, groups=2), nn.PReLU(), nn.AvgPool2D(2),
            nn.Conv2DTranspose(3, 2, stride=2), nn.ELU(), nn.StochasticPool2D(2),
            nn.GlobalAvgPool2D(), nn.Dropout(0.2), nn.Dense(16), nn.Tanh(), nn.Dense(8),
            nn.GELU(), nn.LeakyReLU(), nn.Sigmoid()]


def _issue_cnn():
    # large enough that the weight gradients are cut into several chunks
    return [nn.Conv2D(16, 3, padding=1), nn.BatchNorm(), nn.ReLU(), nn.MaxPool2D(2),
            nn.Flatten(), nn.Dropout(0.2), nn.Dense(32), nn.ReLU()]


def _sequence(cell):
    return [nn.Conv1D(4, 3, padding=1), nn.MaxPool1D(2), nn.AvgPool1D(1), nn.Reshape((4, 6)),
            cell(5, return_sequences=True), nn.Flatten(), nn.Dense(6), nn.Softmax()]


def _temporal():
    # causal dilated convolution, a bidirectional GRU, every global pooling
    return [nn.Conv1D(6, 3, padding="causal", dilation=2), nn.ReLU(), nn.Reshape((12, 6)),
            nn.Bidirectional(nn.GRU(4, return_sequences=True)), nn.Reshape((2, 4, 12)),
            nn.GlobalMaxPool2D(), nn.Reshape((1, 2)), nn.Dense(12), nn.Reshape((3, 4)),
            nn.Conv1D(4, 2, padding="same"), nn.GlobalMaxPool1D(), nn.Reshape((2, 2)),
            nn.GlobalAvgPool1D(), nn.Dense(3), nn.Softmax()]


def _wide_recurrent(cell):
    # batch * hidden at the size where the gate kernels run in parallel
    return [cell(128), nn.Dense(8)]


def _dense():
    # products large enough to be cut into row blocks
    return [nn.Dense(256), nn.ReLU(), nn.Dense(256), nn.Sigmoid(), nn.Dense(10)]


def _tokens():
    """Embedding + LayerNorm trained with nn.fit on integer codes (both gradients large enough
    for their parallel paths: row blocks, and rows of the weight summed in parallel)."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 40, (256, 12))
    y = x[:, 0] % 4
    model = nn.Sequential(nn.Embedding(40, 48, padding_idx=0), nn.LayerNorm(), nn.Flatten(),
                          nn.Dense(4), seed=0)
    history = nn.fit(model, x, y, epochs=2, batch_size=128, seed=0)
    return _digest(model.flat.data, history["loss"], model.predict(x))


def _residual_mlp():
    # identity and projection shortcuts around products large enough for row blocks
    return [nn.Dense(256), nn.ReLU(), nn.Residual(nn.Dense(256), nn.ReLU(), nn.Dense(256)),
            nn.ReLU(), nn.Residual(nn.Dense(64), nn.Tanh(), shortcut=nn.Dense(64)),
            nn.Branches(nn.Dense(16), [nn.Dense(16), nn.Tanh()], merge="add"), nn.Dense(10)]


def _branches_cnn():
    # a residual conv block, then branches merged by concatenation along the channels
    return [nn.Conv2D(4, 3, padding=1),
            nn.Residual(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.ReLU()),
            nn.Branches([nn.Conv2D(3, 1), nn.ReLU()],
                        [nn.MaxPool2D(2), nn.Conv2D(2, 3, padding=1),
                         nn.Conv2DTranspose(2, 2, stride=2)], merge="concat"),
            nn.GlobalAvgPool2D(), nn.Dense(3)]


def _columns():
    # numeric columns through Dense, a code column through an Embedding, concatenated
    return [nn.Columns([(0, 6), (6, 7)], [nn.Dense(32), nn.ReLU()],
                       [nn.Embedding(50, 16), nn.Flatten()]), nn.LayerNorm(), nn.Dense(4)]


def _train(est, X, y, partial):
    """Fit (or partial_fit in chunks of 600 rows); returns the outputs on X."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if partial:
            kw = {"classes": np.unique(y)} if is_classifier(est) else {}
            for lo in range(0, len(X), 600):
                est.partial_fit(X[lo:lo + 600], y[lo:lo + 600], **kw)
        else:
            est.fit(X, y)
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def _neural_net(est, X, y, partial=False):
    out = _train(est, X, y, partial)
    return _digest(est.model_.flat.data, est.history_["loss"], out)


def _mlp(est, X, y, partial=False):
    out = _train(est, X, y, partial)
    return _digest(*est.coefs_, *est.intercepts_, getattr(est, "loss_curve_", [est.loss_]), out)


def cases():
    """Case name -> a function that trains and returns the digest."""
    rng = np.random.default_rng(0)
    digits = load_digits()
    Xd = (digits.data / 16.0).astype(np.float32)
    yd = digits.target
    X = rng.standard_normal((96, 2, 16, 16)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    Xc = np.repeat(np.repeat(Xd[:512].reshape(-1, 1, 8, 8), 2, axis=2), 2, axis=3)  # 16x16
    Xs = rng.standard_normal((96, 4, 12)).astype(np.float32)
    ys = rng.integers(0, 3, 96)
    Xw = rng.standard_normal((256, 3, 8)).astype(np.float32)
    codes = rng.integers(0, 50, (512, 1))
    Xt = np.hstack([rng.standard_normal((512, 6)), codes]).astype(np.float32)
    yt = (Xt[:, 0] > 0) + 2 * (codes[:, 0] % 2)
    out = {
        "every layer, 2-D": lambda: _neural_net(NeuralNetClassifier(
            _every_layer_cnn(), input_shape=(2, 16, 16), max_iter=2, batch_size=32,
            random_state=0), X, y),
        "conv, batchnorm, pool, dropout": lambda: _neural_net(NeuralNetClassifier(
            _issue_cnn(), input_shape=(1, 16, 16), max_iter=2, batch_size=128,
            random_state=0), Xc, yd[:512]),
        "dense": lambda: _neural_net(NeuralNetClassifier(
            _dense(), input_shape=(64,), max_iter=2, batch_size=256, random_state=0), Xd, yd),
    }
    out["embedding, layernorm"] = _tokens
    out["graph: residual MLP, Branches add"] = lambda: _neural_net(NeuralNetClassifier(
        _residual_mlp(), input_shape=(64,), max_iter=2, batch_size=256, random_state=0), Xd, yd)
    out["graph: residual conv, Branches concat"] = lambda: _neural_net(NeuralNetClassifier(
        _branches_cnn(), input_shape=(2, 16, 16), max_iter=2, batch_size=32, random_state=0),
        X, y)
    out["graph: Columns with an Embedding"] = lambda: _neural_net(NeuralNetClassifier(
        _columns(), input_shape=(7,), max_iter=2, batch_size=128, random_state=0), Xt, yt)
    for cell in ("SimpleRNN", "LSTM", "GRU"):
        out[f"sequence, {cell}"] = lambda cell=cell: _neural_net(NeuralNetClassifier(
            _sequence(getattr(nn, cell)), input_shape=(4, 12), max_iter=2, batch_size=32,
            random_state=0), Xs, ys)
        out[f"wide {cell}"] = lambda cell=cell: _neural_net(NeuralNetRegressor(
            _wide_recurrent(getattr(nn, cell)), input_shape=(3, 8), max_iter=1,
            batch_size=128, random_state=0), Xw, Xw[:, -1, :])
    out["temporal: causal conv, Bidirectional, global pools"] = lambda: _neural_net(
        NeuralNetClassifier(_temporal(), input_shape=(4, 12), max_iter=2, batch_size=32,
                            random_state=0), Xs, ys)
    for opt in ("sgd", "adamw", "rmsprop", "adagrad"):
        out[f"dense, {opt}"] = lambda opt=opt: _neural_net(NeuralNetClassifier(
            _dense(), input_shape=(64,), optimizer=opt, max_iter=1, batch_size=256,
            random_state=0), Xd, yd)
    out["NeuralNetClassifier partial_fit"] = lambda: _neural_net(NeuralNetClassifier(
        _dense(), input_shape=(64,), batch_size=256, random_state=0), Xd, yd, partial=True)
    for solver in ("adam", "sgd", "lbfgs"):
        out[f"MLPClassifier {solver}"] = lambda solver=solver: _mlp(MLPClassifier(
            (256, 256), solver=solver, max_iter=3, random_state=0), Xd, yd)
    out["MLPClassifier float64"] = lambda: _mlp(MLPClassifier(
        (256, 128), activation="tanh", max_iter=3, random_state=0), digits.data / 16.0, yd)
    out["MLPRegressor adam"] = lambda: _mlp(MLPRegressor(
        hidden_layer_sizes=(256, 256), max_iter=3, random_state=0), Xd, yd.astype(np.float32))
    for solver in ("sgd", "lbfgs"):
        out[f"MLPRegressor {solver}"] = lambda solver=solver: _mlp(MLPRegressor(
            hidden_layer_sizes=(256, 256), solver=solver, max_iter=3, random_state=0), Xd,
            yd.astype(np.float32))
    out["MLPClassifier partial_fit"] = lambda: _mlp(MLPClassifier(
        (256, 256), random_state=0), Xd, yd, partial=True)
    out["MLPRegressor partial_fit"] = lambda: _mlp(MLPRegressor(
        hidden_layer_sizes=(256, 256), random_state=0), Xd, yd.astype(np.float32), partial=True)
    out["NeuralNetRegressor partial_fit"] = lambda: _neural_net(NeuralNetRegressor(
        _dense(), input_shape=(64,), batch_size=256, random_state=0), Xd,
        np.eye(10, dtype=np.float32)[yd], partial=True)
    return out


def main():
    return {name: run() for name, run in cases().items() if ONLY is None or name in ONLY}


if __name__ == "__main__":
    with _limits():
        result = main()
    from fastnn._kernels.cpu._threads import max_threads
    print(json.dumps({"max_threads": max_threads(), "threads_used": _used["threads"],
                      "results": result}))
