"""scikit-learn estimators.

``MLPClassifier`` / ``MLPRegressor`` are drop-in replacements for scikit-learn's: the same
parameters, defaults, fitted attributes and algorithm (initialisation, batch order, Adam and
Nesterov-SGD updates, L-BFGS through SciPy, stopping rules), run by fused Numba kernels that
train a whole epoch per call, or by their numba.cuda twin on a GPU. Extra parameters: ``dtype``
(float32 by default; float64 reproduces scikit-learn to rounding), ``device`` and, for the
classifier, ``class_weight``; validation loss is recorded beside the validation score.
"""
import math
import numbers
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import kernels as K
from ._kernels._dispatch import resolve_device
from .nn.training import DIVERGED, DivergenceError

_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
_SOLVERS = ("lbfgs", "sgd", "adam")
_SCHEDULES = ("constant", "invscaling", "adaptive")
_PREDICT_CHUNK = 8192
_CUDA_PREDICT_CHUNK = 16384


def _kernels():
    from ._kernels.cpu import mlp
    return mlp


def _check_param(name, value, kind, low=None, high=None, low_open=False, high_open=False,
                 options=None):
    if options is not None:
        if value not in options:
            raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
        return
    ok_type = {
        "int": isinstance(value, numbers.Integral) and not isinstance(value, bool),
        "real": isinstance(value, numbers.Real) and not isinstance(value, bool),
        "bool": isinstance(value, (bool, np.bool_)),
    }[kind]
    if not ok_type:
        raise ValueError(f"{name} must be of type {kind}, got {value!r}")
    if kind == "bool":
        return
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")


def _store_params(estimator, params):
    """Store constructor arguments under their own names, as scikit-learn requires."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


class _BaseMLP(BaseEstimator):
    """Shared implementation of the MLP estimators (not for direct use)."""

    def _validate_params(self):
        hls = self.hidden_layer_sizes
        sizes = list(hls) if hasattr(hls, "__iter__") else [hls]
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be ints, got {hls!r}")
        if any(s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hls!r}.")
        _check_param("activation", self.activation, None, options=_ACTIVATIONS)
        _check_param("solver", self.solver, None, options=_SOLVERS)
        _check_param("alpha", self.alpha, "real", 0)
        if self.batch_size != "auto":
            _check_param("batch_size", self.batch_size, "int", 1)
        _check_param("learning_rate", self.learning_rate, None, options=_SCHEDULES)
        _check_param("learning_rate_init", self.learning_rate_init, "real", 0, low_open=True)
        _check_param("power_t", self.power_t, "real", 0)
        _check_param("max_iter", self.max_iter, "int", 1)
        _check_param("shuffle", self.shuffle, "bool")
        _check_param("tol", self.tol, "real", 0)
        _check_param("warm_start", self.warm_start, "bool")
        _check_param("momentum", self.momentum, "real", 0, 1)
        _check_param("nesterovs_momentum", self.nesterovs_momentum, "bool")
        _check_param("early_stopping", self.early_stopping, "bool")
        _check_param("validation_fraction", self.validation_fraction, "real", 0, 1, high_open=True)
        _check_param("beta_1", self.beta_1, "real", 0, 1, high_open=True)
        _check_param("beta_2", self.beta_2, "real", 0, 1, high_open=True)
        _check_param("epsilon", self.epsilon, "real", 0, low_open=True)
        if self.n_iter_no_change != np.inf:
            _check_param("n_iter_no_change", self.n_iter_no_change, "int", 1)
        _check_param("max_fun", self.max_fun, "int", 1)
        if np.dtype(self.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        resolve_device(self.device)
        return sizes

    def _check_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    # -- data ------------------------------------------------------------------------------
    def _prepare_X(self, X):
        dtype = np.dtype(self.dtype)
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=dtype)
            X.sort_indices()
            return X
        return np.require(X, dtype=dtype, requirements=["C", "W"])

    def _sample_weight(self, sample_weight, X, y_raw):
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return sample_weight

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y (optionally weighted samples)."""
        return self._fit(X, y, sample_weight, incremental=False)

    @K.cpu_bound
    def _fit(self, X, y, sample_weight, incremental):
        hidden = self._validate_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X, y, y_raw = self._validate_input(X, y, incremental, reset=first_pass)
        sample_weight = self._sample_weight(sample_weight, X, y_raw)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        n_samples, n_features = X.shape
        dtype = np.dtype(self.dtype)
        units = np.array([n_features] + hidden + [y.shape[1]], dtype=np.int64)
        rng = check_random_state(self.random_state)

        # Work on a private state; attributes change only when training succeeded.
        if first_pass:
            state = self._initial_state(units, rng, dtype, y)
        else:
            state = self._current_state(units, dtype)
        X = self._prepare_X(X)
        y = np.ascontiguousarray(y, dtype=dtype)
        if self.solver == "lbfgs":
            self._fit_lbfgs(state, X, y, sample_weight)
        else:
            self._fit_stochastic(state, X, y, sample_weight, rng, incremental)
        if not np.isfinite(state["params"]).all():
            raise DivergenceError(DIVERGED)
        self._commit(state)
        return self

    def _initial_state(self, units, rng, dtype, y):
        if is_classifier(self):
            out = "softmax" if self._pending_y_type == "multiclass" else "logistic"
        else:
            out = "exp" if self.loss == "poisson" else "identity"
        factor = 2.0 if self.activation == "logistic" else 6.0
        coefs, intercepts = [], []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            intercepts.append(rng.uniform(-bound, bound, fan_out))
        params = np.concatenate([c.ravel() for c in coefs] + intercepts).astype(dtype)
        state = dict(params=params, units=units, out_activation=out, n_iter=0, t=0,
                     loss_curve=[], validation_scores=None, validation_losses=None,
                     best_validation_score=None, best_loss=np.inf, no_improvement=0,
                     optimizer=None, best_params=params.copy(), loss=None)
        if self.solver != "lbfgs" and self.early_stopping:
            state.update(validation_scores=[], validation_losses=[],
                         best_validation_score=-np.inf, best_loss=None)
        return state

    def _current_state(self, units, dtype):
        if self.coefs_[0].shape[0] != units[0] or self.n_outputs_ != units[-1]:
            raise ValueError(
                f"X has {units[0]} features and y {units[-1]} outputs, but this model was "
                f"fitted with {self.n_features_in_} features and {self.n_outputs_} outputs")
        params = np.concatenate([np.ravel(c) for c in self.coefs_]
                                + [np.ravel(b) for b in self.intercepts_]).astype(dtype)
        units = np.array([self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_],
                         dtype=np.int64)
        state = dict(params=params, units=units, out_activation=self.out_activation_,
                     n_iter=self.n_iter_, t=self.t_, loss_curve=list(getattr(self, "loss_curve_", []) or []),
                     validation_scores=None if self.validation_scores_ is None else list(self.validation_scores_),
                     validation_losses=None if getattr(self, "validation_losses_", None) is None
                     else list(self.validation_losses_),
                     best_validation_score=self.best_validation_score_,
                     best_loss=self.best_loss_, no_improvement=self._no_improvement_count,
                     optimizer=self._optimizer_state, best_params=params.copy(), loss=self.loss_)
        if state["optimizer"] is not None:
            state["optimizer"] = {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v)
                                  for k, v in state["optimizer"].items()}
        return state

    def _commit(self, state):
        units = state["units"]
        mlp = _kernels()
        w_off, b_off, _ = mlp.layout(units)
        p = state["params"]
        self.coefs_ = [p[w_off[i]:w_off[i] + units[i] * units[i + 1]].reshape(units[i], units[i + 1]).copy()
                       for i in range(len(units) - 1)]
        self.intercepts_ = [p[b_off[i]:b_off[i] + units[i + 1]].copy() for i in range(len(units) - 1)]
        self.n_layers_ = len(units)
        self.n_outputs_ = int(units[-1])
        self.out_activation_ = state["out_activation"]
        self.n_iter_ = state["n_iter"]
        self.t_ = state["t"]
        self.loss_ = state["loss"]
        self._optimizer_state = state["optimizer"]
        self._no_improvement_count = state["no_improvement"]
        if self.solver == "lbfgs":
            for name in ("loss_curve_", "best_loss_"):
                self.__dict__.pop(name, None)
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.validation_losses_ = None
        else:
            self.loss_curve_ = state["loss_curve"]
            self.best_loss_ = state["best_loss"]
            self.validation_scores_ = state["validation_scores"]
            self.validation_losses_ = state["validation_losses"]
            self.best_validation_score_ = state["best_validation_score"]
        if is_classifier(self):
            self._label_binarizer = self._pending_binarizer
            self.classes_ = self._label_binarizer.classes_

    def _loss_name(self, state):
        if is_classifier(self):
            return "binary_log_loss" if state["out_activation"] == "logistic" else "log_loss"
        return self.loss

    def _codes(self, state):
        mlp = _kernels()
        return (mlp.ACTIVATION_CODES[self.activation],
                mlp.ACTIVATION_CODES[state["out_activation"]],
                mlp.LOSS_CODES[self._loss_name(state)])

    def _fit_lbfgs(self, state, X, y, sample_weight):
        mlp = _kernels()
        units = state["units"]
        w_off, b_off, size = mlp.layout(units)
        hidden, output, loss_code = self._codes(state)
        dtype = np.dtype(self.dtype)
        Xd = _dense(X, dtype)
        n = Xd.shape[0]
        sw = np.ones(n, dtype) if sample_weight is None else sample_weight.astype(dtype)
        if resolve_device(self.device) == "cuda":
            fun = _cuda_objective(Xd, y, None if sample_weight is None else sw, units, hidden,
                                  output, loss_code, float(self.alpha))
        else:
            acts, deltas = mlp.workspace(units, n, dtype)
            part = mlp.grad_blocks(units, n, dtype)
            params = np.empty(size, dtype)
            grad = np.empty(size, dtype)

            def fun(packed):
                params[:] = packed
                loss = mlp.loss_grad(Xd, y, sw, sample_weight is not None, params, grad, units,
                                     w_off, b_off, hidden, output, loss_code,
                                     float(self.alpha), acts, deltas, part)
                return loss, grad.astype(np.float64)

        iprint = 1 if self.verbose else -1
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        if iprint >= 0:
            options["disp"] = True
        res = scipy.optimize.minimize(fun, state["params"].astype(np.float64), method="L-BFGS-B",
                                      jac=True, options=options)
        if res.status != 0:
            warnings.warn(
                "lbfgs failed to converge after %d iteration(s) (status=%d): %s. "
                "Increase the number of iterations (max_iter) or scale the data."
                % (res.nit, res.status, res.message), ConvergenceWarning)
        state["n_iter"] = min(int(res.nit), self.max_iter)
        state["loss"] = float(res.fun)
        state["params"] = res.x.astype(dtype)

    def _fit_stochastic(self, state, X, y, sample_weight, rng, incremental):
        size = state["params"].size
        dtype = np.dtype(self.dtype)
        if not incremental or state["optimizer"] is None:
            if self.solver == "adam":
                state["optimizer"] = dict(lr=float(self.learning_rate_init), t=0,
                                          m=np.zeros(size, dtype), v=np.zeros(size, dtype))
            else:
                state["optimizer"] = dict(lr=float(self.learning_rate_init), t=0,
                                          m=np.zeros(size, dtype), v=np.zeros(0, dtype))
        opt = state["optimizer"]

        early_stopping = self.early_stopping
        if early_stopping:
            stratify = y if (is_classifier(self) and y.shape[1] == 1) else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=rng, test_size=self.validation_fraction, stratify=stratify)
                sw_train = sw_val = None
            else:
                X_train, X_val, y_train, y_val, sw_train, sw_val = train_test_split(
                    X, y, sample_weight, random_state=rng, test_size=self.validation_fraction,
                    stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            X_train = self._prepare_X(X_train)
            y_train = np.ascontiguousarray(y_train)
            validation = (X_val, y_val, sw_val)
        else:
            X_train, y_train, sw_train = X, y, sample_weight
            validation = None

        n_samples = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        runner = _CUDAEpochs if resolve_device(self.device) == "cuda" else _CPUEpochs
        runner = runner(self, state, X_train, y_train, sw_train, validation, batch_size)
        sample_idx = np.arange(n_samples, dtype=np.int64)

        for _ in range(self.max_iter):
            if self.shuffle:
                sample_idx = _shuffled(sample_idx, rng)
            total = runner.epoch(sample_idx, opt)
            if not (math.isfinite(total) and runner.params_finite()):
                raise DivergenceError(DIVERGED)  # at once, not after max_iter more epochs
            state["n_iter"] += 1
            state["loss"] = total / n_samples
            state["t"] += n_samples
            state["loss_curve"].append(state["loss"])
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (state["n_iter"], state["loss"]))
            self._update_no_improvement(state, early_stopping, runner)
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                opt["lr"] = float(self.learning_rate_init) / (state["t"] + 1) ** self.power_t
            if state["no_improvement"] > self.n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                how = "improve" if early_stopping else "improve"
                msg = (f"{what} did not {how} more than tol={self.tol:f} for "
                       f"{self.n_iter_no_change} consecutive epochs.")
                if self.solver == "sgd" and self.learning_rate == "adaptive":
                    if opt["lr"] <= 1e-6:
                        if self.verbose:
                            print(msg + " Learning rate too small. Stopping.")
                        break
                    opt["lr"] /= 5.0
                    if self.verbose:
                        print(msg + " Setting learning rate to %f" % opt["lr"])
                    state["no_improvement"] = 0
                else:
                    if self.verbose:
                        print(msg + " Stopping.")
                    break
            if incremental:
                break
            if state["n_iter"] == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                              "optimization hasn't converged yet." % self.max_iter,
                              ConvergenceWarning)
        runner.finish(early_stopping)

    def _update_no_improvement(self, state, early_stopping, runner):
        if early_stopping:
            score, val_loss = runner.validation_score()
            state["validation_scores"].append(score)
            state["validation_losses"].append(val_loss)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < state["best_validation_score"] + self.tol:
                state["no_improvement"] += 1
            else:
                state["no_improvement"] = 0
            if score > state["best_validation_score"]:
                state["best_validation_score"] = score
                runner.keep_best()
        else:
            last = state["loss_curve"][-1]
            if last > state["best_loss"] - self.tol:
                state["no_improvement"] += 1
            else:
                state["no_improvement"] = 0
            if last < state["best_loss"]:
                state["best_loss"] = last

    def _validation_score(self, state, X_val, y_val, sw_val):
        mlp = _kernels()
        out = self._forward(state, X_val)
        has_sw = sw_val is not None
        sw = sw_val.astype(out.dtype) if has_sw else np.ones(1, out.dtype)
        _, _, loss_code = self._codes(state)
        val_loss = float(mlp._loss(np.ascontiguousarray(y_val, dtype=out.dtype), out, sw, has_sw,
                                   loss_code))
        if not np.isfinite(out).all():
            return np.nan, val_loss
        if is_classifier(self):
            binarizer = self._pending_binarizer
            pred = binarizer.inverse_transform(out.ravel() if out.shape[1] == 1 else out)
            truth = binarizer.inverse_transform(y_val if y_val.shape[1] > 1 else y_val.ravel())
            return float(accuracy_score(truth, pred, sample_weight=sw_val)), val_loss
        pred = out.ravel() if out.shape[1] == 1 else out
        truth = y_val.ravel() if y_val.shape[1] == 1 else y_val
        return float(r2_score(truth, pred, sample_weight=sw_val)), val_loss

    # -- prediction ------------------------------------------------------------------------
    @K.cpu_bound
    def _forward(self, state, X):
        """Output activations for X (already validated) using the parameters in ``state``."""
        mlp = _kernels()
        units = state["units"]
        w_off, b_off, _ = mlp.layout(units)
        hidden, output, _ = self._codes(state)
        dtype = state["params"].dtype
        n = X.shape[0]
        out = np.empty((n, units[-1]), dtype)
        # rows per chunk: the workspace holds every layer's activations; keep it near 16 MiB
        rows = min(n, max(64, min(_PREDICT_CHUNK, (16 << 20) // (int(units.sum()) * dtype.itemsize))))
        acts, _ = mlp.workspace(units, rows, dtype)
        nblocks = mlp.row_blocks(rows, units, passes=1)
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            chunk = X[start:stop]
            chunk = chunk.toarray() if sp.issparse(chunk) else chunk
            chunk = np.ascontiguousarray(chunk, dtype=dtype)
            out[start:stop] = mlp.forward(chunk, state["params"], units, w_off, b_off, hidden,
                                          output, acts, nblocks)
        return out

    def _state_for_predict(self):
        units = np.array([self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_], np.int64)
        dtype = np.dtype(self.coefs_[0].dtype)
        params = np.concatenate([np.ravel(c) for c in self.coefs_]
                                + [np.ravel(b) for b in self.intercepts_]).astype(dtype)
        return dict(params=params, units=units, out_activation=self.out_activation_)

    def _forward_cuda(self, state, X):
        """``_forward`` on the GPU: X copied to the device once (sparse X densified on the
        host), the output copied back once."""
        from numba import cuda
        g = _cuda_kernels()
        units = state["units"]
        w_off, b_off, _ = g.layout(units)
        hidden, output, _ = self._codes(state)
        dtype = state["params"].dtype
        x = cuda.to_device(_dense(X, dtype))
        ws = g.workspace(units, min(X.shape[0], _CUDA_PREDICT_CHUNK), dtype,
                          gather=False, train=False)
        out = g.forward(x, cuda.to_device(state["params"]), units, w_off, b_off, hidden, output,
                        ws)
        return out.copy_to_host()

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                              dtype=(np.float64, np.float32))
        X = self._prepare_X(X)
        if resolve_device(self.device) == "cuda":
            return self._forward_cuda(self._state_for_predict(), X)
        return self._forward(self._state_for_predict(), X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _shuffled(idx, rng):
    """``sklearn.utils.shuffle(idx, random_state=rng)`` (the same draws) without its per-call
    validation, which costs more than a small epoch."""
    perm = np.arange(idx.shape[0])
    rng.shuffle(perm)
    return idx[perm]


def _dense(X, dtype):
    """A C-contiguous dense array of ``dtype`` (sparse X densified on the host)."""
    return np.ascontiguousarray(X.toarray() if sp.issparse(X) else X, dtype=dtype)


def _cuda_kernels():
    from ._kernels.cuda import mlp
    return mlp


def _cuda_objective(X, y, sw, units, hidden, output, loss_code, alpha):
    """L-BFGS objective on the GPU: X, y and the weights move to the device once; each call
    uploads the parameters and reads back the loss and the gradient."""
    from numba import cuda
    g = _cuda_kernels()
    w_off, b_off, size = g.layout(units)
    dtype = X.dtype
    x_d, y_d = cuda.to_device(X), cuda.to_device(y)
    sw_d = None if sw is None else cuda.to_device(sw)
    sw_sum = float(X.shape[0]) if sw is None else float(np.sum(sw, dtype=np.float64))
    params, grad = cuda.device_array(size, dtype), cuda.device_array(size, dtype)
    ws = g.workspace(units, X.shape[0], dtype, gather=False)
    host = np.empty(size, dtype)

    def fun(packed):
        host[:] = packed
        params.copy_to_device(host)
        loss = g.loss_grad(x_d, y_d, sw_d, sw_sum, params, grad, units, w_off, b_off, hidden,
                           output, loss_code, alpha, ws)
        return loss, grad.copy_to_host().astype(np.float64)

    return fun


class _CPUEpochs:
    """Training epochs on the CPU: the fused Numba kernels update ``state["params"]`` in place."""

    def __init__(self, est, state, X_train, y_train, sw_train, validation, batch_size):
        mlp = _kernels()
        self.est, self.state, self.validation = est, state, validation
        units = state["units"]
        w_off, b_off, size = mlp.layout(units)
        hidden, output, loss_code = est._codes(state)
        dtype = np.dtype(est.dtype)
        sparse = sp.issparse(X_train)
        if sparse:
            xd = np.zeros((1, 1), dtype)
            data = X_train.data
            indices, indptr = X_train.indices.astype(np.int64), X_train.indptr.astype(np.int64)
        else:
            xd = X_train
            data, indices, indptr = np.zeros(0, dtype), np.zeros(0, np.int64), np.zeros(1, np.int64)
        has_sw = sw_train is not None
        sw = sw_train.astype(dtype) if has_sw else np.ones(1, dtype)
        self.data_args = (xd, data, indices, indptr, sparse, y_train, sw, has_sw)
        self.model_args = (units, w_off, b_off, hidden, output, loss_code)
        self.batch_size = batch_size
        self.solver = mlp.ADAM if est.solver == "adam" else mlp.SGD
        self.grad = np.empty(size, dtype)
        self.xb = np.empty((batch_size, units[0]), dtype)
        self.yb = np.empty((batch_size, units[-1]), dtype)
        self.swb = np.empty(batch_size, dtype)
        self.acts, self.deltas = mlp.workspace(units, batch_size, dtype)
        self.part = mlp.grad_blocks(units, batch_size, dtype)

    def epoch(self, sample_idx, opt):
        """One epoch over ``sample_idx``; returns the sum of batch loss times batch rows."""
        mlp, est = _kernels(), self.est
        size = self.grad.size
        if opt["m"].shape != (size,) or (self.solver == mlp.ADAM and opt["v"].shape != (size,)):
            raise ValueError(f"the optimizer state does not match the {size} parameters of the "
                             "model (a corrupted or foreign file?)")
        total, t = mlp.train_epoch(
            *self.data_args, sample_idx, self.batch_size, self.state["params"], self.grad,
            *self.model_args, float(est.alpha), self.solver, opt["lr"], float(est.momentum),
            bool(est.nesterovs_momentum), float(est.beta_1), float(est.beta_2),
            float(est.epsilon), opt["t"], opt["m"],
            opt["v"] if self.solver == mlp.ADAM else opt["m"],
            self.xb, self.yb, self.swb, self.acts, self.deltas, self.part)
        opt["t"] = t
        return total

    def validation_score(self):
        return self.est._validation_score(self.state, *self.validation)

    def keep_best(self):
        self.state["best_params"] = self.state["params"].copy()

    def params_finite(self):
        return bool(np.isfinite(self.state["params"]).all())

    def finish(self, early_stopping):
        if early_stopping:
            self.state["params"][:] = self.state["best_params"]


class _CUDAEpochs:
    """Training epochs on the GPU (``fastnn._kernels.cuda.mlp``).

    The training and validation data, the parameters and the optimizer's moments move to the
    device once; each epoch uploads the shuffled sample order and reads back one small vector
    (the epoch's loss and, with early stopping, the validation sums computed on the device).
    ``finish`` brings the parameters (the best ones with early stopping) and the moments back.
    Sparse X is densified once on the host: the device keeps a dense copy.
    """

    def __init__(self, est, state, X_train, y_train, sw_train, validation, batch_size):
        from numba import cuda
        g = _cuda_kernels()
        self.est, self.state = est, state
        units = state["units"]
        dtype = np.dtype(est.dtype)
        w_off, b_off, size = g.layout(units)
        hidden, output, loss_code = est._codes(state)
        self.model_args = (units, w_off, b_off, hidden, output, loss_code)
        self.batch_size = batch_size
        self.solver = g.ADAM if est.solver == "adam" else g.SGD
        n = X_train.shape[0]
        self.x = cuda.to_device(_dense(X_train, dtype))
        self.y = cuda.to_device(np.ascontiguousarray(y_train, dtype=dtype))
        self.sw = None if sw_train is None else cuda.to_device(sw_train.astype(dtype))
        # each batch's weight sum (float64 of the model-dtype weights, as on the CPU)
        self.sw_host = None if sw_train is None else sw_train.astype(dtype).astype(np.float64)
        self.starts = np.arange(0, n, batch_size)
        self.order = cuda.device_array(n, np.int64)
        self.params = cuda.to_device(state["params"])
        self.grad = cuda.device_array(size, dtype)
        opt = state["optimizer"]
        self.m = cuda.to_device(opt["m"])
        self.v = cuda.to_device(opt["v"]) if self.solver == g.ADAM else self.m
        self.ws = g.workspace(units, batch_size, dtype)
        self.stats = None
        self.val = None
        if validation is not None:
            self._prepare_validation(validation, dtype)

    def _prepare_validation(self, validation, dtype):
        from numba import cuda
        g = _cuda_kernels()
        X_val, y_val, sw_val = validation
        est, state = self.est, self.state
        y_val = np.ascontiguousarray(y_val, dtype=dtype)
        n_val = X_val.shape[0]
        if is_classifier(est):
            task = "multiclass" if state["out_activation"] == "softmax" else "labels"
        else:
            task = "regression"
        sw = None if sw_val is None else sw_val.astype(dtype)
        w64 = None if sw_val is None else np.asarray(sw_val, dtype=np.float64)
        self.val = dict(
            x=cuda.to_device(_dense(X_val, dtype)), y=cuda.to_device(y_val),
            sw=None if sw is None else cuda.to_device(sw),
            sw_sum=float(n_val) if sw is None else float(np.sum(sw, dtype=np.float64)),
            sw64=None if w64 is None else cuda.to_device(w64),
            w64_sum=float(n_val) if w64 is None else float(np.sum(w64)),
            task=task,
            ws=g.workspace(state["units"], n_val, dtype, gather=False, train=False),
            best=cuda.to_device(state["best_params"]))
        if task == "regression":   # the denominators of R^2 do not change during training
            w = 1.0 if w64 is None else w64[:, None]
            yv = y_val.astype(np.float64)
            self.val["ss_tot"] = np.sum(w * (yv - np.average(yv, axis=0, weights=w64)) ** 2,
                                        axis=0)

    def epoch(self, sample_idx, opt):
        """One epoch over ``sample_idx``; returns the sum of batch loss times batch rows."""
        g, est = _cuda_kernels(), self.est
        sample_idx = np.ascontiguousarray(sample_idx, dtype=np.int64)
        self.order.copy_to_device(sample_idx)
        sums = (None if self.sw is None
                else np.add.reduceat(self.sw_host[sample_idx], self.starts))
        opt["t"] = g.train_epoch(
            self.x, self.y, self.sw, sums, self.order, self.batch_size, self.params, self.grad,
            *self.model_args, float(est.alpha), self.solver, opt["lr"], float(est.momentum),
            bool(est.nesterovs_momentum), float(est.beta_1), float(est.beta_2),
            float(est.epsilon), opt["t"], self.m, self.v, self.ws)
        if self.val is not None:
            v = self.val
            units, w_off, b_off, hidden, output, loss_code = self.model_args
            g.validation(v["x"], v["y"], v["sw"], v["sw_sum"], v["sw64"], self.params, units,
                         w_off, b_off, hidden, output, loss_code, v["task"], v["ws"],
                         stats=self.ws.stats)
        self.stats = g.read_stats(self.ws)
        return float(self.stats[g.EPOCH_LOSS])

    def params_finite(self):
        from ._kernels.arrayops import sum_squares
        return math.isfinite(sum_squares(self.params))

    def validation_score(self):
        """(score, loss) on the validation set after the last epoch, as ``_validation_score``."""
        g, s, v = _cuda_kernels(), self.stats, self.val
        val_loss = float(s[g.VAL_LOSS])
        if s[g.VAL_BAD] > 0:
            return np.nan, val_loss
        if v["task"] != "regression":
            return float(s[g.VAL_CORRECT] / v["w64_sum"]), val_loss
        num, den = s[g.VAL_SSE:], v["ss_tot"]
        scores = np.ones(num.size)     # r2_score's rules for constant targets
        valid = (num != 0) & (den != 0)
        scores[valid] = 1 - num[valid] / den[valid]
        scores[(num != 0) & (den == 0)] = 0.0
        return float(np.average(scores)), val_loss

    def keep_best(self):
        self.val["best"].copy_to_device(self.params)

    def finish(self, early_stopping):
        state, opt = self.state, self.state["optimizer"]
        state["params"] = (self.val["best"] if early_stopping else self.params).copy_to_host()
        opt["m"] = self.m.copy_to_host()
        if self.solver == _cuda_kernels().ADAM:
            opt["v"] = self.v.copy_to_host()


_COMMON_DOC = """
    Parameters, defaults and fitted attributes are scikit-learn's (see its documentation);
    fastnn adds:

    dtype : {np.float32, np.float64}, default=np.float32
        Precision of the computation and of ``coefs_``/``intercepts_``.
    device : {'auto', 'cpu', 'cuda'}, default='auto'
        Where to train and predict. 'cpu': fused Numba kernels. 'cuda': their numba.cuda twin
        (every solver; the data moves to the GPU once per fit and the results come back at
        the end); raises RuntimeError without a CUDA device. 'auto': 'cuda' when a real GPU is
        present, else 'cpu'. Fitted attributes are NumPy arrays whatever the device, so a model
        fitted on a GPU pickles and, after ``set_params(device='cpu')``, predicts without one.

    Fitted attributes beyond scikit-learn's: ``validation_losses_`` (with early stopping,
    the loss on the validation set after each epoch).
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("Multi-layer perceptron classifier, a faster drop-in for scikit-learn's.\n"
               + _COMMON_DOC + """
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, multiplied into ``sample_weight`` (as in scikit-learn's
        linear models). Single-output targets only.
    """)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 class_weight=None, device="auto", dtype=np.float32):
        _store_params(self, locals())

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y_raw = y
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            binarizer = LabelBinarizer()
            binarizer.fit(y)
        else:
            binarizer = self._label_binarizer
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        if getattr(self, "_partial_binarizer", None) is not None:
            binarizer = self._partial_binarizer
        self._pending_binarizer = binarizer
        self._pending_y_type = binarizer.y_type_
        y = binarizer.transform(y).astype(bool)
        return X, y, y_raw

    def _sample_weight(self, sample_weight, X, y_raw):
        sample_weight = super()._sample_weight(sample_weight, X, y_raw)
        if self.class_weight is not None:
            if y_raw.ndim != 1:
                raise ValueError("class_weight is supported for single-output targets only")
            cw = compute_sample_weight(self.class_weight, y_raw)
            sample_weight = cw if sample_weight is None else sample_weight * cw
        return sample_weight

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); ``classes`` is required at the first call."""
        first = not hasattr(self, "classes_")
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                binarizer.fit(y)
            else:
                binarizer.fit(classes)
            self._partial_binarizer = binarizer
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={classes!r}` is not the same as on the first call to "
                             f"partial_fit, which was {self.classes_!r}")
        else:
            self._partial_binarizer = self._label_binarizer
        try:
            return self._fit(X, y, sample_weight, incremental=True)
        finally:
            self._partial_binarizer = None

    def predict(self, X):
        """Predict class labels (or label indicator rows for multilabel targets)."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def predict_proba(self, X):
        """Probability of each class, columns ordered as ``classes_``."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = "Multi-layer perceptron regressor, a faster drop-in for scikit-learn's.\n" + _COMMON_DOC

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device="auto", dtype=np.float32):
        _store_params(self, locals())

    def _validate_params(self):
        _check_param("loss", self.loss, None, options=("squared_error", "poisson"))
        return super()._validate_params()

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative y")
        return X, y, y

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predict using the multi-layer perceptron model."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred


class _BaseNeuralNet(BaseEstimator):
    """Shared implementation of the NeuralNet estimators (not for direct use)."""

    _loss = None

    def __init__(self, layers=None, input_shape=None, *, optimizer="adam",
                 learning_rate_init=0.001, batch_size="auto", max_iter=20, alpha=0.0001,
                 schedule=None, shuffle=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, random_state=None, verbose=0, warm_start=False,
                 device="auto", dtype=np.float32):
        _store_params(self, locals())

    # -- validation ------------------------------------------------------------------------
    def _validate_params(self):
        from .nn import Layer
        if self.layers is not None:
            if not isinstance(self.layers, (list, tuple)) or not all(
                    isinstance(layer, Layer) for layer in self.layers):
                raise ValueError("layers must be None or a list of fastnn.nn layers")
        _check_param("optimizer", self.optimizer, None,
                     options=("adam", "adamw", "sgd", "rmsprop", "adagrad"))
        _check_param("learning_rate_init", self.learning_rate_init, "real", 0, low_open=True)
        if self.batch_size != "auto":
            _check_param("batch_size", self.batch_size, "int", 1)
        _check_param("max_iter", self.max_iter, "int", 1)
        _check_param("alpha", self.alpha, "real", 0)
        _check_param("shuffle", self.shuffle, "bool")
        _check_param("early_stopping", self.early_stopping, "bool")
        _check_param("validation_fraction", self.validation_fraction, "real", 0, 1,
                     low_open=True, high_open=True)
        _check_param("n_iter_no_change", self.n_iter_no_change, "int", 1)
        _check_param("tol", self.tol, "real", 0)
        _check_param("warm_start", self.warm_start, "bool")
        if np.dtype(self.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        return resolve_device(self.device)

    def _shape_X(self, X, reset):
        """Validate X and reshape flat rows to ``input_shape``; returns a C-contiguous array."""
        sample_shape = None
        if isinstance(X, np.ndarray) and X.ndim > 2:  # already shaped: validate as flat rows
            sample_shape = X.shape[1:]
            X = X.reshape(len(X), -1)
        X = validate_data(self, X, reset=reset, dtype=(np.float32, np.float64))
        dtype = np.dtype(self.dtype)
        if sample_shape is not None:
            X = X.reshape((len(X),) + sample_shape)
        elif self.input_shape is not None:
            shape = tuple(int(s) for s in np.atleast_1d(self.input_shape))
            if int(np.prod(shape)) != X.shape[1]:
                raise ValueError(f"input_shape {shape} needs {int(np.prod(shape))} features per "
                                 f"row, X has {X.shape[1]}")
            X = X.reshape((X.shape[0],) + shape)
        return np.require(X, dtype=dtype, requirements=["C", "W"])

    def _build_model(self, n_outputs):
        from .nn import Dense, ReLU, Sequential
        hidden = [Dense(100), ReLU()] if self.layers is None else [layer.clone() for layer in self.layers]
        return Sequential(*hidden, Dense(n_outputs))

    def _seed(self):
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train the network on (X, y); X rows are reshaped to ``input_shape`` when given."""
        return self._fit(X, y, sample_weight, incremental=False)

    @K.cpu_bound
    def _fit(self, X, y, sample_weight, incremental, classes=None):
        import copy

        from .nn import fit as nn_fit
        from .nn.training import EarlyStopping
        device = self._validate_params()
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")
        X = self._shape_X(X, reset=first)
        y_enc, encoder = self._encode_y(X, y, first, classes)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X.reshape(len(X), -1),
                                                 dtype=np.float64)
        n = X.shape[0]
        batch_size = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        seed = self._seed()
        from .nn.optimizers import get as get_optimizer
        if first:
            model = self._build_model(self._n_outputs(encoder, y_enc))
            model.seed = seed
            model.build(X.shape[1:], dtype=X.dtype)
            optimizer, n_iter = None, 0
        else:  # a private copy (on the host): a failed fit leaves the fitted model as it was
            model, optimizer = copy.deepcopy((self.model_, self._optimizer))
            n_iter = self.n_iter_
        model.to(device)  # the optimizer state follows the parameters
        if optimizer is None or not incremental:
            optimizer = get_optimizer(self.optimizer, model, lr=self.learning_rate_init)
        callbacks = []
        epochs = 1 if incremental else self.max_iter
        split = 0.0
        if self.early_stopping and not incremental:
            if n * self.validation_fraction < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            split = self.validation_fraction
            stopper = EarlyStopping("val_loss", patience=self.n_iter_no_change,
                                    min_delta=self.tol, restore_best_weights=True)
        else:
            stopper = EarlyStopping("loss", patience=self.n_iter_no_change, min_delta=self.tol,
                                    restore_best_weights=False)
        callbacks.append(stopper)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            history = nn_fit(model, X, y_enc, loss=self._loss, optimizer=optimizer,
                             lr=self.learning_rate_init, batch_size=batch_size, epochs=epochs,
                             validation_split=split, shuffle=self.shuffle, seed=seed,
                             schedule=self.schedule, alpha=self.alpha, callbacks=callbacks,
                             metrics=(), verbose=int(self.verbose), sample_weight=sample_weight)
        from .nn import to_host
        if not np.isfinite(to_host(model.flat.data)).all():
            raise DivergenceError(DIVERGED)
        epochs_run = len(history.epoch)
        if not incremental and stopper.stopped_epoch is None and epochs_run == self.max_iter:
            warnings.warn(f"Maximum iterations ({self.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning)
        # commit
        self.model_ = model
        self._optimizer = optimizer
        self._set_encoder(encoder)
        self.n_iter_ = n_iter + epochs_run
        self.loss_curve_ = (list(self.loss_curve_) if not first else []) + list(history["loss"])
        self.loss_ = self.loss_curve_[-1]
        self.validation_losses_ = list(history["val_loss"]) if "val_loss" in history else None
        self.history_ = history
        return self

    def partial_fit(self, X, y, sample_weight=None, **kwargs):
        """One epoch over (X, y), continuing from the current weights."""
        return self._fit(X, y, sample_weight, incremental=True, **kwargs)

    # -- prediction ------------------------------------------------------------------------
    @K.cpu_bound
    def _raw_output(self, X):
        check_is_fitted(self)
        X = self._shape_X(X, reset=False)
        if X.dtype != self.model_.dtype:
            X = X.astype(self.model_.dtype)
        device = resolve_device(self.device)
        if self.model_.device != device:  # e.g. unpickled on the host, or device changed
            self.model_.to(device)
        return np.asarray(self.model_.predict(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class NeuralNetClassifier(ClassifierMixin, _BaseNeuralNet):
    """A classifier around a network of ``fastnn.nn`` layers (CNNs, RNNs, MLPs).

    ``layers``: the hidden layers (copied at fit); an output ``Dense`` with one unit per class
    is appended, trained with softmax cross-entropy. ``None`` builds ``[Dense(100), ReLU()]``.
    ``input_shape``: reshape each flat row of X, e.g. ``(1, 8, 8)`` for images or ``(8, 8)``
    for sequences; X may also arrive already shaped. Training stops after ``max_iter`` epochs,
    or when the training loss (validation loss with ``early_stopping``) has not improved by
    ``tol`` for ``n_iter_no_change`` epochs (with early stopping the best weights are restored).
    ``device``: 'cpu', 'cuda' (the model, its optimizer state and the data live on the GPU during
    fit and prediction; RuntimeError without a CUDA device) or 'auto' (a real GPU when present).
    The fitted model pickles with host arrays, so it loads on a machine without a GPU.
    """

    _loss = "cross_entropy"

    def _encode_y(self, X, y, first, classes):
        from sklearn.preprocessing import LabelEncoder
        from sklearn.utils.multiclass import check_classification_targets
        y = np.asarray(y)
        y = column_or_1d(y, warn=True) if y.ndim == 2 and y.shape[1] == 1 else y
        check_classification_targets(y)
        if y.ndim != 1:
            raise ValueError("NeuralNetClassifier supports single-output targets (y of shape "
                             f"(n_samples,)), got shape {np.shape(y)}")
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        if first:
            encoder = LabelEncoder().fit(y if classes is None else classes)
        else:
            encoder = self._encoder
            unknown = np.setdiff1d(unique_labels(y), encoder.classes_)
            if len(unknown):
                raise ValueError(f"`y` has classes not in `self.classes_` {encoder.classes_}: "
                                 f"{unknown}")
        if classes is not None:
            unknown = np.setdiff1d(unique_labels(y), encoder.classes_)
            if len(unknown):
                raise ValueError(f"`y` has classes not in `classes`: {unknown}")
        return encoder.transform(y).astype(np.int64), encoder

    @staticmethod
    def _n_outputs(encoder, y_enc):
        return len(encoder.classes_)

    def _set_encoder(self, encoder):
        self._encoder = encoder
        self.classes_ = encoder.classes_

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); ``classes`` is required at the first call."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, sample_weight, incremental=True,
                         classes=classes if not hasattr(self, "classes_") else None)

    def predict_proba(self, X):
        """Class probabilities (softmax of the network output), columns ordered as ``classes_``."""
        from . import kernels
        return np.asarray(kernels.softmax(self._raw_output(X), axis=-1))

    def predict_log_proba(self, X):
        from . import kernels
        return np.asarray(kernels.log_softmax(self._raw_output(X), axis=-1))

    def predict(self, X):
        """Class labels: the arg-max of the network output."""
        out = self._raw_output(X)
        return self.classes_[np.argmax(out, axis=1)]


class NeuralNetRegressor(RegressorMixin, _BaseNeuralNet):
    """A regressor around a network of ``fastnn.nn`` layers, trained with mean squared error.

    ``layers`` are the hidden layers (copied at fit); a linear output ``Dense`` with one unit per
    target is appended. Other parameters as in ``NeuralNetClassifier``.
    """

    _loss = "mse"

    def _encode_y(self, X, y, first, classes):
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            type_of_target(y, input_name="y", raise_unknown=True)
            y = y.astype(np.float64)
        y = column_or_1d(y, warn=True) if y.ndim == 2 and y.shape[1] == 1 else y
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity")
        y2 = y.reshape(len(y), -1).astype(self.dtype)
        if not first and y2.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y2.shape[1]} outputs, the model was fitted with "
                             f"{self.n_outputs_}")
        return np.ascontiguousarray(y2), y.ndim

    @staticmethod
    def _n_outputs(encoder, y_enc):
        return y_enc.shape[1]

    def _set_encoder(self, y_ndim):
        self._y_ndim = y_ndim
        self.n_outputs_ = int(self.model_.layers[-1].units)

    def predict(self, X):
        out = self._raw_output(X)
        return out.ravel() if self._y_ndim == 1 else out


# -- saving (fastnn.save / fastnn.load, no pickle) ------------------------------------------------
_SAVED_SCALARS = ("n_iter_", "t_", "loss_", "best_loss_", "loss_curve_", "validation_scores_",
                  "best_validation_score_", "validation_losses_", "n_features_in_", "n_layers_",
                  "n_outputs_", "out_activation_", "_no_improvement_count", "_y_ndim")


def _json_params(est):
    params = est.get_params(deep=False)
    out = {}
    for name, value in params.items():
        if name == "layers":
            continue
        if name == "dtype":
            value = np.dtype(value).name
        elif name == "random_state" and not (value is None or isinstance(value, numbers.Integral)):
            raise TypeError("only an int or None random_state can be saved; got "
                            f"{type(value).__name__}")
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[name] = value
    return out


def _labels_to_json(labels):
    labels = np.asarray(labels)
    if labels.dtype.kind in "biuf":
        return {"kind": "array", "dtype": labels.dtype.name, "values": labels.tolist()}
    if all(isinstance(v, str) for v in labels.tolist()):
        return {"kind": "str", "values": [str(v) for v in labels.tolist()]}
    raise TypeError("class labels must be numbers or strings to be saved")


def _labels_from_json(spec):
    if not isinstance(spec, dict) or not isinstance(spec.get("values"), list) or \
            not spec["values"]:
        raise ValueError("class labels must be a non-empty list")
    if spec.get("kind") == "array":
        dtype = np.dtype(str(spec.get("dtype")))
        if dtype.kind not in "biuf" or dtype.hasobject:
            raise ValueError(f"class labels must be numbers, got dtype {dtype}")
        labels = np.asarray(spec["values"], dtype=dtype)
        if labels.ndim != 1:
            raise ValueError("class labels must be a flat list")
        return labels
    if spec.get("kind") == "str" and all(isinstance(v, str) for v in spec["values"]):
        return np.asarray(spec["values"], dtype=object)
    raise ValueError(f"unknown class label kind {spec.get('kind')!r}")


def _fitted_scalars(est):
    out = {}
    for name in _SAVED_SCALARS:
        if hasattr(est, name):
            value = getattr(est, name)
            out[name] = [float(v) for v in value] if isinstance(value, list) else (
                value.item() if isinstance(value, np.generic) else value)
    if hasattr(est, "feature_names_in_"):
        out["feature_names_in_"] = [str(v) for v in est.feature_names_in_]
    return out


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _reals_or_none(v):
    return v is None or (isinstance(v, list) and all(map(_is_real, v)))


# What each saved fitted attribute must be (a file from a stranger is checked against it).
_SCALAR_CHECKS = {
    "n_iter_": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "t_": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "n_features_in_": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "n_layers_": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
    "n_outputs_": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "_no_improvement_count": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "_y_ndim": (lambda v: v in (1, 2) and _is_int(v), "1 or 2"),
    "loss_": (lambda v: v is None or _is_real(v), "a number or null"),
    "best_loss_": (lambda v: v is None or _is_real(v), "a number or null"),
    "best_validation_score_": (lambda v: v is None or _is_real(v), "a number or null"),
    "loss_curve_": (lambda v: _reals_or_none(v), "a list of numbers or null"),
    "validation_scores_": (lambda v: _reals_or_none(v), "a list of numbers or null"),
    "validation_losses_": (lambda v: _reals_or_none(v), "a list of numbers or null"),
    "out_activation_": (lambda v: v in ("identity", "logistic", "tanh", "relu", "softmax"),
                        "an activation name"),
    "feature_names_in_": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                          "a list of strings"),
}


def _restore_scalars(est, scalars):
    if not isinstance(scalars, dict):
        raise ValueError(f"the fitted attributes must be a JSON object, got "
                         f"{type(scalars).__name__}")
    for name, value in scalars.items():
        check = _SCALAR_CHECKS.get(name)
        if check is None:
            raise ValueError(f"unknown fitted attribute {name!r}")
        if not check[0](value):
            raise ValueError(f"fitted attribute {name} must be {check[1]}, got {value!r}")
        if name == "feature_names_in_":
            value = np.asarray(value, dtype=object)
        setattr(est, name, value)
    names = getattr(est, "feature_names_in_", None)
    if names is not None and len(names) != getattr(est, "n_features_in_", len(names)):
        raise ValueError(f"{len(names)} feature names for n_features_in_={est.n_features_in_}")


def _estimator_from_params(cls, config, **extra):
    """The estimator a saved state describes, its parameters validated as ``fit`` does."""
    if not isinstance(config, dict) or not isinstance(config.get("params"), dict):
        raise ValueError("the state must hold a 'params' object")
    params = dict(config["params"])
    unknown = set(params) - set(cls._get_param_names())
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)} for {cls.__name__}")
    est = cls(**params, **extra)
    try:
        est._validate_params()
    except RuntimeError:  # device='cuda' on a machine without one: loads, predicts after
        pass              # set_params(device='cpu')
    return est


def _mlp_state(self):
    check_is_fitted(self)
    config = {"params": _json_params(self), "fitted": _fitted_scalars(self)}
    arrays = {}
    for i, (c, b) in enumerate(zip(self.coefs_, self.intercepts_)):
        arrays[f"coef/{i}"] = c
        arrays[f"intercept/{i}"] = b
    opt = self._optimizer_state
    if opt is not None:
        config["optimizer"] = {"lr": opt["lr"], "t": int(opt["t"])}
        arrays["solver/m"], arrays["solver/v"] = opt["m"], opt["v"]
    if is_classifier(self):
        lb = self._label_binarizer
        config["binarizer"] = {"classes": _labels_to_json(lb.classes_), "y_type": lb.y_type_,
                               "neg_label": int(lb.neg_label), "pos_label": int(lb.pos_label)}
    return config, arrays


def _mlp_from_state(cls, config, arrays):
    est = _estimator_from_params(cls, config)
    params = est.get_params(deep=False)
    n = len([k for k in arrays if k.startswith("coef/")])
    if n < 1:
        raise ValueError("no coefficients in the file")
    try:
        est.coefs_ = [np.array(arrays[f"coef/{i}"]) for i in range(n)]
        est.intercepts_ = [np.array(arrays[f"intercept/{i}"]) for i in range(n)]
    except KeyError as err:
        raise ValueError(f"the file has no array {err.args[0]!r}") from None
    dtype = est.coefs_[0].dtype
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"coef/0 must be float32 or float64, got {dtype}")
    size = 0
    for i in range(n):
        c, b = est.coefs_[i], est.intercepts_[i]
        if c.ndim != 2 or b.shape != (c.shape[1],) or (i and c.shape[0] != est.coefs_[i - 1].shape[1]):
            raise ValueError(f"layer {i}: inconsistent coefficient shapes")
        if c.dtype != dtype or b.dtype != dtype:
            raise ValueError(f"layer {i}: coefficients must all be {dtype}, got {c.dtype} and "
                             f"{b.dtype}")
        if not (np.isfinite(c).all() and np.isfinite(b).all()):
            raise ValueError(f"layer {i}: coefficients must be finite")
        size += c.size + b.size
    _restore_scalars(est, config.get("fitted"))
    if getattr(est, "n_features_in_", est.coefs_[0].shape[0]) != est.coefs_[0].shape[0]:
        raise ValueError(f"coef/0 has {est.coefs_[0].shape[0]} rows but n_features_in_ is "
                         f"{est.n_features_in_}")
    if getattr(est, "n_layers_", n + 1) != n + 1:
        raise ValueError(f"{n} coefficient matrices but n_layers_ is {est.n_layers_}")
    if getattr(est, "n_outputs_", est.coefs_[-1].shape[1]) != est.coefs_[-1].shape[1]:
        raise ValueError(f"coef/{n - 1} has {est.coefs_[-1].shape[1]} columns but n_outputs_ "
                         f"is {est.n_outputs_}")
    est._optimizer_state = None
    if "optimizer" in config:
        opt = config["optimizer"]
        try:
            m, v = np.array(arrays["solver/m"]), np.array(arrays["solver/v"])
            lr, t = float(opt["lr"]), opt["t"]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"invalid optimizer state: {err}") from None
        adam = params.get("solver") == "adam"
        for name, a, want in (("solver/m", m, size), ("solver/v", v, size if adam else 0)):
            if a.dtype != dtype or a.shape != (want,) or not np.isfinite(a).all():
                raise ValueError(f"{name} must be {want} finite {dtype} values (one per "
                                 f"parameter), got {a.dtype} {a.shape}")
        if not (np.isfinite(lr) and lr > 0) or not isinstance(t, int) or isinstance(t, bool) \
                or t < 0:
            raise ValueError(f"invalid optimizer state: lr={lr!r}, t={t!r}")
        est._optimizer_state = dict(lr=lr, t=t, m=m, v=v)
    if is_classifier(est) != ("binarizer" in config):
        raise ValueError("a classifier's state needs its labels, a regressor's has none")
    if "binarizer" in config:
        spec = config["binarizer"]
        classes = _labels_from_json(spec["classes"])
        lb = LabelBinarizer(neg_label=spec["neg_label"], pos_label=spec["pos_label"])
        if spec["y_type"] == "multilabel-indicator":
            lb.fit(np.eye(len(classes), dtype=int))
        else:
            lb.fit(classes)
        if lb.y_type_ != spec["y_type"]:
            raise ValueError("inconsistent label description")
        est._label_binarizer = lb
        est.classes_ = lb.classes_
    return est


def _neuralnet_state(self):
    from .io import _optimizer_state, model_state
    check_is_fitted(self)
    model_config, arrays = model_state(self.model_)
    scalars, opt_arrays = _optimizer_state(self._optimizer)
    arrays.update({"solver/" + k: v for k, v in opt_arrays.items()})
    config = {"params": _json_params(self), "fitted": _fitted_scalars(self),
              "model": model_config, "optimizer": scalars,
              "has_layers": self.layers is not None}
    if is_classifier(self):
        config["classes"] = _labels_to_json(self.classes_)
    return config, arrays


def _neuralnet_from_state(cls, config, arrays):
    from sklearn.preprocessing import LabelEncoder

    from .io import _Invalid, _optimizer_from_state, model_from_state
    model_arrays = {k: v for k, v in arrays.items() if not k.startswith("solver/")}
    model = model_from_state(config["model"], model_arrays)
    if not isinstance(config.get("has_layers"), bool):
        raise ValueError("has_layers must be true or false")
    layers = [layer.clone() for layer in model.layers[:-1]] if config["has_layers"] else None
    if not isinstance(config.get("params"), dict):
        raise ValueError("the state must hold a 'params' object")
    params = dict(config["params"])
    if isinstance(params.get("input_shape"), list):
        params["input_shape"] = tuple(params["input_shape"])
    params.pop("layers", None)
    est = _estimator_from_params(cls, {"params": params}, layers=layers)
    est.model_ = model
    try:
        est._optimizer = _optimizer_from_state(
            model, config["optimizer"],
            {k[len("solver/"):]: v for k, v in arrays.items() if k.startswith("solver/")})
    except _Invalid as err:
        raise ValueError(str(err)) from None
    _restore_scalars(est, config.get("fitted"))
    if is_classifier(est) != ("classes" in config):
        raise ValueError("a classifier's state needs its classes, a regressor's has none")
    if "classes" in config:
        est._encoder = LabelEncoder()
        est._encoder.classes_ = _labels_from_json(config["classes"])
        est.classes_ = est._encoder.classes_
    return est


for _cls in (MLPClassifier, MLPRegressor):
    _cls._fastnn_state = _mlp_state
    _cls._from_fastnn_state = classmethod(_mlp_from_state)
for _cls in (NeuralNetClassifier, NeuralNetRegressor):
    _cls._fastnn_state = _neuralnet_state
    _cls._from_fastnn_state = classmethod(_neuralnet_from_state)
del _cls
