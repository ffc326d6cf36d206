"""The playground's network: its settings (checked), the ``fastnn.nn`` model they build, the
input features (TensorFlow Playground's crosses), and what the page draws of it: the output on
a grid, each hidden unit's heatmap, the weights, the losses."""
import base64
import dataclasses
import itertools
import math

import numpy as np

from fastnn import nn

from ._data import DOMAIN, DataError, _choice, _number, _show

ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
LOSSES = ("cross_entropy", "squared_error")
FEATURES = ("x", "y", "x2", "y2", "xy", "sinx", "siny")
MAX_LAYERS, MAX_UNITS = 6, 16      # hidden layers, units per layer
MAX_PARAMETERS = 2000
MAX_BATCH = 256
GRID = 50                          # cells per side of the output's grid
UNIT_GRID = 20                     # cells per side of a hidden unit's heatmap
LEAKY_SLOPE = 0.1


class ModelError(ValueError):
    """Settings the playground refuses (a model too large, an unknown name): said plainly."""


@dataclasses.dataclass
class ModelSpec:
    """The network and how it trains."""

    layers: list = dataclasses.field(default_factory=lambda: [[4, "tanh"], [2, "tanh"]])
    features: list = dataclasses.field(default_factory=lambda: ["x", "y"])
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 0.03
    batch_size: int = 10
    l2: float = 0.0
    dropout: float = 0.0
    seed: int = 0

    @classmethod
    def from_json(cls, d):
        """Checked settings from the page's JSON: ``layers`` is a list of ``[units,
        activation]``; unknown keys are refused."""
        if not isinstance(d, dict):
            raise ModelError("the model settings must be a JSON object")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ModelError(f"unknown model setting {unknown[0]!r}")
        spec = cls()
        try:
            spec.layers = _layers(d.get("layers", spec.layers))
            spec.features = _features(d.get("features", spec.features))
            spec.loss = _choice(d.get("loss", spec.loss), LOSSES, "loss")
            spec.optimizer = _choice(d.get("optimizer", spec.optimizer), OPTIMIZERS, "optimizer")
            spec.lr = _number(d.get("lr", spec.lr), "the learning rate", 1e-6, 10.0)
            spec.batch_size = int(_number(d.get("batch_size", spec.batch_size), "batch size", 1,
                                          MAX_BATCH, integer=True))
            spec.l2 = _number(d.get("l2", spec.l2), "L2", 0.0, 10.0)
            spec.dropout = _number(d.get("dropout", spec.dropout), "dropout", 0.0, 0.9)
            spec.seed = int(_number(d.get("seed", spec.seed), "seed", 0, 2**31 - 1,
                                    integer=True))
        except DataError as err:
            raise ModelError(str(err)) from None
        return spec

    def check_size(self, n_outputs):
        count = parameter_count(self, n_outputs)
        if count > MAX_PARAMETERS:
            raise ModelError(f"the model is too large: {count} parameters, the playground "
                             f"trains at most {MAX_PARAMETERS}")

    def to_json(self):
        return dataclasses.asdict(self)


def _layers(value):
    if not isinstance(value, list):
        raise ModelError("layers must be a list of [units, activation]")
    if len(value) > MAX_LAYERS:
        raise ModelError(f"the model is too large: {len(value)} hidden layers, the playground "
                         f"takes at most {MAX_LAYERS}")
    out = []
    for i, layer in enumerate(value, start=1):
        if not isinstance(layer, list) or len(layer) != 2:
            raise ModelError(f"hidden layer {i} must be [units, activation]")
        units, act = layer
        if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units:
            raise ModelError(f"hidden layer {i}: units must be a whole number from 1 to "
                             f"{MAX_UNITS}, got {_show(units)}")
        if units > MAX_UNITS:
            raise ModelError(f"the model is too large: hidden layer {i} has {_show(units)} units, the "
                             f"playground takes at most {MAX_UNITS} per layer")
        out.append([units, _choice(act, ACTIVATIONS, f"hidden layer {i}'s activation")])
    return out


def _features(value):
    if not isinstance(value, list) or not value:
        raise ModelError("choose at least one input feature")
    for name in value:
        _choice(name, FEATURES, "a feature")
    return [f for f in FEATURES if f in value]  # their fixed order, once each


def parameter_count(spec, n_outputs):
    sizes = [len(spec.features)] + [u for u, _ in spec.layers] + [n_outputs]
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def n_outputs(spec, points):
    return 1 if points.regression else points.n_classes


def features(spec, X):
    """The network's inputs for points ``X`` (n, 2): the chosen features, in FEATURES order."""
    x, y = X[:, 0], X[:, 1]
    columns = {"x": x, "y": y, "x2": x * x, "y2": y * y, "xy": x * y, "sinx": np.sin(x),
               "siny": np.sin(y)}
    return np.column_stack([columns[f] for f in spec.features]).astype(np.float32)


def targets(spec, points, y):
    """What the loss compares the output with: class indices for cross-entropy, one-hot rows
    for squared error on classes, a column of targets for regression."""
    if points.regression:
        return y.astype(np.float32).reshape(-1, 1)
    if spec.loss == "squared_error":
        return np.eye(points.n_classes, dtype=np.float32)[y]
    return y.astype(np.int64)


def build(spec, n_in, n_out):
    """The ``fastnn.nn.Sequential``: Dense + activation (+ Dropout) per hidden layer, then a
    Dense output (one unit per class, or one for regression), built for ``n_in`` inputs."""
    acts = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU,
            "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE)}
    layers = []
    for units, act in spec.layers:
        layers += [nn.Dense(units), acts[act]()]
        if spec.dropout:
            layers.append(nn.Dropout(spec.dropout))
    model = nn.Sequential(*layers, nn.Dense(n_out), seed=spec.seed)
    return model.build((n_in,))


def fit_options(spec, regression):
    """``fastnn.nn.fit``'s loss, optimizer name and options for these settings."""
    loss = "mse" if regression or spec.loss == "squared_error" else "cross_entropy"
    name, options = {"sgd": ("sgd", {}), "momentum": ("sgd", {"momentum": 0.9}),
                     "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
                     "adagrad": ("adagrad", {}), "rmsprop": ("rmsprop", {}),
                     "adam": ("adam", {})}[spec.optimizer]
    return loss, name, options


def make_optimizer(spec, model):
    _, name, options = fit_options(spec, False)
    return nn.optimizers.get(name, model, lr=spec.lr, **options)


def onnx_support(spec):
    """{"ok": bool, "why": str}: ONNX export needs scikit-learn's MLP (one activation, no
    leaky ReLU) and skl2onnx."""
    acts = {a for _, a in spec.layers}
    if "leaky_relu" in acts:
        return {"ok": False, "why": "ONNX export needs scikit-learn's MLP, which has no leaky "
                                    "ReLU"}
    if len(acts) > 1:
        return {"ok": False, "why": "ONNX export needs scikit-learn's MLP, whose hidden layers "
                                    "share one activation"}
    return {"ok": True, "why": ""}


# -- what the page draws -----------------------------------------------------------------------

def _grid(n):
    """Cell centres of an n x n grid over the view, row by row from the top (y = +6)."""
    c = (np.arange(n) + 0.5) / n * 2 * DOMAIN - DOMAIN
    gx, gy = np.meshgrid(c, c[::-1])
    return np.column_stack([gx.ravel(), gy.ravel()])


_GRIDS = {}


def grid(n):
    if n not in _GRIDS:
        _GRIDS[n] = _grid(n)
    return _GRIDS[n]


def outputs(model, x):
    """The model's output (inference mode) and each hidden activation's output, as copies."""
    hidden = []
    for layer in model.layers:
        x = layer.forward(x, False)
        if isinstance(layer, (nn.Tanh, nn.Sigmoid, nn.ReLU, nn.LeakyReLU)):
            hidden.append(np.array(x, dtype=np.float32))
    return np.array(x, dtype=np.float64), hidden


def _b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


def _quantise(v, lo, hi):
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint((v - lo) * scale), 0, 255)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def view(spec, model, regression):
    """The output over the view's grid and the hidden units' heatmaps, as the page takes them
    (base64 of uint8 arrays, row by row from the top left)."""
    out, _ = outputs(model, features(spec, grid(GRID)))
    if regression:
        region = {"kind": "regression", "value": _b64(_quantise(out[:, 0], -1.0, 1.0)),
                  "lo": -1.0, "hi": 1.0}
    else:
        label, conf = _class_and_confidence(spec, out)
        region = {"kind": "classes", "label": _b64(label), "confidence": _b64(conf * 255)}
    _, hidden = outputs(model, features(spec, grid(UNIT_GRID)))
    units = []
    for (_, act), h in zip(spec.layers, hidden):
        lo, hi = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}.get(
            act, (min(0.0, float(h.min())), max(1e-6, float(np.abs(h).max()))))
        units.append({"lo": lo, "hi": hi,
                      "maps": [_b64(_quantise(h[:, j], lo, hi)) for j in range(h.shape[1])]})
    region.update(n=GRID, extent=DOMAIN)
    return {"region": region, "units": units, "unit_n": UNIT_GRID}


def _class_and_confidence(spec, out):
    if spec.loss == "squared_error":
        label = out.argmax(axis=1)
        conf = np.clip(out[np.arange(len(out)), label], 0.0, 1.0)
    else:
        p = softmax(out)
        label = p.argmax(axis=1)
        conf = p[np.arange(len(p)), label]
    k = out.shape[1]
    conf = np.clip((conf - 1.0 / k) / (1.0 - 1.0 / k), 0.0, 1.0)  # 0: a coin toss, 1: sure
    return label, conf


def weights(model):
    """Each Dense layer's weights as (inputs x units) lists, rounded for the page."""
    out = []
    for layer in model.layers:
        if isinstance(layer, nn.Dense):
            w = np.asarray(layer.weight.data, dtype=np.float64).T
            out.append(np.round(w, 4).tolist())
    return out


def scores(spec, model, X, y, points):
    """(loss, accuracy or None) of the model on points ``X``, ``y``, as the training loss counts
    it (mean squared error over every output, or mean cross-entropy), without the L2 penalty."""
    if len(y) == 0:
        return None, None
    out, _ = outputs(model, features(spec, X))
    if points.regression:
        return float(np.mean((out[:, 0] - y) ** 2)), None
    if spec.loss == "squared_error":
        loss = float(np.mean((out - np.eye(points.n_classes)[y]) ** 2))
    else:
        p = softmax(out)
        loss = float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12))))
    accuracy = float(np.mean(out.argmax(axis=1) == y))
    return (loss if math.isfinite(loss) else None), accuracy
