"""MLPClassifier and MLPRegressor: scikit-learn's multi-layer perceptrons, run by fused kernels."""
import contextlib
import dataclasses
import math
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .. import kernels as K
from .._kernels._dispatch import resolve_device
from ..nn.training import DIVERGED, DivergenceError
from .._kernels import mlp as kmlp
from ._common import (_CUDA_PREDICT_CHUNK, _PREDICT_CHUNK, FASTNN_CONSTRAINTS, _shuffled,
                      unchanged_on_failure)
from ._epochs import _CPUEpochs, _CUDAEpochs, _cuda_objective, _model
from ._optimizer import Solver, SolverState

# a forward pass of at least this many multiply-adds (about 0.1 ms) runs inside cpu_work()
_OWN_POOLS_MACS = 1 << 20


def _copy_list(values):
    return None if values is None else list(values)


def _set_init_args(est, args):
    """The body of every estimator's ``__init__``: each argument stored unchanged under its own
    name (scikit-learn's convention); ``args`` is the ``locals()`` of ``__init__``, taken
    before anything else."""
    for name, value in args.items():
        if name != "self":
            setattr(est, name, value)


def _numpydoc(summary, *, parameters, attributes, see_also, notes, examples):
    """A class docstring from its summary and numpydoc sections (indented text blocks)."""
    sections = [("Parameters", parameters), ("Attributes", attributes), ("See Also", see_also),
                ("Notes", notes), ("Examples", examples)]
    return summary.rstrip() + "\n" + "".join(
        f"\n    {title}\n    {'-' * len(title)}\n{body.lstrip(chr(10)).rstrip()}\n"
        for title, body in sections) + "    "



@dataclasses.dataclass
class FitState:
    """What one fit works on, privately: the estimator's attributes change only when it succeeded
    (``_commit``). ``params``: the flat parameters (``kmlp.layout`` of ``units``); ``binarizer``:
    the classifier's label binarizer of this fit (None for a regressor and for ``predict``);
    ``optimizer``: the stochastic solver's ``SolverState``; the others become the fitted
    attributes of the same names (``n_iter_``, ``loss_curve_``, ...); ``best_params``: the
    parameters of the best validation score (early stopping)."""

    params: np.ndarray
    units: np.ndarray
    out_activation: str
    binarizer: object = None
    n_iter: int = 0
    t: int = 0
    loss: float = None
    optimizer: SolverState = None
    no_improvement: int = 0
    loss_curve: list = dataclasses.field(default_factory=list)
    best_loss: float = np.inf
    validation_scores: list = None
    validation_losses: list = None
    best_validation_score: float = None
    best_params: np.ndarray = None

class _BaseMLP(BaseEstimator):
    """Shared implementation of the MLP estimators (not for direct use)."""

    def _fastnn_params(self):
        """The checks scikit-learn makes in ``fit`` beyond ``_parameter_constraints``, and those of
        fastnn's own parameters; returns the hidden layer sizes as a list."""
        hidden = self.hidden_layer_sizes
        if not hasattr(hidden, "__iter__"):
            hidden = [hidden]
        hidden = list(hidden)
        if np.any(np.array(hidden) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        if self.dtype is not None and np.dtype(self.dtype) not in (np.dtype(np.float32),
                                                                    np.dtype(np.float64)):
            raise ValueError(f"dtype must be None, float32 or float64, got {self.dtype!r}")
        resolve_device(self.device)
        return hidden

    def _check_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    # -- data ------------------------------------------------------------------------------
    def _compute_dtype(self, X):
        """scikit-learn's rule by default (``dtype=None``): X's float dtype (validated X is
        float32 or float64); ``dtype=np.float32`` forces float32."""
        return np.dtype(X.dtype) if self.dtype is None else np.dtype(self.dtype)

    @staticmethod
    def _prepare_X(X, dtype):
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=dtype)
            X.sort_indices()
            return X
        # C order and the compute dtype; an X that has them (a read-only memory map too) is
        # used in place: the kernels only read it
        return np.require(X, dtype=dtype, requirements=["C"])

    def _sample_weight(self, sample_weight, X, y_raw):
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return sample_weight

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y (optionally weighted samples)."""
        return self._fit(X, y, sample_weight, incremental=False)

    @unchanged_on_failure
    @K.cpu_bound
    def _fit(self, X, y, sample_weight, incremental):
        self._validate_params()  # scikit-learn's, from _parameter_constraints
        hidden = self._fastnn_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        # binarizer: the classifier's label binarizer for this fit (None for a regressor)
        X, y, y_raw, binarizer = self._validate_input(X, y, incremental, reset=first_pass)
        sample_weight = self._sample_weight(sample_weight, X, y_raw)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        n_samples, n_features = X.shape
        dtype = self._compute_dtype(X)
        units = np.array([n_features] + hidden + [y.shape[1]], dtype=np.int64)
        rng = check_random_state(self.random_state)

        # Work on a private state; attributes change only when training succeeded.
        if first_pass:
            state = self._initial_state(units, rng, dtype, y, binarizer)
        else:
            state = self._current_state(units, dtype, binarizer)
        X = self._prepare_X(X, dtype)
        y = np.ascontiguousarray(y, dtype=dtype)
        if self.solver == "lbfgs":
            self._fit_lbfgs(state, X, y, sample_weight)
        else:
            self._fit_stochastic(state, X, y, sample_weight, rng, incremental)
        if not np.isfinite(state.params).all():
            raise DivergenceError(DIVERGED)
        self._commit(state)
        return self

    def _initial_state(self, units, rng, dtype, y, binarizer):
        if is_classifier(self):
            out = "softmax" if binarizer.y_type_ == "multiclass" else "logistic"
        else:
            out = "exp" if self.loss == "poisson" else "identity"
        factor = 2.0 if self.activation == "logistic" else 6.0
        coefs, intercepts = [], []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            intercepts.append(rng.uniform(-bound, bound, fan_out))
        params = np.concatenate([c.ravel() for c in coefs] + intercepts).astype(dtype)
        state = FitState(params=params, units=units, out_activation=out, binarizer=binarizer,
                         best_params=params.copy())
        if self.solver != "lbfgs" and self.early_stopping:
            state.validation_scores, state.validation_losses = [], []
            state.best_validation_score, state.best_loss = -np.inf, None
        return state

    def _current_state(self, units, dtype, binarizer):
        if self.coefs_[0].shape[0] != units[0] or self.n_outputs_ != units[-1]:
            raise ValueError(
                f"X has {units[0]} features and y {units[-1]} outputs, but this model was "
                f"fitted with {self.n_features_in_} features and {self.n_outputs_} outputs")
        params = self._flat_params(dtype)
        units = np.array([self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_],
                         dtype=np.int64)
        solver = self._optimizer_state
        if isinstance(solver, dict):   # pickled by a fastnn that kept it as a dict
            solver = SolverState(**solver)
        return FitState(params=params, units=units, out_activation=self.out_activation_,
                        binarizer=binarizer, n_iter=self.n_iter_, t=self.t_,
                        loss_curve=list(getattr(self, "loss_curve_", None) or []),
                        validation_scores=_copy_list(getattr(self, "validation_scores_", None)),
                        validation_losses=_copy_list(getattr(self, "validation_losses_", None)),
                        best_validation_score=getattr(self, "best_validation_score_", None),
                        best_loss=getattr(self, "best_loss_", np.inf),
                        no_improvement=self._no_improvement_count,
                        optimizer=None if solver is None else solver.astype(dtype),
                        loss=self.loss_, best_params=params.copy())

    def _commit(self, state):
        units = state.units
        w_off, b_off, _ = kmlp.layout(units)
        # one copy of the parameters, of which coefs_ and intercepts_ are views: predict reads
        # it as it is (``_packed_params``), and a user's in-place change of coefs_ lands in it
        p = state.params.copy()
        self.coefs_ = [p[w_off[i]:w_off[i] + units[i] * units[i + 1]].reshape(units[i], units[i + 1])
                       for i in range(len(units) - 1)]
        self.intercepts_ = [p[b_off[i]:b_off[i] + units[i + 1]] for i in range(len(units) - 1)]
        self._packed = (p, tuple(self.coefs_) + tuple(self.intercepts_))
        self.n_layers_ = len(units)
        self.n_outputs_ = int(units[-1])
        self.out_activation_ = state.out_activation
        self.n_iter_ = state.n_iter
        self.t_ = state.t
        self.loss_ = state.loss
        self._optimizer_state = state.optimizer
        self._no_improvement_count = state.no_improvement
        if self.solver == "lbfgs":  # scikit-learn sets none of these for lbfgs
            for name in ("loss_curve_", "best_loss_", "validation_scores_",
                         "best_validation_score_", "validation_losses_"):
                self.__dict__.pop(name, None)
        else:
            self.loss_curve_ = state.loss_curve
            self.best_loss_ = state.best_loss
            self.validation_scores_ = state.validation_scores
            self.validation_losses_ = state.validation_losses
            self.best_validation_score_ = state.best_validation_score
        if is_classifier(self):
            self._label_binarizer = state.binarizer
            self.classes_ = self._label_binarizer.classes_

    def _loss_name(self, state):
        if is_classifier(self):
            return "binary_log_loss" if state.out_activation == "logistic" else "log_loss"
        return self.loss

    def _codes(self, state):
        return (kmlp.ACTIVATION_CODES[self.activation],
                kmlp.ACTIVATION_CODES[state.out_activation],
                kmlp.LOSS_CODES[self._loss_name(state)])

    def _fit_lbfgs(self, state, X, y, sample_weight):
        m = _model(self, state)
        dtype = state.params.dtype
        Xd = kmlp.dense(X, dtype)
        n = Xd.shape[0]
        sw = None if sample_weight is None else sample_weight.astype(dtype)
        if resolve_device(self.device) == "cuda":
            fun = _cuda_objective(Xd, y, sw, m, float(self.alpha))
        else:
            ws = kmlp.workspace(m, n, dtype, "batch", "cpu")
            params = np.empty(m.size, dtype)
            grad = np.empty(m.size, dtype)

            def fun(packed):
                params[:] = packed
                loss = kmlp.loss_grad(Xd, y, sw, params, grad, m, float(self.alpha), ws)
                return loss, grad.astype(np.float64)

        iprint = 1 if self.verbose else -1
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        if iprint >= 0:
            options["disp"] = True
        res = scipy.optimize.minimize(fun, state.params.astype(np.float64), method="L-BFGS-B",
                                      jac=True, options=options)
        state.n_iter = _check_optimize_result("lbfgs", res, self.max_iter)  # scikit-learn's
        state.loss = float(res.fun)
        state.params = res.x.astype(dtype)

    def _fit_stochastic(self, state, X, y, sample_weight, rng, incremental):
        size = state.params.size
        dtype = state.params.dtype
        if not incremental or state.optimizer is None:
            state.optimizer = SolverState.new(self.solver, size, dtype, self.learning_rate_init)
        opt = state.optimizer

        early_stopping = self.early_stopping
        if early_stopping:
            # scikit-learn stratifies on the binarized labels (bool): its error names 'True'
            stratify = y.astype(bool) if (is_classifier(self) and y.shape[1] == 1) else None
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
            X_train = self._prepare_X(X_train, dtype)
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

        try:
            self._epochs(state, runner, opt, sample_idx, n_samples, rng, early_stopping,
                         incremental)
        except KeyboardInterrupt:  # as scikit-learn: keep what was trained so far
            warnings.warn("Training interrupted by user.")
        runner.finish(early_stopping)

    def _epochs(self, state, runner, opt, sample_idx, n_samples, rng, early_stopping,
                incremental):
        state.n_iter = 0  # n_iter_ counts the epochs of this call, t_ every sample seen
        solver = Solver(self, opt)
        for _ in range(self.max_iter):
            if self.shuffle:
                sample_idx = _shuffled(sample_idx, rng)
            total = runner.epoch(sample_idx, opt)
            if not (math.isfinite(total) and runner.params_finite()):
                raise DivergenceError(DIVERGED)  # at once, not after max_iter more epochs
            state.n_iter += 1
            state.loss = total / n_samples
            state.t += n_samples
            state.loss_curve.append(state.loss)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (state.n_iter, state.loss))
            self._update_no_improvement(state, early_stopping, runner)
            solver.iteration_ends(state.t)
            if state.no_improvement > self.n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                msg = (f"{what} did not improve more than tol={self.tol:f} for "
                       f"{self.n_iter_no_change} consecutive epochs.")
                if solver.trigger_stopping(msg, self.verbose):
                    break
                state.no_improvement = 0
            if incremental:
                break
            if state.n_iter == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                              "optimization hasn't converged yet." % self.max_iter,
                              ConvergenceWarning)

    def _update_no_improvement(self, state, early_stopping, runner):
        if early_stopping:
            score, val_loss = runner.validation_score()
            state.validation_scores.append(score)
            state.validation_losses.append(val_loss)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < state.best_validation_score + self.tol:
                state.no_improvement += 1
            else:
                state.no_improvement = 0
            if score > state.best_validation_score:
                state.best_validation_score = score
                runner.keep_best()
        else:
            last = state.loss_curve[-1]
            if last > state.best_loss - self.tol:
                state.no_improvement += 1
            else:
                state.no_improvement = 0
            if last < state.best_loss:
                state.best_loss = last

    def _validation_score(self, state, X_val, y_val, sw_val):
        out = self._forward(state, X_val)
        _, _, loss_code = self._codes(state)
        val_loss = kmlp.batch_loss(y_val, out, sw_val, loss_code)
        if not np.isfinite(out).all():
            return np.nan, val_loss
        if is_classifier(self):
            binarizer = state.binarizer
            pred = binarizer.inverse_transform(out.ravel() if out.shape[1] == 1 else out)
            truth = binarizer.inverse_transform(y_val if y_val.shape[1] > 1 else y_val.ravel())
            return float(accuracy_score(truth, pred, sample_weight=sw_val)), val_loss
        pred = out.ravel() if out.shape[1] == 1 else out
        truth = y_val.ravel() if y_val.shape[1] == 1 else y_val
        return float(r2_score(truth, pred, sample_weight=sw_val)), val_loss

    # -- prediction ------------------------------------------------------------------------
    def _forward(self, state, X):
        """Output activations for X (already validated) using the parameters in ``state``."""
        m = _model(self, state)
        units = m.units
        dtype = state.params.dtype
        n = X.shape[0]
        out = np.empty((n, units[-1]), dtype)
        # rows per chunk: the workspace holds every layer's activations; keep it near 16 MiB
        rows = min(n, max(64, min(_PREDICT_CHUNK, (16 << 20) // (m.n_units * dtype.itemsize))))
        ws = kmlp.forward_rows(m, rows, dtype)
        # the thread pools change hands (BLAS on one thread, Numba's pool following the load)
        # only for a forward pass that runs on several threads or is large enough for the
        # switch (about 20 us) not to count; a small one runs as it is on the calling thread
        own = ws.nblocks > 1 or n * m.macs >= _OWN_POOLS_MACS
        with K.cpu_work() if own else contextlib.nullcontext():
            for start in range(0, n, rows):
                stop = min(n, start + rows)
                chunk = X[start:stop]
                chunk = chunk.toarray() if sp.issparse(chunk) else chunk
                # one forward kernel for every X: a read-only chunk is copied (a chunk at a time)
                if not (chunk.dtype == dtype and chunk.flags.c_contiguous
                        and chunk.flags.writeable):
                    chunk = np.array(chunk, dtype=dtype, order="C")
                out[start:stop] = kmlp.forward(chunk, state.params, m, ws)
        return out

    def _flat_params(self, dtype):
        """``coefs_`` then ``intercepts_`` in one flat ``dtype`` array (one copy)."""
        return np.concatenate([np.ravel(c) for c in self.coefs_]
                              + [np.ravel(b) for b in self.intercepts_], dtype=dtype,
                              casting="same_kind")

    def _packed_params(self):
        """The flat array that ``coefs_`` and ``intercepts_`` are still views of (as ``_commit``
        left them; any array replaced, a pickle or a load breaks that), else None."""
        packed = self.__dict__.get("_packed")
        if packed is None:
            return None
        flat, views = packed
        arrays = (*self.coefs_, *self.intercepts_)
        if len(arrays) != len(views) or any(
                a is not v or a.base is not flat for a, v in zip(arrays, views)):
            return None
        return flat

    def _state_for_predict(self):
        units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        params = self._packed_params()
        if params is None:
            params = self._flat_params(self.coefs_[0].dtype)
        return FitState(params=params, units=units, out_activation=self.out_activation_)

    def _forward_cuda(self, state, X):
        """``_forward`` on the GPU: X copied to the device once (sparse X densified on the
        host), the output copied back once."""
        from numba import cuda
        m = _model(self, state)
        dtype = state.params.dtype
        x = cuda.to_device(kmlp.dense(X, dtype))
        ws = kmlp.workspace(m, min(X.shape[0], _CUDA_PREDICT_CHUNK), dtype, "forward", "cuda")
        out = kmlp.forward(x, cuda.to_device(state.params), m, ws)
        return out.copy_to_host()

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                              dtype=(np.float64, np.float32))
        # dtype=None: scikit-learn's products (float32 weights on float64 X give float64);
        # a forced dtype: the outputs keep it
        out_dtype = (np.result_type(X.dtype, self.coefs_[0].dtype) if self.dtype is None
                     else self.coefs_[0].dtype)
        X = self._prepare_X(X, self.coefs_[0].dtype)
        if resolve_device(self.device) == "cuda":
            out = self._forward_cuda(self._state_for_predict(), X)
        else:
            out = self._forward(self._state_for_predict(), X)
        return out.astype(out_dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


# -- docstrings: the sections the two MLPs share, assembled below -------------------------------
_MLP_PARAMETERS = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer (an int: one hidden
        layer). Every size must be > 0.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function of the hidden layers: 'identity' ``f(x) = x``, 'logistic'
        ``f(x) = 1 / (1 + exp(-x))``, 'tanh' ``f(x) = tanh(x)``, 'relu' ``f(x) = max(0, x)``.

    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The solver for weight optimization. 'lbfgs': SciPy's L-BFGS-B, as in scikit-learn, on
        the loss and gradient of the whole data set, each computed by one fused kernel call.
        'sgd': stochastic gradient descent with scikit-learn's momentum and Nesterov updates.
        'adam': scikit-learn's Adam. The stochastic solvers train a whole epoch (every
        mini-batch: forward, backward and update) per kernel call. 'adam' suits data sets of
        thousands of samples or more; 'lbfgs' often converges faster on small ones.

    alpha : float, default=0.0001
        Strength of the L2 regularization term, divided by the sample size (the mini-batch size
        for the stochastic solvers) when added to the loss.

    batch_size : int or 'auto', default='auto'
        Size of the mini-batches of 'sgd' and 'adam' ('lbfgs' uses none). 'auto' means
        ``min(200, n_samples)``; a larger int is clipped to ``n_samples`` with a warning.

    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning rate schedule of ``solver='sgd'``. 'constant': ``learning_rate_init``
        throughout. 'invscaling': ``learning_rate_init / (t + 1) ** power_t`` after each epoch,
        ``t`` being the samples seen (``t_``). 'adaptive': ``learning_rate_init`` as long as
        training improves; each time the training loss (the validation score with
        ``early_stopping``) has not improved by ``tol`` for more than ``n_iter_no_change``
        epochs, the rate is divided by 5, and training stops once it is at most 1e-6.

    learning_rate_init : float, default=0.001
        The initial learning rate (step size) of 'sgd' and 'adam'.

    power_t : float, default=0.5
        Exponent of the 'invscaling' learning rate ('sgd' only).

    max_iter : int, default=200
        Maximum number of iterations: epochs (passes over the data, not gradient steps) for
        'sgd' and 'adam', L-BFGS iterations for 'lbfgs'. Stopping there issues a
        ``ConvergenceWarning``.

    shuffle : bool, default=True
        Whether to shuffle the samples before each epoch ('sgd' and 'adam').

    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the early-stopping split and the shuffling. fastnn draws the
        same numbers in the same order as scikit-learn: one seed gives both libraries the same
        initial weights, validation split and mini-batches.

    tol : float, default=1e-4
        Tolerance: when the training loss (the validation score with ``early_stopping``) has not
        improved by at least ``tol`` for more than ``n_iter_no_change`` consecutive epochs,
        training stops (unless ``learning_rate='adaptive'``). For 'lbfgs': SciPy's ``gtol``.

    verbose : bool, default=False
        Print scikit-learn's progress messages (the loss of each epoch, the validation score
        with early stopping, why training stopped) to stdout; for 'lbfgs', SciPy's output.

    warm_start : bool, default=False
        Reuse the solution of the previous call to ``fit`` as initialization (its weights and,
        for 'sgd' and 'adam', ``t_``, ``loss_curve_`` and the best loss or score); otherwise
        start from new random weights.

    momentum : float, default=0.9
        Momentum of the 'sgd' updates, in [0, 1].

    nesterovs_momentum : bool, default=True
        Whether 'sgd' uses Nesterov's momentum (when ``momentum > 0``).

    early_stopping : bool, default=False
        Set ``validation_fraction`` of the training data aside and stop when the validation
        score (accuracy for the classifier, R^2 for the regressor) has not improved by ``tol``
        for more than ``n_iter_no_change`` consecutive epochs; the weights of the best epoch are
        kept. The split is stratified for single-output classification. 'sgd' and 'adam' only;
        ``partial_fit`` raises ValueError with it.

    validation_fraction : float, default=0.1
        Proportion of the training data set aside for early stopping, in (0, 1).

    beta_1 : float, default=0.9
        Decay rate of Adam's first-moment estimates, in [0, 1).

    beta_2 : float, default=0.999
        Decay rate of Adam's second-moment estimates, in [0, 1).

    epsilon : float, default=1e-8
        Adam's term for numerical stability.

    n_iter_no_change : int, default=10
        Number of consecutive epochs allowed without an improvement of ``tol`` (one more stops
        training, or divides the 'adaptive' learning rate); 'sgd' and 'adam'.

    max_fun : int, default=15000
        Maximum number of loss function calls of 'lbfgs' (SciPy's ``maxfun``).
"""

_CLASS_WEIGHT_PARAMETER = """
    class_weight : dict, 'balanced' or None, default=None
        Added by fastnn. Weights of the classes, ``{label: weight}``, multiplied into
        ``sample_weight`` (as in scikit-learn's linear models); 'balanced' weighs each class by
        ``n_samples / (n_classes * n_samples_of_the_class)``. Single-output targets only.
"""

_FASTNN_PARAMETERS = """
    device : {'auto', 'cpu', 'cuda'}, default='auto'
        Added by fastnn. Where to train and predict. 'cpu': fused Numba kernels. 'cuda': their
        numba.cuda twin (every solver; the data moves to the GPU once per fit and the results
        come back at the end; sparse X is densified on the host first); raises RuntimeError
        without a CUDA device. 'auto': 'cuda' when a real GPU is present, else 'cpu'. Fitted
        attributes are NumPy arrays whatever the device, so a model fitted on a GPU pickles
        and, after ``set_params(device='cpu')``, predicts without one.

    dtype : {None, np.float32, np.float64}, default=None
        Added by fastnn. Precision of the computation, of ``coefs_`` and ``intercepts_`` (their
        names, 'float32' or 'float64', work too). None: scikit-learn's rule, X's float dtype
        (float32 X stays float32, anything else becomes float64), and predictions in the
        dtype NumPy gives X times the weights. ``np.float32`` forces float32 on float64 data,
        for speed, and the predictions keep float32.
"""

_MLP_ATTRIBUTES = """
    loss_ : float
        The loss at the end of fitting (L2 penalty included): of the last epoch for 'sgd' and
        'adam', L-BFGS's final objective for 'lbfgs'.

    best_loss_ : float or None
        The minimum training loss reached; None with ``early_stopping`` (see
        ``best_validation_score_``). Set by 'sgd' and 'adam' only.

    loss_curve_ : list of shape (n_iter_,)
        The training loss of each epoch (continued by warm starts and ``partial_fit``). Set by
        'sgd' and 'adam' only.

    validation_scores_ : list of shape (n_iter_,) or None
        With ``early_stopping``, the score on the held-out validation set after each epoch
        (accuracy for the classifier, R^2 for the regressor); None otherwise. Set by 'sgd' and
        'adam' only.

    best_validation_score_ : float or None
        With ``early_stopping``, the best validation score; None otherwise. Set by 'sgd' and
        'adam' only.

    validation_losses_ : list of shape (n_iter_,) or None
        Added by fastnn. With ``early_stopping``, the loss on the validation set after each
        epoch (no L2 penalty); None otherwise. Set by 'sgd' and 'adam' only.

    t_ : int
        The number of training samples seen by the solver ('sgd' and 'adam': epochs times
        samples, across warm starts and ``partial_fit``; 0 for 'lbfgs').

    coefs_ : list of shape (n_layers - 1,)
        The ith element is the weight matrix of layer i, an ndarray of shape
        (units of layer i, units of layer i + 1) in the computation's dtype (see ``dtype``).

    intercepts_ : list of shape (n_layers - 1,)
        The ith element is the bias vector of layer i + 1.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``. Defined only when X has feature names that are
        all strings.

    n_iter_ : int
        The number of iterations the solver ran in the last call to ``fit`` (1 after
        ``partial_fit``).

    n_layers_ : int
        Number of layers, the input and output layers included.

    n_outputs_ : int
        Number of outputs.

    out_activation_ : str
        Name of the output activation function.
"""

_MLP_NOTES = """
    The parameters shared with scikit-learn's estimator have its names, defaults, validation
    (the same ``InvalidParameterError`` messages) and meaning, and the algorithm is the same:
    initialization, batch order, Adam and Nesterov-SGD updates, L-BFGS through SciPy,
    stopping rules, warnings, counters and the dtype rules. The estimator passes
    scikit-learn's ``check_estimator``. What remains different, and why:

    - Results agree to rounding, not bit for bit: the fused kernels add up in another order
      (in blocks cut by the machine's cores, so that results do not depend on the thread
      count). At float64, weights after 15 epochs agree to a relative 1e-7; like any rounding
      difference in an iterative fit, it can grow over many epochs.
    - Extra parameters (``dtype``, ``device``%s) and one extra attribute,
      ``validation_losses_``; none of scikit-learn's parameters, attributes or methods is
      missing.
    - Divergence stops at once: when an 'sgd' or 'adam' epoch ends with a non-finite loss or
      non-finite weights, fit raises ``fastnn.nn.DivergenceError`` (a ValueError, with
      scikit-learn's message) from that epoch; scikit-learn trains on to ``max_iter`` and
      then raises its ValueError, wasting the remaining epochs. ('lbfgs' checks at the end
      in both.)
    - A fit that fails (invalid input, divergence) leaves the estimator exactly as it was,
      with its previous fitted attributes; scikit-learn may already have replaced some
      (``classes_``, for example).
    - The private state differs (the optimizer state is a dict of arrays, not scikit-learn's
      optimizer object), so a pickle of one library's estimator does not load as the other's.
      ``fastnn.save`` and ``fastnn.load`` store a fitted estimator without pickle.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = _numpydoc(
        """Multi-layer perceptron classifier, a faster drop-in for scikit-learn's.

    The same model, parameters, defaults and fitted attributes as
    ``sklearn.neural_network.MLPClassifier`` (it optimizes the log-loss with L-BFGS, SGD or
    Adam), trained by fused Numba kernels on the CPU or by their numba.cuda twin on a GPU.
    Targets may be binary, multiclass or multilabel; X may be dense or sparse.
    """,
        parameters=_MLP_PARAMETERS + _CLASS_WEIGHT_PARAMETER + _FASTNN_PARAMETERS,
        attributes="""
    classes_ : ndarray or list of ndarray of shape (n_classes,)
        Class labels for each output.
""" + _MLP_ATTRIBUTES,
        see_also="""
    MLPRegressor : The multi-layer perceptron for regression.
    NeuralNetClassifier : A classifier around any list of ``fastnn.nn`` layers (CNNs, RNNs).
    sklearn.neural_network.MLPClassifier : The scikit-learn estimator this one replaces.
""",
        notes=_MLP_NOTES % ", ``class_weight``",
        examples="""
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from fastnn.sklearn import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0)
    >>> clf = MLPClassifier(max_iter=300, random_state=0).fit(X_train, y_train)
    >>> clf.predict(X_test[:5])
    array([2, 8, 2, 6, 6])
    >>> clf.predict_proba(X_test[:5]).shape
    (5, 10)
    >>> clf.score(X_test, y_test) > 0.95
    True

    Float64 X trains in float64, as in scikit-learn; ``dtype`` forces float32 for speed:

    >>> clf.coefs_[0].dtype
    dtype('float64')
    >>> fast = MLPClassifier(max_iter=300, random_state=0, dtype=np.float32)
    >>> fast.fit(X_train, y_train).coefs_[0].dtype
    dtype('float32')
    >>> fast.score(X_test, y_test) > 0.95
    True
    """)
    _parameter_constraints = {**SkMLPClassifier._parameter_constraints, **FASTNN_CONSTRAINTS,
                              "class_weight": [dict, StrOptions({"balanced"}), None]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 class_weight=None, device="auto", dtype=None):
        _set_init_args(self, locals())

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
            if not hasattr(self, "classes_") and binarizer.y_type_ != "multilabel-indicator":
                classes = unique_labels(y)  # the first partial_fit: y within its `classes`
                if len(np.setdiff1d(classes, binarizer.classes_, assume_unique=True)):
                    raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                     f"has {binarizer.classes_}. 'y' has {classes}.")
        y = binarizer.transform(y).astype(bool)
        return X, y, y_raw, binarizer

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
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError("`classes=%r` is not the same as on last call to partial_fit, was: "
                             "%r" % (classes, self.classes_))
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
    __doc__ = _numpydoc(
        """Multi-layer perceptron regressor, a faster drop-in for scikit-learn's.

    The same model, parameters, defaults and fitted attributes as
    ``sklearn.neural_network.MLPRegressor`` (it optimizes the squared error or the Poisson
    deviance with L-BFGS, SGD or Adam), trained by fused Numba kernels on the CPU or by their
    numba.cuda twin on a GPU. Single or multiple targets; X may be dense or sparse.
    """,
        parameters="""
    loss : {'squared_error', 'poisson'}, default='squared_error'
        The loss to minimize: half the squared error, or half the Poisson deviance with a
        log link (the output activation is then 'exp'; y must be >= 0).
""" + _MLP_PARAMETERS + _FASTNN_PARAMETERS,
        attributes=_MLP_ATTRIBUTES,
        see_also="""
    MLPClassifier : The multi-layer perceptron for classification.
    NeuralNetRegressor : A regressor around any list of ``fastnn.nn`` layers (CNNs, RNNs).
    sklearn.neural_network.MLPRegressor : The scikit-learn estimator this one replaces.
""",
        notes=_MLP_NOTES % "",
        examples="""
    >>> from sklearn.datasets import make_regression
    >>> from sklearn.model_selection import train_test_split
    >>> from fastnn.sklearn import MLPRegressor
    >>> X, y = make_regression(n_samples=200, n_features=20, random_state=1)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=1)
    >>> regr = MLPRegressor(random_state=1, max_iter=2000, tol=0.1).fit(X_train, y_train)
    >>> regr.predict(X_test[:2]).round()
    array([  29., -291.])
    >>> regr.score(X_test, y_test) > 0.95
    True
    """)
    _parameter_constraints = {**SkMLPRegressor._parameter_constraints, **FASTNN_CONSTRAINTS}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device="auto", dtype=None):
        _set_init_args(self, locals())

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative y")
        return X, y, y, None

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
