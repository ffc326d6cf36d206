"""Activation functions and their gradients (semantics of ``torch.nn.functional``).

Every function takes an array of any shape (float32 or float64) and returns arrays of the same
dtype. ``<name>_backward(dy, x, ...)`` takes the output gradient ``dy`` (shape and dtype of ``x``)
and the forward input ``x``, and returns ``dx`` (``prelu_backward`` returns ``(dx, dweight)``).
"""

import numpy as np

from ._dispatch import backend
from ._validate import check_scalar, check_shape, is_int, is_real


def _float(be, a, name, dtype=None):
    return be.float_array(a, name, dtype=dtype)


def _input(x):
    be = backend(x)
    return be, _float(be, x, "x")


def _grad_inputs(dy, x, *others):
    be = backend(dy, x, *others)
    x = _float(be, x, "x")
    dy = _float(be, dy, "dy", dtype=x.dtype)
    check_shape(dy, "dy", x.shape)
    return be, dy, x


def _impl(be):
    return be.impl("activation")


def _elementwise(name, forward_doc, backward_doc):
    """``name(x)`` and ``name_backward(dy, x)`` of an activation without parameters."""
    def forward(x):
        be, x = _input(x)
        return getattr(_impl(be), name)(x)

    def backward(dy, x):
        be, dy, x = _grad_inputs(dy, x)
        return getattr(_impl(be), name + "_backward")(dy, x)

    for fn, fn_name, doc in ((forward, name, forward_doc),
                             (backward, name + "_backward", backward_doc)):
        fn.__name__ = fn.__qualname__ = fn_name
        fn.__doc__ = doc
    return forward, backward


relu, relu_backward = _elementwise("relu", "``max(x, 0)``.", "``dy`` where ``x > 0``, else 0.")
sigmoid, sigmoid_backward = _elementwise(
    "sigmoid", "``1 / (1 + exp(-x))``, without overflow for large ``|x|``.",
    "``dy * s * (1 - s)`` with ``s = sigmoid(x)``.")
tanh, tanh_backward = _elementwise("tanh", "``tanh(x)``.", "``dy * (1 - tanh(x)**2)``.")
gelu, gelu_backward = _elementwise(
    "gelu", "``x * Phi(x)`` with the exact (erf) normal CDF, as "
    "``F.gelu(x, approximate='none')``.", "Gradient of ``gelu``: ``dy * (Phi(x) + x * phi(x))``.")


def leaky_relu(x, negative_slope=0.01):
    """``x`` where ``x > 0``, else ``negative_slope * x``."""
    negative_slope = check_scalar(negative_slope, "negative_slope")
    be, x = _input(x)
    return _impl(be).leaky_relu(x, negative_slope)


def leaky_relu_backward(dy, x, negative_slope=0.01):
    negative_slope = check_scalar(negative_slope, "negative_slope")
    be, dy, x = _grad_inputs(dy, x)
    return _impl(be).leaky_relu_backward(dy, x, negative_slope)


def elu(x, alpha=1.0):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    alpha = check_scalar(alpha, "alpha")
    be, x = _input(x)
    return _impl(be).elu(x, alpha)


def elu_backward(dy, x, alpha=1.0):
    alpha = check_scalar(alpha, "alpha")
    be, dy, x = _grad_inputs(dy, x)
    return _impl(be).elu_backward(dy, x, alpha)


def _prelu_weight(be, weight, x):
    if is_real(weight):
        weight = np.array(weight, dtype=np.dtype(x.dtype))  # one slope given as a number
    shape = np.shape(weight)
    w = be.float_array(weight, "weight", dtype=x.dtype)
    if len(shape) > 1:
        raise ValueError(f"weight must be 1-D (one slope, or one per channel), got shape {shape}")
    w = w.reshape(w.size)
    channels = x.shape[1] if x.ndim >= 2 else 1
    if w.size not in (1, channels):
        raise ValueError(f"weight must have 1 or {channels} elements (one per channel on axis 1 "
                         f"of x), got shape {shape}")
    return w, shape


def prelu(x, weight):
    """``x`` where ``x > 0``, else ``weight * x``; ``weight`` holds one slope or one per channel
    (axis 1 of ``x``), as ``F.prelu`` (a number is one slope)."""
    be = backend(x, weight)
    x = _float(be, x, "x")
    w, _ = _prelu_weight(be, weight, x)
    return _impl(be).prelu(x, w)


def prelu_backward(dy, x, weight):
    """``(dx, dweight)``; ``dweight`` has ``weight``'s shape."""
    be, dy, x = _grad_inputs(dy, x, weight)
    w, shape = _prelu_weight(be, weight, x)
    dx, dw = _impl(be).prelu_backward(dy, x, w)
    return dx, dw.reshape(shape)


def _axis(axis, x):
    if not is_int(axis):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension, got a 0-d array")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for x with {x.ndim} dimensions")
    return int(axis) % x.ndim


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis`` (max-shifted, so large inputs do not overflow)."""
    be, x = _input(x)
    return _impl(be).softmax(x, _axis(axis, x))


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``."""
    be, x = _input(x)
    return _impl(be).log_softmax(x, _axis(axis, x))


def softmax_backward(dy, x, axis=-1):
    """Gradient of ``softmax(x, axis)``: ``y * (dy - sum(dy * y))`` with ``y`` recomputed from x."""
    be, dy, x = _grad_inputs(dy, x)
    return _impl(be).softmax_backward(dy, x, _axis(axis, x))


def log_softmax_backward(dy, x, axis=-1):
    """Gradient of ``log_softmax(x, axis)``: ``dy - softmax(x) * sum(dy)``."""
    be, dy, x = _grad_inputs(dy, x)
    return _impl(be).log_softmax_backward(dy, x, _axis(axis, x))
