"""Dense layer ``y = x @ w.T + b`` and its gradient (``torch.nn.functional.linear``)."""
import numpy as np

from ._dispatch import backend
from ._validate import check_shape, fused_relu


def _inputs(be, x, w):
    if np.ndim(x) == 0:
        raise ValueError("x must be at least 1-D (..., in_features), got a 0-d array")
    x = be.float_array(x, "x")
    w = be.float_array(w, "w", ndim=2, dtype=x.dtype, layout="(out_features, in_features)")
    in_features = x.shape[x.ndim - 1]
    if w.shape[1] != in_features:
        raise ValueError(f"w must have shape (out_features, {in_features}) to match the last axis "
                         f"of x (in_features={in_features}), got {tuple(w.shape)}")
    lead = tuple(x.shape[:-1])
    m = 1
    for d in lead:
        m *= d
    return x.reshape((m, in_features)), w, lead


def linear(x, w, b=None, activation=None):
    """``x @ w.T + b`` for ``x`` of shape ``(..., in_features)``, ``w`` ``(out_features,
    in_features)``, ``b`` ``(out_features,)`` or None; returns ``(..., out_features)``.
    ``activation="relu"`` returns ``relu(x @ w.T + b)``, bias and ReLU in one pass."""
    relu = fused_relu(activation)
    be = backend(x, w, b)
    x2, w, lead = _inputs(be, x, w)
    if b is not None:
        b = be.float_array(b, "b", ndim=1, dtype=x2.dtype)
        check_shape(b, "b", (w.shape[0],))
    y = be.impl("linear").linear(x2, w, b, relu)
    return y.reshape(lead + (w.shape[0],))


def linear_backward(dy, x, w, input_grad=True):
    """``(dx, dw, db)`` for ``linear(x, w, b)``; ``dy`` has shape ``(..., out_features)``,
    ``db`` is the sum of ``dy`` over every leading axis; ``input_grad=False``: dx is None."""
    be = backend(dy, x, w)
    x2, w, lead = _inputs(be, x, w)
    dy = be.float_array(dy, "dy", dtype=x2.dtype)
    check_shape(dy, "dy", lead + (w.shape[0],))
    dx, dw, db = be.impl("linear").linear_backward(dy.reshape((x2.shape[0], w.shape[0])), x2, w,
                                                   bool(input_grad))
    return None if dx is None else dx.reshape(lead + (w.shape[1],)), dw, db
