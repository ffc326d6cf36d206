"""Float64 references for the activations: one element (or one softmax slice) at a time."""
import math

import numpy as np


def _map(f, *arrays):
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out = np.empty(arrays[0].shape)
    for idx in np.ndindex(out.shape):
        out[idx] = f(*(float(a[idx]) for a in arrays))
    return out


def relu(x):
    return _map(lambda v: v if v > 0 else 0.0, x)


def relu_backward(dy, x):
    return _map(lambda g, v: g if v > 0 else 0.0, dy, x)


def leaky_relu(x, negative_slope=0.01):
    return _map(lambda v: v if v > 0 else negative_slope * v, x)


def leaky_relu_backward(dy, x, negative_slope=0.01):
    return _map(lambda g, v: g if v > 0 else negative_slope * g, dy, x)


def elu(x, alpha=1.0):
    return _map(lambda v: v if v > 0 else alpha * math.expm1(v), x)


def elu_backward(dy, x, alpha=1.0):
    return _map(lambda g, v: g if v > 0 else g * alpha * math.exp(v), dy, x)


def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def sigmoid(x):
    return _map(_sigmoid, x)


def sigmoid_backward(dy, x):
    return _map(lambda g, v: g * _sigmoid(v) * (1.0 - _sigmoid(v)), dy, x)


def tanh(x):
    return _map(math.tanh, x)


def tanh_backward(dy, x):
    return _map(lambda g, v: g * (1.0 - math.tanh(v) ** 2), dy, x)


def _phi(v):
    return 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))


def gelu(x):
    return _map(lambda v: v * _phi(v), x)


def gelu_backward(dy, x):
    return _map(lambda g, v: g * (_phi(v) + v * math.exp(-0.5 * v * v) / math.sqrt(2 * math.pi)),
                dy, x)


def _slopes(x, weight):
    """The slope of each element of x: weight[0], or weight[c] for channel c on axis 1."""
    weight = np.asarray(weight, dtype=np.float64).reshape(-1)
    slopes = np.empty(np.shape(x))
    for idx in np.ndindex(slopes.shape):
        slopes[idx] = weight[0] if weight.size == 1 else weight[idx[1]]
    return slopes


def prelu(x, weight):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, _slopes(x, weight) * x)


def prelu_backward(dy, x, weight):
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    dx = np.where(x > 0, dy, _slopes(x, weight) * dy)
    w = np.asarray(weight)
    dw = np.zeros(w.size)
    for idx in np.ndindex(x.shape):
        if x[idx] <= 0:
            dw[0 if w.size == 1 else idx[1]] += dy[idx] * x[idx]
    return dx, dw.reshape(w.shape)


def _slices(x, axis):
    """Index tuples of every 1-D slice of x along axis."""
    axis = axis % x.ndim
    rest = [range(n) for i, n in enumerate(x.shape) if i != axis]
    for idx in np.ndindex(*[len(r) for r in rest]) if rest else [()]:
        full = list(idx)
        full.insert(axis, slice(None))
        yield tuple(full)


def softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for s in _slices(x, axis):
        e = np.exp(x[s] - x[s].max())
        out[s] = e / e.sum()
    return out


def log_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for s in _slices(x, axis):
        m = x[s].max()
        out[s] = x[s] - m - math.log(np.exp(x[s] - m).sum())
    return out


def softmax_backward(dy, x, axis=-1):
    """Jacobian-transpose product with the full Jacobian diag(y) - y y^T of each slice."""
    y = softmax(x, axis)
    dy = np.asarray(dy, dtype=np.float64)
    dx = np.empty_like(y)
    for s in _slices(y, axis):
        jac = np.diag(y[s]) - np.outer(y[s], y[s])
        dx[s] = jac.T @ dy[s]
    return dx


def log_softmax_backward(dy, x, axis=-1):
    """Jacobian I - 1 y^T of each slice (row i: d log y_i / d x)."""
    y = softmax(x, axis)
    dy = np.asarray(dy, dtype=np.float64)
    dx = np.empty_like(y)
    for s in _slices(y, axis):
        n = y[s].size
        jac = np.eye(n) - np.outer(np.ones(n), y[s])
        dx[s] = jac.T @ dy[s]
    return dx
