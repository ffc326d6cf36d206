"""Taking the playground's network home: a ``fastnn.save`` file, an ONNX file (where the network
is scikit-learn's MLP: one hidden activation among sigmoid, tanh and ReLU) and a Python script
that rebuilds and retrains it with ``fastnn.sklearn`` on the same points.

Nothing the page sends reaches these files as text: the settings are checked names and numbers
(``ModelSpec``), the points numbers, and class names from a CSV match a short pattern and are
written as Python string literals (``repr``).
"""
import io
import textwrap

import numpy as np

from fastnn import nn

from . import _model

_SK_ACTIVATION = {"sigmoid": "logistic", "tanh": "tanh", "relu": "relu"}
_NN_ACTIVATION = {"tanh": "nn.Tanh()", "sigmoid": "nn.Sigmoid()", "relu": "nn.ReLU()",
                  "leaky_relu": f"nn.LeakyReLU({_model.LEAKY_SLOPE})"}
_FEATURE_CODE = {"x": "x", "y": "y", "x2": "x * x", "y2": "y * y", "xy": "x * y",
                 "sinx": "np.sin(x)", "siny": "np.sin(y)"}


def fastnn_file(model):
    """The trained ``fastnn.nn.Sequential`` as ``fastnn.save`` writes it (bytes)."""
    import fastnn
    buf = io.BytesIO()
    fastnn.save(model, buf)
    return buf.getvalue()


def as_mlp(spec, points, model):
    """A fitted ``fastnn.sklearn.MLPClassifier`` / ``MLPRegressor`` with the network's weights
    (it takes the features as columns). Two classes become scikit-learn's single logistic
    output: ``sigmoid(z1 - z0)`` is the softmax's probability of class 1."""
    from sklearn.preprocessing import LabelBinarizer

    from fastnn.sklearn import MLPClassifier, MLPRegressor
    support = _model.onnx_support(spec)
    if not support["ok"]:
        raise ValueError(support["why"])
    dense = [layer for layer in model.layers if isinstance(layer, nn.Dense)]
    coefs = [np.asarray(d.weight.data, dtype=np.float64).T.copy() for d in dense]
    intercepts = [np.asarray(d.bias.data, dtype=np.float64).copy() for d in dense]
    acts = {a for _, a in spec.layers}
    activation = _SK_ACTIVATION[acts.pop()] if acts else "relu"
    sizes = tuple(u for u, _ in spec.layers)
    if points.regression:
        mlp = MLPRegressor(hidden_layer_sizes=sizes, activation=activation)
        mlp.out_activation_ = "identity"
    else:
        mlp = MLPClassifier(hidden_layer_sizes=sizes, activation=activation)
        k = points.n_classes
        mlp.classes_ = np.arange(k)
        mlp._label_binarizer = LabelBinarizer().fit(mlp.classes_)
        if k == 2:
            coefs[-1] = coefs[-1][:, 1:] - coefs[-1][:, :1]
            intercepts[-1] = intercepts[-1][1:] - intercepts[-1][:1]
            mlp.out_activation_ = "logistic"
        else:
            mlp.out_activation_ = "softmax"
    mlp.coefs_, mlp.intercepts_ = coefs, intercepts
    mlp.n_features_in_ = len(spec.features)
    mlp.n_layers_ = len(coefs) + 1
    mlp.n_outputs_ = coefs[-1].shape[1]
    mlp.n_iter_ = mlp.t_ = 0
    return mlp


def onnx_file(spec, points, model):
    """The network as an ONNX model (bytes) taking the points' (x, y) as a float32 (N, 2) input
    named ``X``: the feature crosses are nodes of the graph. Outputs: ``label`` and
    ``probabilities`` for classes (the class index; with squared error the probabilities are
    the softmax of the outputs), ``variable`` for regression."""
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType

    import fastnn.sklearn
    fastnn.sklearn.register_onnx_converters()
    mlp = as_mlp(spec, points, model)
    options = None if points.regression else {"zipmap": False}
    onx = skl2onnx.to_onnx(mlp, initial_types=[("features", FloatTensorType([None, mlp.n_features_in_]))],
                           options=options, target_opset=_opset())
    onx = _with_features(spec, onx)
    onx.doc_string = ("fastnn playground network; input X: float32 (N, 2) points (x, y) in the "
                      "playground's [-6, 6] square")
    return onx.SerializeToString()


def _opset():
    from skl2onnx import get_latest_tested_opset_version
    return min(get_latest_tested_opset_version(), 18)


def _with_features(spec, onx):
    """``onx`` behind a small graph from the points (x, y) to the chosen features."""
    import onnx
    from onnx import TensorProto, compose, helper
    p = "playground_"  # names of their own beside skl2onnx's
    nodes = [helper.make_node("Gather", ["X", p + "i0"], [p + "x"], axis=1),
             helper.make_node("Gather", ["X", p + "i1"], [p + "y"], axis=1)]
    ops = {"x2": ("Mul", ["x", "x"]), "y2": ("Mul", ["y", "y"]), "xy": ("Mul", ["x", "y"]),
           "sinx": ("Sin", ["x"]), "siny": ("Sin", ["y"])}
    for name in spec.features:
        if name in ops:
            op, inputs = ops[name]
            nodes.append(helper.make_node(op, [p + i for i in inputs], [p + name]))
    nodes.append(helper.make_node("Concat", [p + f for f in spec.features], [p + "features"],
                                  axis=1))
    inits = [helper.make_tensor(p + "i0", TensorProto.INT64, [1], [0]),
             helper.make_tensor(p + "i1", TensorProto.INT64, [1], [1])]
    graph = helper.make_graph(
        nodes, "playground_features",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info(p + "features", TensorProto.FLOAT,
                                       [None, len(spec.features)])], inits)
    front = helper.make_model(graph, opset_imports=[o for o in onx.opset_import if o.domain in
                                                    ("", "ai.onnx")],
                              ir_version=onx.ir_version)
    merged = compose.merge_models(front, onx, io_map=[(p + "features", "features")])
    onnx.checker.check_model(merged)
    return merged


# -- the Python script -------------------------------------------------------------------------

def python_script(spec, points, epochs):
    """A script that rebuilds the network with ``fastnn.sklearn`` and retrains it on the same
    points for ``epochs`` epochs (at least 1), then prints its test score."""
    X_tr, y_tr, X_te, y_te = points.split()
    epochs = max(1, int(epochs))
    layers = []
    for units, act in spec.layers:
        layers += [f"nn.Dense({int(units)})", _NN_ACTIVATION[act]]
        if spec.dropout:
            layers.append(f"nn.Dropout({float(spec.dropout)!r})")
    _, name, options = _model.fit_options(spec, points.regression)
    squared = not points.regression and spec.loss == "squared_error"
    estimator = "NeuralNetRegressor" if points.regression or squared else "NeuralNetClassifier"
    feature_list = ", ".join(_FEATURE_CODE[f] for f in spec.features)
    what = ("regression" if points.regression else
            f"{points.n_classes} classes" + (", squared error" if squared else ""))
    hidden = ", ".join(f"{u} {a}" for u, a in spec.layers) or "no hidden layer"
    lines = [
        f'"""The fastnn playground\'s network ({hidden}; {what}), rebuilt and retrained with',
        "fastnn.sklearn on the same points. Written by `fastnn playground`.",
        "",
        "Points lie in the playground's [-6, 6] square"
        + (" (an uploaded file's columns were scaled onto it)." if points.source == "upload"
           else ".") + "",
        '"""',
        "import warnings",
        "",
        "import numpy as np",
        "from sklearn.exceptions import ConvergenceWarning",
        "",
        "from fastnn import nn",
        f"from fastnn.sklearn import {estimator}",
        "",
    ]
    if not points.regression:
        lines.append(f"CLASSES = {[str(c) for c in points.class_names]!r}  # label i is CLASSES[i]")
    lines += [_array("X_train", X_tr, 2), _array("y_train", y_tr, 1, points.regression),
              _array("X_test", X_te, 2), _array("y_test", y_te, 1, points.regression), "", "",
              "def features(X):",
              '    """The network\'s inputs: the playground\'s feature crosses of the points."""',
              "    x, y = X[:, 0], X[:, 1]",
              f"    return np.column_stack([{feature_list}])", "", ""]
    opts = "" if not options else f"\n    optimizer_options={options!r},"
    lines += [
        f"model = {estimator}(",
        f"    layers=[{', '.join(layers)}],",
        f"    optimizer={name!r},{opts}",
        (f"    learning_rate_init={float(spec.lr)!r}, batch_size={int(spec.batch_size)}, "
         f"alpha={float(spec.l2)!r},"),
        f"    max_iter={epochs}, n_iter_no_change={epochs}, random_state={int(spec.seed)})",
        "with warnings.catch_warnings():  # max_iter epochs, as in the playground",
        '    warnings.simplefilter("ignore", ConvergenceWarning)',
    ]
    held, part = ("test", "test") if len(y_te) else ("training", "train")   # (all may train)
    Xh, yh = f"features(X_{part})", f"y_{part}"
    if squared:
        k = points.n_classes
        lines += [f"    model.fit(features(X_train), np.eye({k})[y_train])",
                  f"accuracy = np.mean(model.predict({Xh}).argmax(axis=1) == {yh})",
                  f'print("{held} accuracy", accuracy)']
    elif points.regression:
        lines += ["    model.fit(features(X_train), y_train)",
                  f"mse = np.mean((model.predict({Xh}) - {yh}) ** 2)",
                  f'print("{held} mean squared error", mse)']
    else:
        lines += ["    model.fit(features(X_train), y_train)",
                  f'print("{held} accuracy", model.score({Xh}, {yh}))']
    return "\n".join(lines) + "\n"


def _array(name, a, columns, floats=True):
    """``name = np.array([...])`` with the values wrapped at 96 characters."""
    values = np.asarray(a).ravel()
    if floats:
        text = ", ".join(_num(v) for v in values)
    else:
        text = ", ".join(str(int(v)) for v in values)
    body = textwrap.fill(text, 92, initial_indent="    ", subsequent_indent="    ")
    shape = ".reshape(-1, 2)" if columns == 2 else ""
    return f"{name} = np.array([\n{body}\n]){shape}" if values.size else \
        f"{name} = np.zeros({'(0, 2)' if columns == 2 else '0'}){shape}"


def _num(v):
    text = f"{float(v):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
