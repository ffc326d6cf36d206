"""ONNX export of ``MLPClassifier`` / ``MLPRegressor`` and of the ``NeuralNet`` estimators
through skl2onnx.

skl2onnx converts scikit-learn's MLPs; one call registers fastnn's estimators with it, after
which they convert as scikit-learn's do, alone or inside a ``Pipeline``::

    pip install 'fastnn[onnx]'        # skl2onnx, onnx, onnxruntime

    import fastnn.sklearn
    from skl2onnx import to_onnx
    import onnxruntime as ort

    fastnn.sklearn.register_onnx_converters()   # once per process
    clf = fastnn.sklearn.MLPClassifier((64,)).fit(X, y)
    onx = to_onnx(clf, X[:1], options={"zipmap": False})
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, proba = sess.run(None, {"X": X})   # clf.predict(X), clf.predict_proba(X)

When skl2onnx is already imported, ``import fastnn.sklearn`` registers the converters itself;
calling ``register_onnx_converters()`` again does no harm. ``import fastnn.sklearn`` never imports
skl2onnx.

The type of the sample given to ``to_onnx`` (or of ``initial_types``) sets the precision of the
graph, as for scikit-learn's models: a float32 sample gives a float32 graph, a float64 sample a
float64 one, whatever the dtype of ``coefs_`` (for fastnn's own precision, export with
``X[:1].astype(model.coefs_[0].dtype)``). Outputs are skl2onnx's: the classifier gives the labels
(multilabel models: the 0/1 indicator matrix) and the probabilities, as one dict per row unless
``options={"zipmap": False}`` (ONNX's ZipMap takes float32 only: float64 graphs need
``zipmap=False``, as for scikit-learn's models); the regressor gives an (n_samples, n_outputs)
array, (n_samples, 1) for a single output.

The graphs are skl2onnx's own converters for scikit-learn's MLPs, except where those fail or
give wrong results: multilabel classifiers (skl2onnx's Binarizer node has no float64 kernel in
onnxruntime, and its label shape is declared 1-D), regressors with several outputs (skl2onnx
flattens them into one column) and ``loss='poisson'`` (its ``exp`` output activation is not in
skl2onnx's table). Those are built here with the same nodes.

``NeuralNetClassifier`` / ``NeuralNetRegressor`` convert layer by layer (``_NetGraph``): their
outputs are those of the MLPs (labels and ``predict_proba``'s softmax; the regressor's
predictions as (n_samples, n_outputs)), the same options apply. The layers that export:
``Dense`` (MatMul + Add), the activations (``ReLU``, ``LeakyReLU``, ``ELU``, ``Sigmoid``,
``Tanh``, ``GELU``, ``Softmax``, ``PReLU``), ``Dropout`` (nothing: it is the identity in
inference), ``Flatten``, ``Reshape``, ``BatchNorm`` (its running statistics folded into Mul +
Add), ``LayerNorm``, ``Embedding`` (Gather of the codes, which ``Columns`` reads from float
columns), and the graph containers: ``Residual`` (Add), ``Branches`` (Add or Concat) and
``Columns`` (a Gather of each column block, its branch, then Add or Concat), nested in any
way. Any other layer (convolutions, pooling, recurrent layers) makes the export raise a
ValueError that names it, its place in the model and what is supported.
"""
import numpy as np

_INSTALL = "pip install 'fastnn[onnx]'"
_CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "output_class_labels": [False, True],
                       "nocl": [True, False]}  # those of skl2onnx's MLPClassifier converter
_ACTIVATIONS = {"identity": "Identity", "logistic": "Sigmoid", "tanh": "Tanh", "relu": "Relu",
                "softmax": "Softmax", "exp": "Exp"}


def register_onnx_converters():
    """Register fastnn's estimators with skl2onnx, so that ``skl2onnx.to_onnx`` /
    ``convert_sklearn`` convert them (alone or in a pipeline): ``MLPClassifier`` and
    ``MLPRegressor`` with the converters of scikit-learn's MLPs and the same options
    (``zipmap``, ``output_class_labels``, ``nocl``); ``NeuralNetClassifier`` and
    ``NeuralNetRegressor`` layer by layer when their layers are dense ones (Dense, the
    activations, Dropout, Flatten, Reshape, BatchNorm, LayerNorm, Embedding) inside any
    ``Sequential``, ``Residual``, ``Branches`` or ``Columns``; any other layer raises a
    ValueError naming it. Idempotent. Raises ImportError when skl2onnx is not installed."""
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:
        raise ImportError("exporting fastnn models to ONNX needs skl2onnx (and onnxruntime to "
                          f"run them): {_INSTALL}") from exc
    from ._mlp import MLPClassifier, MLPRegressor
    from ._neuralnet import NeuralNetClassifier, NeuralNetRegressor
    update_registered_converter(MLPClassifier, "FastnnMLPClassifier", _classifier_shapes,
                                _convert_classifier, parser=_parse_classifier,
                                options=_CLASSIFIER_OPTIONS)
    update_registered_converter(MLPRegressor, "FastnnMLPRegressor", _regressor_shapes,
                                _convert_regressor)
    update_registered_converter(NeuralNetClassifier, "FastnnNeuralNetClassifier",
                                _net_classifier_shapes, _convert_net_classifier,
                                parser=_parse_net_classifier, options=_CLASSIFIER_OPTIONS)
    update_registered_converter(NeuralNetRegressor, "FastnnNeuralNetRegressor",
                                _net_regressor_shapes, _convert_net_regressor)


def _register_if_loaded():
    """Called by ``import fastnn.sklearn`` when skl2onnx is already imported: registers, and
    lets nothing break the import (a broken or partly imported skl2onnx is left alone; the
    explicit call reports it)."""
    try:
        register_onnx_converters()
    except Exception:  # noqa: BLE001
        pass


def _check(model):
    from sklearn.utils.validation import check_is_fitted
    check_is_fitted(model)
    if model.activation not in ("identity", "logistic", "tanh", "relu") or \
            model.out_activation_ not in _ACTIVATIONS:
        raise ValueError(f"cannot export activation={model.activation!r}, "
                         f"out_activation_={model.out_activation_!r}")


def _multilabel(model):
    return getattr(model._label_binarizer, "y_type_", None) == "multilabel-indicator"


def _parse_classifier(scope, model, inputs, custom_parsers=None):
    """skl2onnx's parser of classifiers (the one ``update_registered_converter`` would pick for
    the zipmap option), after the check that the model is fitted."""
    from skl2onnx._parse import _parse_sklearn_classifier
    _check(model)
    return _parse_sklearn_classifier(scope, model, inputs, custom_parsers=custom_parsers)


# -- shape calculators ---------------------------------------------------------------------
def _classifier_shapes(operator):
    from skl2onnx.common.data_types import Int64TensorType
    from skl2onnx.shape_calculators.linear_classifier import (
        calculate_linear_classifier_output_shapes)
    model = operator.raw_operator
    _check(model)
    calculate_linear_classifier_output_shapes(operator)
    if _multilabel(model):  # labels are the (N, n_outputs) indicator matrix
        n = operator.inputs[0].get_first_dimension()
        operator.outputs[0].set_type(Int64TensorType([n, model.n_outputs_]))


def _regressor_shapes(operator):
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes
    model = operator.raw_operator
    _check(model)
    calculate_linear_regressor_output_shapes(operator)  # [N, 1], of the input's float type
    if model.n_outputs_ > 1:
        n = operator.inputs[0].get_first_dimension()
        operator.outputs[0].set_type(type(operator.outputs[0].type)([n, model.n_outputs_]))


# -- converters ----------------------------------------------------------------------------
def _proto_dtype(operator):
    """skl2onnx's rule: the graph computes in float64 for a float64 input, else in float32."""
    from skl2onnx.common.data_types import guess_proto_type
    from skl2onnx.proto import onnx_proto
    proto = guess_proto_type(operator.inputs[0].type)
    return proto if proto == onnx_proto.TensorProto.DOUBLE else onnx_proto.TensorProto.FLOAT


def _forward(scope, operator, container):
    """The network's output activations, as skl2onnx's MLP converters build them (Cast, then
    MatMul + Add and the activation per layer), for any output activation fastnn has."""
    model = operator.raw_operator
    proto = _proto_dtype(operator)
    name = scope.get_unique_variable_name("cast_input")
    container.add_node("Cast", operator.inputs[0].full_name, name, to=proto,
                       name=scope.get_unique_operator_name("Cast"))
    last = len(model.coefs_) - 1
    for i, (coef, intercept) in enumerate(zip(model.coefs_, model.intercepts_)):
        w = scope.get_unique_variable_name("coefficient")
        b = scope.get_unique_variable_name("intercepts")
        container.add_initializer(w, proto, list(coef.shape), np.asarray(coef).ravel())
        container.add_initializer(b, proto, [1, intercept.shape[0]], np.asarray(intercept))
        product = scope.get_unique_variable_name("mul_result")
        container.add_node("MatMul", [name, w], product,
                           name=scope.get_unique_operator_name("MatMul"))
        total = scope.get_unique_variable_name("add_result")
        container.add_node("Add", [product, b], total, name=scope.get_unique_operator_name("Add"))
        op = _ACTIVATIONS[model.out_activation_ if i == last else model.activation]
        name = scope.get_unique_variable_name("activations")
        container.add_node(op, total, name, name=scope.get_unique_operator_name(op))
    return name, proto


def _convert_classifier(scope, operator, container):
    from skl2onnx.operator_converters.multilayer_perceptron import convert_sklearn_mlp_classifier
    from skl2onnx.proto import onnx_proto
    if not _multilabel(operator.raw_operator):
        convert_sklearn_mlp_classifier(scope, operator, container)
        return
    # multilabel: probabilities as they are, labels = probabilities > 0.5 (LabelBinarizer's
    # threshold), with nodes that onnxruntime runs in float32 and float64
    proba, proto = _forward(scope, operator, container)
    container.add_node("Identity", proba, operator.outputs[1].full_name,
                       name=scope.get_unique_operator_name("Identity"))
    half = scope.get_unique_variable_name("threshold")
    container.add_initializer(half, proto, [], [0.5])
    above = scope.get_unique_variable_name("above")
    container.add_node("Greater", [proba, half], above,
                       name=scope.get_unique_operator_name("Greater"))
    container.add_node("Cast", above, operator.outputs[0].full_name,
                       to=onnx_proto.TensorProto.INT64, name=scope.get_unique_operator_name("Cast"))


def _convert_regressor(scope, operator, container):
    from skl2onnx.operator_converters.multilayer_perceptron import convert_sklearn_mlp_regressor
    model = operator.raw_operator
    if model.n_outputs_ == 1 and model.out_activation_ == "identity":
        convert_sklearn_mlp_regressor(scope, operator, container)
        return
    out, _ = _forward(scope, operator, container)  # already (N, n_outputs)
    container.add_node("Identity", out, operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("Identity"))


# -- NeuralNetClassifier / NeuralNetRegressor: layer by layer ---------------------------------
_NET_ACTIVATIONS = {"ReLU": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh"}
_NET_LAYERS = ("Dense", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "GELU", "Softmax",
               "PReLU", "Dropout", "Flatten", "Reshape", "BatchNorm", "LayerNorm", "Embedding")
_NET_CONTAINERS = ("Sequential", "Residual", "Branches", "Columns")


def _check_net(model):
    """A fitted NeuralNet estimator whose every layer exports; else a ValueError naming the
    first one that does not, where it sits, and what is supported."""
    from sklearn.utils.validation import check_is_fitted

    from ..nn.sequential import named_children_of
    check_is_fitted(model)
    net = model.model_

    def walk(layer, path):
        name = type(layer).__name__
        if (name not in _NET_LAYERS + _NET_CONTAINERS
                or type(layer).__module__.split(".")[:2] != ["fastnn", "nn"]):
            raise ValueError(
                f"cannot export this {type(model).__name__} to ONNX: {path} has no ONNX "
                f"converter in fastnn. Supported layers: {', '.join(_NET_LAYERS)}, and the "
                f"containers {', '.join(_NET_CONTAINERS)} holding them (nested in any way)")
        if name == "Softmax" and layer.axis not in (-1, len(layer.input_shape)):
            raise ValueError(f"cannot export this {type(model).__name__} to ONNX: {path} is a "
                             f"Softmax over axis {layer.axis}; only the last axis exports")
        for label, child in named_children_of(layer):
            walk(child, f"{path} > {label}")

    for label, layer in named_children_of(net):
        walk(layer, label)


def _parse_net_classifier(scope, model, inputs, custom_parsers=None):
    from skl2onnx._parse import _parse_sklearn_classifier
    _check_net(model)
    return _parse_sklearn_classifier(scope, model, inputs, custom_parsers=custom_parsers)


def _net_classifier_shapes(operator):
    from skl2onnx.shape_calculators.linear_classifier import (
        calculate_linear_classifier_output_shapes)
    _check_net(operator.raw_operator)
    calculate_linear_classifier_output_shapes(operator)


def _net_regressor_shapes(operator):
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes
    model = operator.raw_operator
    _check_net(model)
    calculate_linear_regressor_output_shapes(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].set_type(type(operator.outputs[0].type)([n, model.n_outputs_]))


class _NetGraph:
    """Adds the nodes of a fastnn network to skl2onnx's container: ``layers(layers, x, rank)``
    returns the name of the output and its rank (batch axis included)."""

    def __init__(self, scope, container, proto):
        from skl2onnx.proto import onnx_proto
        self.scope, self.container, self.proto = scope, container, proto
        self.dtype = np.float64 if proto == onnx_proto.TensorProto.DOUBLE else np.float32
        self.opset = container.target_opset

    def node(self, op, inputs, **attrs):
        out = self.scope.get_unique_variable_name(op.lower())
        self.container.add_node(op, inputs, out, name=self.scope.get_unique_operator_name(op),
                                **attrs)
        return out

    def const(self, value, name="const"):
        from skl2onnx.proto import onnx_proto
        from ..nn import to_host
        value = np.asarray(to_host(value))
        if value.dtype.kind in "iu":   # indices and shapes: int64
            value, proto = value.astype(np.int64), onnx_proto.TensorProto.INT64
        else:   # weights: in the graph's float type
            value, proto = value.astype(self.dtype), self.proto
        key = self.scope.get_unique_variable_name(name)
        self.container.add_initializer(key, proto, list(value.shape), value.ravel().tolist())
        return key

    def layers(self, layers, x, rank):
        for layer in layers:
            x, rank = self.layer(layer, x, rank)
        return x, rank

    def layer(self, layer, x, rank):
        from ..nn import to_host
        name = type(layer).__name__
        if name in _NET_ACTIVATIONS:
            return self.node(_NET_ACTIVATIONS[name], x), rank
        if name == "Dropout":
            return x, rank
        if name == "Dense":
            w = np.asarray(to_host(layer.weight.data)).T
            y = self.node("MatMul", [x, self.const(w, "coefficient")])
            if layer.bias is not None:
                y = self.node("Add", [y, self.const(layer.bias.data, "intercepts")])
            return y, rank
        # LeakyReLU, ELU and PReLU from Relu, Sub, Mul, Exp: onnxruntime has no float64
        # kernels for LeakyRelu, Elu or PRelu
        if name == "LeakyReLU":
            return self._leaky(x, self.const(np.array(layer.negative_slope), "slope")), rank
        if name == "ELU":   # relu(x) + alpha * (exp(min(x, 0)) - 1)
            pos = self.node("Relu", x)
            curve = self.node("Sub", [self.node("Exp", self.node("Sub", [x, pos])),
                                      self.const(np.array(1.0), "one")])
            scaled = self.node("Mul", [curve, self.const(np.array(layer.alpha), "alpha")])
            return self.node("Add", [pos, scaled]), rank
        if name == "GELU":   # x * (1 + erf(x / sqrt(2))) / 2, the exact form fastnn computes
            scaled = self.node("Mul", [x, self.const(np.array(1 / np.sqrt(2)), "rsqrt2")])
            erf = self._erf(scaled)
            plus = self.node("Add", [erf, self.const(np.array(1.0), "one")])
            half = self.node("Mul", [x, self.const(np.array(0.5), "half")])
            return self.node("Mul", [half, plus]), rank
        if name == "Softmax":
            return self.node("Softmax", x, axis=rank - 1), rank
        if name == "PReLU":
            slope = np.asarray(to_host(layer.weight.data)).reshape((-1,) + (1,) * (rank - 2))
            return self._leaky(x, self.const(slope, "slope")), rank
        if name == "Flatten":
            return self.node("Flatten", x, axis=1), 2
        if name == "Reshape":
            shape = self.const(np.array((0,) + tuple(layer._target), np.int64), "shape")
            return self.node("Reshape", [x, shape]), 1 + len(layer._target)
        if name == "BatchNorm":   # inference: the running statistics, folded
            gamma, beta = (np.asarray(to_host(p.data), np.float64) for p in layer.parameters())
            mean = np.asarray(to_host(layer.running_mean), np.float64)
            var = np.asarray(to_host(layer.running_var), np.float64)
            scale = gamma / np.sqrt(var + layer.eps)
            shape = (-1,) + (1,) * (rank - 2)
            y = self.node("Mul", [x, self.const(scale.reshape(shape), "bn_scale")])
            return self.node("Add", [y, self.const((beta - mean * scale).reshape(shape),
                                                   "bn_shift")]), rank
        if name == "LayerNorm":
            axes = list(range(rank - len(layer._shape), rank))
            centred = self.node("Sub", [x, self._mean(x, axes)])
            var = self._mean(self.node("Mul", [centred, centred]), axes)
            std = self.node("Sqrt", self.node("Add", [var, self.const(np.array(layer.eps),
                                                                      "eps")]))
            y = self.node("Div", [centred, std])
            if layer.gamma is not None:
                y = self.node("Mul", [y, self.const(layer.gamma.data, "gamma")])
                y = self.node("Add", [y, self.const(layer.beta.data, "beta")])
            return y, rank
        if name == "Embedding":   # a negative code made out of range (Gather would wrap it):
            from skl2onnx.proto import onnx_proto   # the runtime refuses it, as fastnn does
            codes = self.node("Cast", x, to=onnx_proto.TensorProto.INT64)
            zero = self.const(np.array(0, np.int64), "zero")
            beyond = self.const(np.array(layer.num_embeddings, np.int64), "num_embeddings")
            codes = self.node("Where", [self.node("Less", [codes, zero]), beyond, codes])
            return self.node("Gather", [self.const(layer.weight.data, "embedding"), codes],
                             axis=0), rank + 1
        if name == "Sequential":
            return self.layers(layer.layers, x, rank)
        if name == "Residual":
            y, out_rank = self.layers(layer.layers, x, rank)
            s = x if layer.shortcut is None else self.layer(layer.shortcut, x, rank)[0]
            return self.node("Add", [y, s]), out_rank
        if name in ("Branches", "Columns"):
            outs = []
            for i, branch in enumerate(layer.branches):
                xi = x
                if name == "Columns":
                    start, stop = layer.groups[i]
                    idx = self.const(np.arange(start, stop, dtype=np.int64), "columns")
                    xi = self.node("Gather", [x, idx], axis=1)
                y, out_rank = self.layers(branch, xi, rank)
                outs.append(y)
            if layer.merge == "add":
                return self.node("Sum", outs), out_rank
            return self.node("Concat", outs, axis=1), out_rank
        raise ValueError(f"no ONNX converter for {name}")   # _check_net said it first

    def _leaky(self, x, slope):
        """``relu(x) + slope * min(x, 0)``."""
        pos = self.node("Relu", x)
        neg = self.node("Mul", [self.node("Sub", [x, pos]), slope])
        return self.node("Add", [pos, neg])

    def _erf(self, x):
        """Erf; in a float64 graph through float32 (onnxruntime has no float64 Erf kernel), so
        a GELU there agrees with fastnn to about 1e-7, not to float64 rounding."""
        from skl2onnx.proto import onnx_proto
        if self.dtype is np.float32:
            return self.node("Erf", x)
        single = self.node("Cast", x, to=onnx_proto.TensorProto.FLOAT)
        return self.node("Cast", self.node("Erf", single), to=self.proto)

    def _mean(self, x, axes):
        if self.opset is not None and self.opset >= 18:   # axes became an input at opset 18
            return self.node("ReduceMean", [x, self.const(np.array(axes, np.int64), "axes")],
                             keepdims=1)
        return self.node("ReduceMean", x, axes=axes, keepdims=1)


def _net_forward(scope, operator, container):
    """The network's raw output (before the classifier's softmax), from the input cast to the
    graph's float type and reshaped to ``input_shape`` as the estimator does."""
    model = operator.raw_operator
    proto = _proto_dtype(operator)
    graph = _NetGraph(scope, container, proto)
    x = graph.node("Cast", operator.inputs[0].full_name, to=proto)
    rank = 2
    shape = model.model_.input_shape
    if model.input_shape is not None and len(shape) != 1:
        target = tuple(int(s) for s in np.atleast_1d(model.input_shape))
        x = graph.node("Reshape", [x, graph.const(np.array((0,) + target, np.int64), "shape")])
        rank = 1 + len(target)
    elif len(shape) > 1:   # fitted on X of its per-sample shape: the input has that rank
        rank = 1 + len(shape)
    return graph.layers(model.model_.layers, x, rank)[0], graph


def _convert_net_classifier(scope, operator, container):
    from skl2onnx.proto import onnx_proto
    model = operator.raw_operator
    logits, graph = _net_forward(scope, operator, container)
    container.add_node("Softmax", logits, operator.outputs[1].full_name, axis=1,
                       name=scope.get_unique_operator_name("Softmax"))
    classes = model.classes_   # labels as skl2onnx's MLP converter gives them
    if np.issubdtype(classes.dtype, np.floating) or classes.dtype == np.bool_:
        classes, class_type = classes.astype(np.int32), onnx_proto.TensorProto.INT32
    elif np.issubdtype(classes.dtype, np.integer):
        class_type = onnx_proto.TensorProto.INT32
    else:
        classes = np.array([str(c).encode("utf-8") for c in classes])
        class_type = onnx_proto.TensorProto.STRING
    names = scope.get_unique_variable_name("classes")
    container.add_initializer(names, class_type, list(classes.shape), classes.tolist())
    best = graph.node("ArgMax", logits, axis=1)
    picked = scope.get_unique_variable_name("labels")
    container.add_node("ArrayFeatureExtractor", [names, best], picked, op_domain="ai.onnx.ml",
                       name=scope.get_unique_operator_name("ArrayFeatureExtractor"))
    flat = graph.node("Reshape", [picked, graph.const(np.array([-1], np.int64), "shape")])
    if class_type == onnx_proto.TensorProto.INT32:
        container.add_node("Cast", flat, operator.outputs[0].full_name,
                           to=onnx_proto.TensorProto.INT64,
                           name=scope.get_unique_operator_name("Cast"))
    else:
        container.add_node("Identity", flat, operator.outputs[0].full_name,
                           name=scope.get_unique_operator_name("Identity"))


def _convert_net_regressor(scope, operator, container):
    out, _ = _net_forward(scope, operator, container)   # (N, n_outputs)
    container.add_node("Identity", out, operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("Identity"))
