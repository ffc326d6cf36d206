"""ONNX export of ``MLPClassifier`` / ``MLPRegressor`` through skl2onnx.

skl2onnx converts scikit-learn's MLPs; one call registers fastnn's two estimators with it, after
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
"""
import numpy as np

_INSTALL = "pip install 'fastnn[onnx]'"
_CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "output_class_labels": [False, True],
                       "nocl": [True, False]}  # those of skl2onnx's MLPClassifier converter
_ACTIVATIONS = {"identity": "Identity", "logistic": "Sigmoid", "tanh": "Tanh", "relu": "Relu",
                "softmax": "Softmax", "exp": "Exp"}


def register_onnx_converters():
    """Register fastnn's ``MLPClassifier`` and ``MLPRegressor`` with skl2onnx, so that
    ``skl2onnx.to_onnx`` / ``convert_sklearn`` convert them (alone or in a pipeline) with the
    converters of scikit-learn's MLPs and the same options (``zipmap``, ``output_class_labels``,
    ``nocl``). Idempotent. Raises ImportError when skl2onnx is not installed."""
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:
        raise ImportError("exporting fastnn models to ONNX needs skl2onnx (and onnxruntime to "
                          f"run them): {_INSTALL}") from exc
    from ._mlp import MLPClassifier, MLPRegressor
    update_registered_converter(MLPClassifier, "FastnnMLPClassifier", _classifier_shapes,
                                _convert_classifier, parser=_parse_classifier,
                                options=_CLASSIFIER_OPTIONS)
    update_registered_converter(MLPRegressor, "FastnnMLPRegressor", _regressor_shapes,
                                _convert_regressor)


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
