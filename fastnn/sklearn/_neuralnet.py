"""NeuralNetClassifier and NeuralNetRegressor: fastnn.nn layer lists as scikit-learn estimators."""
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .. import kernels as K
from .._kernels._dispatch import resolve_device
from ._common import FASTNN_CONSTRAINTS, unchanged_on_failure
from ._mlp import _set_init_args


class _BaseNeuralNet(BaseEstimator):
    """Shared implementation of the NeuralNet estimators (not for direct use)."""

    _loss = None
    _parameter_constraints = {
        "layers": [list, tuple, None],
        "input_shape": [tuple, list, None],
        "optimizer": [StrOptions({"adam", "adamw", "sgd", "rmsprop", "adagrad"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "schedule": "no_validation",  # fastnn.nn.fit validates it
        "shuffle": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "optimizer_options": [dict, None],
        "callbacks": [list, tuple, None],
        **FASTNN_CONSTRAINTS,
    }

    _NESTED = ("layers__", "optimizer__")

    # -- nested parameters (skorch's style): layers__<i>__<name>, optimizer__<name> ---------
    def get_params(self, deep=True):
        params = super().get_params(deep=False)
        if deep:  # (any values, valid or not: scikit-learn validates them only at fit)
            layers = self.layers if isinstance(self.layers, (list, tuple)) else ()
            for i, layer in enumerate(layers):
                if hasattr(layer, "get_config"):
                    for name, value in layer.get_config().items():
                        params[f"layers__{i}__{name}"] = value
            if isinstance(self.optimizer_options, dict):
                for name, value in self.optimizer_options.items():
                    params[f"optimizer__{name}"] = value
        return params

    def set_params(self, **params):
        nested = {k: params.pop(k) for k in list(params) if k.startswith(self._NESTED)}
        super().set_params(**params)
        if not nested:
            return self
        layers = list(self.layers) if isinstance(self.layers, (list, tuple)) else None
        options = dict(self.optimizer_options) if isinstance(self.optimizer_options, dict) else {}
        for key, value in nested.items():
            if key.startswith("optimizer__"):
                options[key[len("optimizer__"):]] = value
                continue
            index, _, name = key[len("layers__"):].partition("__")
            if layers is None or not index.isdigit() or int(index) >= len(layers) or not name:
                raise ValueError(f"Invalid parameter {key!r} for estimator {self}: layers has "
                                 f"{0 if layers is None else len(layers)} layers "
                                 "(use layers__<index>__<name>)")
            layer = layers[int(index)]
            config = layer.get_config()
            if name not in config:
                raise ValueError(f"Invalid parameter {name!r} for layer {index} "
                                 f"({type(layer).__name__}); valid: {sorted(config)}")
            layers[int(index)] = type(layer)(**{**config, name: value})
        self.layers = layers
        self.optimizer_options = options or None
        return self

    # -- validation ------------------------------------------------------------------------
    def _fastnn_params(self):
        """Checks beyond ``_parameter_constraints``; returns the resolved device."""
        from ..nn import Layer
        if self.layers is not None and not all(isinstance(layer, Layer) for layer in self.layers):
            raise ValueError("layers must be None or a list of fastnn.nn layers")
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
        from ..nn import Dense, ReLU, Sequential
        hidden = [Dense(100), ReLU()] if self.layers is None else [layer.clone() for layer in self.layers]
        return Sequential(*hidden, Dense(n_outputs))

    def _seed(self):
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train the network on (X, y); X rows are reshaped to ``input_shape`` when given."""
        return self._fit(X, y, sample_weight, incremental=False)

    @unchanged_on_failure
    @K.cpu_bound
    def _fit(self, X, y, sample_weight, incremental, classes=None):
        import copy

        from ..nn import fit as nn_fit
        from ..nn.training import EarlyStopping
        self._validate_params()  # scikit-learn's, from _parameter_constraints
        device = self._fastnn_params()
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")
        X = self._shape_X(X, reset=first)
        y_enc, encoder = self._encode_y(X, y, first, classes)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X.reshape(len(X), -1),
                                                 dtype=np.float64)
        sample_weight = self._weighted(sample_weight, y)
        n = X.shape[0]
        batch_size = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        seed = self._seed()
        from ..nn.optimizers import get as get_optimizer
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
            optimizer = get_optimizer(self.optimizer, model, lr=self.learning_rate_init,
                                      **(self.optimizer_options or {}))
        callbacks = list(self.callbacks or ())
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
    _parameter_constraints = {**_BaseNeuralNet._parameter_constraints,
                              "class_weight": [dict, StrOptions({"balanced"}), None]}

    def __init__(self, layers=None, input_shape=None, *, optimizer="adam",
                 learning_rate_init=0.001, batch_size="auto", max_iter=200, alpha=0.0001,
                 schedule=None, shuffle=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, random_state=None, verbose=0, warm_start=False,
                 device="auto", dtype=np.float32, optimizer_options=None, callbacks=None,
                 class_weight=None):
        _set_init_args(self, locals())

    def _weighted(self, sample_weight, y):
        """``sample_weight`` times the ``class_weight`` of each sample's class."""
        if self.class_weight is None:
            return sample_weight
        cw = compute_sample_weight(self.class_weight, np.asarray(y).ravel())
        return cw if sample_weight is None else sample_weight * cw

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
            if classes is not None and not np.array_equal(encoder.classes_,
                                                          unique_labels(classes)):
                raise ValueError("`classes=%r` is not the same as on last call to partial_fit, "
                                 "was: %r" % (classes, encoder.classes_))
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
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities (softmax of the network output), columns ordered as ``classes_``."""
        from .. import kernels
        return np.asarray(kernels.softmax(self._raw_output(X), axis=-1))

    def predict_log_proba(self, X):
        from .. import kernels
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

    def __init__(self, layers=None, input_shape=None, *, optimizer="adam",
                 learning_rate_init=0.001, batch_size="auto", max_iter=200, alpha=0.0001,
                 schedule=None, shuffle=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, random_state=None, verbose=0, warm_start=False,
                 device="auto", dtype=np.float32, optimizer_options=None, callbacks=None):
        _set_init_args(self, locals())

    @staticmethod
    def _weighted(sample_weight, y):
        return sample_weight

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
