"""Estimator state for fastnn.save / fastnn.load: what is written, and every check on what is read."""
import numbers

import numpy as np
from sklearn.base import is_classifier
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted
from .._kernels._validate import is_int
from ._optimizer import SolverState




_SAVED_SCALARS = ("n_iter_", "t_", "loss_", "best_loss_", "loss_curve_", "validation_scores_",
                  "best_validation_score_", "validation_losses_", "n_features_in_", "n_layers_",
                  "n_outputs_", "out_activation_", "_no_improvement_count", "_y_ndim")


def _json_params(est):
    params = est.get_params(deep=False)
    out = {}
    for name, value in params.items():
        if name in ("layers", "callbacks"):  # layers: stored as the model; callbacks: run-time
            continue
        if name == "dtype":
            value = None if value is None else np.dtype(value).name
        elif name == "random_state" and not (value is None or isinstance(value, numbers.Integral)):
            raise TypeError("only an int or None random_state can be saved; got "
                            f"{type(value).__name__}")
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, np.generic):
            value = value.item()
        elif name == "class_weight" and isinstance(value, dict):  # JSON keys are strings only
            value = {"pairs": [[k.item() if isinstance(k, np.generic) else k, float(v)]
                               for k, v in value.items()]}
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


def _is_real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _reals_or_none(v):
    return v is None or (isinstance(v, list) and all(map(_is_real, v)))


# What each saved fitted attribute must be (a file from a stranger is checked against it).
_SCALAR_CHECKS = {
    "n_iter_": (lambda v: is_int(v) and v >= 0, "an int >= 0"),
    "t_": (lambda v: is_int(v) and v >= 0, "an int >= 0"),
    "n_features_in_": (lambda v: is_int(v) and v >= 1, "an int >= 1"),
    "n_layers_": (lambda v: is_int(v) and v >= 2, "an int >= 2"),
    "n_outputs_": (lambda v: is_int(v) and v >= 1, "an int >= 1"),
    "_no_improvement_count": (lambda v: is_int(v) and v >= 0, "an int >= 0"),
    "_y_ndim": (lambda v: v in (1, 2) and is_int(v), "1 or 2"),
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
    weights = params.get("class_weight")
    if isinstance(weights, dict) and set(weights) == {"pairs"}:
        pairs = weights["pairs"]
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2
                                                  for p in pairs):
            raise ValueError("class_weight must be saved as [label, weight] pairs")
        params["class_weight"] = {k: v for k, v in pairs}
    unknown = set(params) - set(cls._get_param_names())
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)} for {cls.__name__}")
    est = cls(**params, **extra)
    est._validate_params()  # scikit-learn's checks (InvalidParameterError, a ValueError)
    try:
        est._fastnn_params()
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
        config["optimizer"] = {"lr": opt.lr, "t": int(opt.t)}
        arrays["solver/m"], arrays["solver/v"] = opt.m, opt.v
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
        if not (np.isfinite(lr) and lr > 0) or not is_int(t) \
                or t < 0:
            raise ValueError(f"invalid optimizer state: lr={lr!r}, t={t!r}")
        est._optimizer_state = SolverState(lr, int(t), m, v)
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
    from ..nn._state import _optimizer_state, model_state
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

    from .._archive import _Invalid
    from ..nn._state import _optimizer_from_state, model_from_state
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




def attach():
    """Give the four estimators their save/load hooks."""
    from ._mlp import MLPClassifier, MLPRegressor
    from ._neuralnet import NeuralNetClassifier, NeuralNetRegressor
    for _cls in (MLPClassifier, MLPRegressor):
        _cls._fastnn_state = _mlp_state
        _cls._from_fastnn_state = classmethod(_mlp_from_state)
    for _cls in (NeuralNetClassifier, NeuralNetRegressor):
        _cls._fastnn_state = _neuralnet_state
        _cls._from_fastnn_state = classmethod(_neuralnet_from_state)
    del _cls
