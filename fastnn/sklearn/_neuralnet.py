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
from ._mlp import _numpydoc, _set_init_args


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
                    _nested_config(f"layers__{i}", layer, params)
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
            layers[int(index)] = _with_config(layers[int(index)], name.split("__"), value,
                                              f"layer {index}")
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
        """Validate X and reshape flat rows to ``input_shape``. X is not copied: ``fit`` converts it
        to the model's dtype once where it differs, ``predict`` batch by batch."""
        sample_shape = None
        if isinstance(X, np.ndarray) and X.ndim > 2:  # already shaped: validate as flat rows
            sample_shape = X.shape[1:]
            X = X.reshape(len(X), -1)
        X = validate_data(self, X, reset=reset, dtype=(np.float32, np.float64))
        if sample_shape is not None:
            X = X.reshape((len(X),) + sample_shape)
        elif self.input_shape is not None:
            shape = tuple(int(s) for s in np.atleast_1d(self.input_shape))
            if int(np.prod(shape)) != X.shape[1]:
                raise ValueError(f"input_shape {shape} needs {int(np.prod(shape))} features per "
                                 f"row, X has {X.shape[1]}")
            X = X.reshape((X.shape[0],) + shape)
        return X

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
            model.build(X.shape[1:], dtype=np.dtype(self.dtype))
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
                             # shown while training: accuracy for classifiers, nothing
                             # extra to compute when silent
                             metrics=None if self.verbose else (),
                             verbose=min(int(self.verbose), 2), sample_weight=sample_weight)
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
        device = resolve_device(self.device)
        if self.model_.device != device:  # e.g. unpickled on the host, or device changed
            self.model_.to(device)
        return np.asarray(self.model_.predict(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


# -- docstrings: the sections the two NeuralNet estimators share, assembled below ---------------
_NN_PARAMETERS = """
    layers : list of fastnn.nn layers or None, default=None
        The hidden layers (``fastnn.nn.Dense``, ``Conv2D``, ``MaxPool2D``, ``LSTM``, ``Dropout``,
        activations...). They are cloned at each fit (the list itself is never trained), and
        the estimator appends the output layer:
        %s.
        None builds ``[Dense(100), ReLU()]``. The layers' constructor arguments are nested
        parameters, ``layers__<index>__<name>`` (see Notes).

    input_shape : tuple of int or None, default=None
        The shape of one sample as the first layer expects it: each flat row of X is reshaped
        to it, e.g. ``(1, 8, 8)`` (channels, height, width) for a ``Conv2D`` or ``(8, 8)``
        (time steps, features) for a recurrent layer. X may also arrive already shaped, as an
        array of more than two dimensions. None: the rows as they are.

    optimizer : {'adam', 'adamw', 'sgd', 'rmsprop', 'adagrad'}, default='adam'
        The ``fastnn.nn`` optimizer (PyTorch's update rules), built with
        ``lr=learning_rate_init`` and ``optimizer_options``.

    learning_rate_init : float, default=0.001
        The optimizer's learning rate (the start of ``schedule``, if one is given).

    batch_size : int or 'auto', default='auto'
        Mini-batch size; 'auto' means ``min(200, n_samples)``, a larger int is clipped to
        ``n_samples``.

    max_iter : int, default=200
        Maximum number of epochs of ``fit``; stopping there issues a ``ConvergenceWarning``.

    alpha : float, default=0.0001
        Strength of scikit-learn's L2 penalty: ``0.5 * alpha * ||W||^2 / batch size`` added to
        the loss, for the weights (biases and normalization parameters take none).

    schedule : str, tuple, fastnn.nn.schedules.Schedule, callable or None, default=None
        Learning-rate schedule of ``fastnn.nn.fit``, stepped after every epoch: a name
        ('step', 'cosine', ...), ``(name, kwargs)``, a ``Schedule`` or ``f(epoch) -> lr``.
        None keeps ``learning_rate_init``.

    shuffle : bool, default=True
        Whether to shuffle the samples before each epoch.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the samples (a random subset drawn from
        ``random_state``, not stratified) and stop when the validation loss has not improved by
        more than ``tol`` for ``n_iter_no_change`` epochs; the weights of the best epoch are
        restored. Without it, training stops on the same rule applied to the training loss.
        ``partial_fit`` ignores it.

    validation_fraction : float, default=0.1
        Proportion of the samples held out with ``early_stopping``, in (0, 1); the held-out
        set must have at least two samples.

    n_iter_no_change : int, default=10
        Number of epochs without an improvement of more than ``tol`` after which training
        stops (the ``patience`` of ``fastnn.nn.EarlyStopping``).

    tol : float, default=1e-4
        The improvement of the monitored loss that counts (``min_delta``).

    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling, the validation split and dropout; an int
        gives the same model at every fit.

    verbose : int, default=0
        As ``fastnn.nn.fit`` (Keras' meaning), on stdout: 0 silent; 1 a live line per epoch on
        a terminal (batch, samples/s, ETA, loss, accuracy for classifiers), one line per epoch
        otherwise; 2 one line per epoch. Lines show the validation loss with early stopping.

    warm_start : bool, default=False
        Whether ``fit`` continues from the fitted ``model_`` (with a new optimizer state)
        instead of building new layers; ``n_iter_`` and ``loss_curve_`` then add up.

    device : {'auto', 'cpu', 'cuda'}, default='auto'
        Where to train and predict. 'cuda': the model, its optimizer state and the data live on
        the GPU during fit and prediction (recurrent layers included); raises RuntimeError
        without a CUDA device. 'auto': 'cuda' when a real GPU is present, else 'cpu'. The fitted model pickles with host arrays, so it loads and
        predicts on a machine without a GPU.

    dtype : {np.float32, np.float64}, default=np.float32
        Precision of the model, of the computation and of the predictions (X is cast to it).
        float32 by default, unlike the MLP estimators, which follow X.

    optimizer_options : dict or None, default=None
        Further keyword arguments of the optimizer, e.g. ``{'momentum': 0.9, 'nesterov': True}``
        for 'sgd' or ``{'weight_decay': 0.01}`` for 'adamw'; each key is also the nested
        parameter ``optimizer__<key>``.

    callbacks : list of fastnn.nn.Callback or None, default=None
        Callbacks run inside each fit (``fastnn.nn.LambdaCallback``, ``ModelCheckpoint``,
        ``EarlyStopping``, your own ``Callback`` subclasses), before the estimator's own stopping
        rule. A callback may stop training (``self.trainer.stop_training = True``, or a
        ``LambdaCallback`` function returning True).
"""

_NN_ATTRIBUTES = """
    model_ : fastnn.nn.Sequential
        The fitted network: clones of ``layers`` followed by the output ``Dense``.

    n_features_in_ : int
        Number of features seen during ``fit`` (of the flattened rows when X arrives shaped).

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``. Defined only when X has feature names that are
        all strings.

    n_iter_ : int
        The number of epochs trained, in total over warm starts and ``partial_fit`` calls.

    loss_ : float
        The training loss of the last epoch (L2 penalty included).

    loss_curve_ : list of shape (n_iter_,)
        The training loss of each epoch.

    validation_losses_ : list or None
        With ``early_stopping``, the validation loss of each epoch of the last ``fit``; None
        without it and after ``partial_fit``.

    history_ : fastnn.nn.History
        The records of the last ``fit`` or ``partial_fit`` call: ``history_["loss"]``,
        ``history_["lr"]``, ``history_["time"]`` and, with ``early_stopping``,
        ``history_["val_loss"]``, one value per epoch.
"""

_NN_NOTES = """
    Nested parameters, as in skorch: ``get_params()`` lists each layer's constructor
    arguments as ``layers__<index>__<name>`` (``layers__0__filters``) and each key of
    ``optimizer_options`` as ``optimizer__<name>`` (``optimizer__momentum``);
    ``set_params`` accepts both (a layer is rebuilt with the new argument, an optimizer key is
    added to ``optimizer_options``), so ``GridSearchCV`` can search them.

    Callbacks: each fit passes ``callbacks`` to ``fastnn.nn.fit``, followed by the
    estimator's own ``fastnn.nn.EarlyStopping`` (the ``tol``/``n_iter_no_change`` rule), so
    they see every epoch's logs and may stop training earlier. They are used as given, not
    copied: a stateful callback carries its state from one fit to the next, while ``clone``
    (and so ``GridSearchCV`` and ``cross_val_score``) gives each clone its own copy.

%s

    Precision: ``dtype`` is float32 by default, as in ``fastnn.nn`` (the MLP estimators follow
    X's dtype, as scikit-learn does); ``dtype=np.float64`` passes scikit-learn's
    sample-weight equivalence checks.

    Compared with ``MLPClassifier``/``MLPRegressor`` (and scikit-learn's), on the same
    layers the results differ: the layers start from ``fastnn.nn``'s initializations
    (He-uniform weights, zero biases), the optimizers follow PyTorch's update rules (Adam's
    ``eps`` is added after the bias correction unless ``optimizer__sklearn_epsilon=True``),
    early stopping monitors the validation loss rather than a score, and ``n_iter_`` counts
    every epoch trained. X must be dense. A fit that fails (invalid input, a
    ``fastnn.nn.DivergenceError`` when training produces non-finite values) leaves the
    estimator exactly as it was.
"""


class NeuralNetClassifier(ClassifierMixin, _BaseNeuralNet):
    __doc__ = _numpydoc(
        """A classifier around a network of ``fastnn.nn`` layers (CNNs, RNNs, MLPs).

    A scikit-learn estimator (``fit``, ``partial_fit``, ``predict``, ``predict_proba``,
    ``score``; usable in pipelines, grid searches and ``cross_val_score``) that trains
    ``layers`` plus an output layer with softmax cross-entropy, by ``fastnn.nn.fit``.
    Targets are single-output class labels of any type.
    """,
        parameters=_NN_PARAMETERS % ("a ``Dense`` with one unit per class, trained with "
                                     "softmax cross-entropy") + """
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, ``{label: weight}``, multiplied into ``sample_weight``;
        'balanced' weighs each class by ``n_samples / (n_classes * n_samples_of_the_class)``.
""",
        attributes="""
    classes_ : ndarray of shape (n_classes,)
        The class labels, in the order of the output units and of ``predict_proba``'s columns.
""" + _NN_ATTRIBUTES,
        see_also="""
    NeuralNetRegressor : The same for regression.
    MLPClassifier : The faster drop-in for scikit-learn's multi-layer perceptron classifier.
    fastnn.nn.fit : The training loop underneath.
""",
        notes=_NN_NOTES % """\
    ``class_weight`` multiplies each sample's weight by its class's weight, as in
    scikit-learn's linear models; with ``sample_weight`` both apply.""",
        examples="""
    A small convolutional network on the 8x8 digit images:

    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from fastnn import nn
    >>> from fastnn.sklearn import NeuralNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0)
    >>> stop = nn.LambdaCallback(lambda epoch, logs: logs["loss"] < 0.05)
    >>> clf = NeuralNetClassifier(
    ...     layers=[nn.Conv2D(8, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten()],
    ...     input_shape=(1, 8, 8), learning_rate_init=0.01, callbacks=[stop], random_state=0)
    >>> clf.fit(X_train, y_train).predict(X_test[:5])
    array([2, 8, 2, 6, 6])
    >>> clf.score(X_test, y_test) > 0.95
    True
    >>> clf.loss_ < 0.05
    True

    Nested parameters reach the layers and the optimizer:

    >>> clf.get_params()["layers__0__filters"]
    8
    >>> clf = clf.set_params(layers__0__filters=16, optimizer="sgd", optimizer__momentum=0.9)
    >>> clf.layers[0]
    Conv2D(filters=16, kernel_size=3, ...)
    >>> clf.optimizer_options
    {'momentum': 0.9}
    """)

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
    __doc__ = _numpydoc(
        """A regressor around a network of ``fastnn.nn`` layers (CNNs, RNNs, MLPs).

    A scikit-learn estimator (``fit``, ``partial_fit``, ``predict``, ``score``; usable in
    pipelines, grid searches and ``cross_val_score``) that trains ``layers`` plus a linear
    output layer with the mean squared error, by ``fastnn.nn.fit``. Single or multiple
    targets.
    """,
        parameters=_NN_PARAMETERS % ("a linear ``Dense`` with one unit per target, trained "
                                     "with the mean squared error"),
        attributes="""
    n_outputs_ : int
        Number of targets (output units).
""" + _NN_ATTRIBUTES,
        see_also="""
    NeuralNetClassifier : The same for classification.
    MLPRegressor : The faster drop-in for scikit-learn's multi-layer perceptron regressor.
    fastnn.nn.fit : The training loop underneath.
""",
        notes=_NN_NOTES % """\
    Sample weights: ``fit(X, y, sample_weight)`` weighs each sample's squared error (there
    is no ``class_weight`` for regression).""",
        examples="""
    >>> from sklearn.datasets import make_regression
    >>> from sklearn.model_selection import train_test_split
    >>> from fastnn.sklearn import NeuralNetRegressor
    >>> X, y = make_regression(n_samples=200, n_features=10, noise=1.0, random_state=0)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y / y.std(), random_state=0)
    >>> regr = NeuralNetRegressor(learning_rate_init=0.01, random_state=0).fit(X_train, y_train)
    >>> regr.predict(X_test[:3]).shape
    (3,)
    >>> regr.score(X_test, y_test) > 0.95
    True
    >>> regr.model_
    Sequential(
      Dense(units=100, ...),
      ReLU(),
      Dense(units=1, ...)
    )
    """)

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


def _nested_config(prefix, layer, params):
    """``params[prefix__name]`` for each constructor argument of ``layer``, and, inside a
    container, of the layers it holds (``layers__1__layers__0__units``: the first layer of the
    Residual at index 1; lists of layers by index)."""
    from ..nn import Layer
    for name, value in layer.get_config().items():
        key = f"{prefix}__{name}"
        params[key] = value
        stack = [(key, value)]
        while stack:
            k, v = stack.pop()
            if isinstance(v, Layer):
                _nested_config(k, v, params)
            elif isinstance(v, list):
                for j, item in enumerate(v):
                    if isinstance(item, (Layer, list)):
                        params[f"{k}__{j}"] = item
                        stack.append((f"{k}__{j}", item))


def _with_config(layer, path, value, where):
    """A copy of ``layer`` whose constructor argument at ``path`` (names and list indices, as
    ``_nested_config`` spells them) is ``value``."""
    config = layer.get_config()
    name = path[0]
    if name not in config:
        raise ValueError(f"Invalid parameter {name!r} for {where} ({type(layer).__name__}); "
                         f"valid: {sorted(config)}")
    config[name] = value if len(path) == 1 else _replace(config[name], path[1:], value,
                                                         f"{where}, {name}")
    make = getattr(type(layer), "from_config", None)
    return make(config) if make is not None else type(layer)(**config)


def _replace(item, path, value, where):
    from ..nn import Layer
    if isinstance(item, Layer):
        return _with_config(item, path, value, where)
    if isinstance(item, list) and path[0].isdigit() and int(path[0]) < len(item):
        i = int(path[0])
        new = list(item)
        new[i] = value if len(path) == 1 else _replace(item[i], path[1:], value, f"{where} {i}")
        return new
    raise ValueError(f"Invalid parameter path {'__'.join(path)!r} at {where}")
