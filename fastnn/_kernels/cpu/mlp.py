"""Fused multi-layer-perceptron training: a whole epoch of mini-batch steps in one Numba call.

A small MLP step is a handful of tiny matrix products; calling them from Python costs more than
the arithmetic. These kernels run forward pass, loss, backward pass, L2 penalty and the optimizer
update for every mini-batch of an epoch without returning to Python, with the semantics of
scikit-learn's ``MLPClassifier``/``MLPRegressor`` (weights ``(fan_in, fan_out)``, L2 term
``0.5 * alpha * ||W||^2 / n_batch``, scikit-learn's Adam and Nesterov-SGD updates).

Parameters live in one flat buffer in scikit-learn's packing order: every ``coefs_[i]`` (C order)
and then every ``intercepts_[i]``. ``units`` is ``[n_features, *hidden, n_outputs]``.
"""
import numpy as np

from ._jit import jit
from .optim import _adam_serial

# activation codes (hidden and output)
IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5
ACTIVATION_CODES = {"identity": IDENTITY, "logistic": LOGISTIC, "tanh": TANH, "relu": RELU,
                    "softmax": SOFTMAX, "exp": EXP}
# loss codes
SQUARED, LOG_LOSS, BINARY_LOG_LOSS, POISSON = 0, 1, 2, 3
LOSS_CODES = {"squared_error": SQUARED, "log_loss": LOG_LOSS,
              "binary_log_loss": BINARY_LOG_LOSS, "poisson": POISSON}
# solver codes
SGD, ADAM = 0, 1


def layout(units):
    """Offsets of each coefficient matrix and intercept vector in the flat parameter buffer."""
    units = np.asarray(units, dtype=np.int64)
    n_layers = units.size - 1
    w_off = np.empty(n_layers, np.int64)
    b_off = np.empty(n_layers, np.int64)
    off = 0
    for i in range(n_layers):
        w_off[i] = off
        off += units[i] * units[i + 1]
    for i in range(n_layers):
        b_off[i] = off
        off += units[i + 1]
    return w_off, b_off, int(off)


def workspace(units, rows, dtype):
    """Activation and delta buffers for ``rows`` samples (one flat array each)."""
    total = int(rows * np.sum(units))
    return np.empty(total, dtype), np.empty(total, dtype)


@jit
def _view(buf, units, layer, rows):
    off = 0
    for i in range(layer):
        off += rows * units[i]
    return buf[off:off + rows * units[layer]].reshape((rows, units[layer]))


@jit
def _apply_activation(a, code):
    """In place on a 2-D array ``a`` (rows, units)."""
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    flat = a.reshape(a.size)
    if code == RELU:
        for i in range(flat.size):
            if flat[i] < zero:
                flat[i] = zero
    elif code == TANH:
        for i in range(flat.size):
            flat[i] = np.tanh(flat[i])
    elif code == LOGISTIC:
        for i in range(flat.size):
            v = flat[i]
            if v >= zero:
                flat[i] = one / (one + np.exp(-v))
            else:
                e = np.exp(v)
                flat[i] = e / (one + e)
    elif code == EXP:
        for i in range(flat.size):
            flat[i] = np.exp(flat[i])
    elif code == SOFTMAX:
        for r in range(a.shape[0]):
            m = a[r, 0]
            for j in range(1, a.shape[1]):
                if a[r, j] > m:
                    m = a[r, j]
            s = zero
            for j in range(a.shape[1]):
                e = np.exp(a[r, j] - m)
                a[r, j] = e
                s += e
            inv = one / s
            for j in range(a.shape[1]):
                a[r, j] *= inv


@jit
def _apply_derivative(a, delta, code):
    """delta *= f'(z), written in terms of the activation output ``a`` (as scikit-learn does)."""
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    fa = a.reshape(a.size)
    fd = delta.reshape(delta.size)
    if code == RELU:
        for i in range(fd.size):
            if fa[i] == zero:
                fd[i] = zero
    elif code == TANH:
        for i in range(fd.size):
            fd[i] *= one - fa[i] * fa[i]
    elif code == LOGISTIC:
        for i in range(fd.size):
            fd[i] *= fa[i] * (one - fa[i])


@jit
def forward(x, params, units, w_off, b_off, hidden, output, acts):
    """Forward pass of ``x`` (rows, n_features); returns the output activations (a view of ``acts``)."""
    rows = x.shape[0]
    n_layers = units.size - 1
    a = x
    for i in range(n_layers):
        fan_in, fan_out = units[i], units[i + 1]
        w = params[w_off[i]:w_off[i] + fan_in * fan_out].reshape((fan_in, fan_out))
        b = params[b_off[i]:b_off[i] + fan_out]
        z = _view(acts, units, i + 1, rows)
        np.dot(a, w, z)
        for r in range(rows):
            for j in range(fan_out):
                z[r, j] += b[j]
        _apply_activation(z, hidden if i < n_layers - 1 else output)
        a = z
    return a


@jit
def _loss(y, p, sw, has_sw, loss_code):
    """scikit-learn's loss of one batch (float64)."""
    rows, k = p.shape
    eps = np.finfo(p.dtype).eps
    total = 0.0
    wsum = 0.0
    for r in range(rows):
        w = float(sw[r]) if has_sw else 1.0
        wsum += w
        acc = 0.0
        for j in range(k):
            yv = float(y[r, j])
            pv = float(p[r, j])
            if loss_code == SQUARED:
                acc += (yv - pv) * (yv - pv)
            elif loss_code == POISSON:
                if yv > 0.0:
                    acc += yv * np.log(yv / pv)
                acc += pv - yv
            else:
                pc = min(max(pv, eps), 1.0 - eps)
                if yv != 0.0:
                    acc -= yv * np.log(pc)
                if loss_code == BINARY_LOG_LOSS and yv != 1.0:
                    acc -= (1.0 - yv) * np.log(1.0 - pc)
        total += w * acc
    if loss_code == SQUARED:
        return 0.5 * total / wsum / k
    return total / wsum


@jit
def loss_grad(x, y, sw, has_sw, params, grad, units, w_off, b_off, hidden, output, loss_code,
              alpha, acts, deltas):
    """Loss (with L2 penalty) of a batch and its gradient written into ``grad``; returns the loss."""
    rows = x.shape[0]
    n_layers = units.size - 1
    p = forward(x, params, units, w_off, b_off, hidden, output, acts)
    loss = _loss(y, p, sw, has_sw, loss_code)
    sw_sum = 0.0
    if has_sw:
        for r in range(rows):
            sw_sum += float(sw[r])
    else:
        sw_sum = float(rows)
    sq = 0.0
    for i in range(n_layers):
        for q in range(w_off[i], w_off[i] + units[i] * units[i + 1]):
            sq += float(params[q]) * float(params[q])
    loss += 0.5 * alpha * sq / sw_sum

    dt = params.dtype.type
    inv = dt(1.0 / sw_sum)
    alpha_t = dt(alpha)
    last = n_layers - 1
    delta = _view(deltas, units, last + 1, rows)
    for r in range(rows):
        w = sw[r] if has_sw else dt(1)
        for j in range(units[last + 1]):
            delta[r, j] = (p[r, j] - y[r, j]) * w
    for i in range(last, -1, -1):
        fan_in, fan_out = units[i], units[i + 1]
        a_in = x if i == 0 else _view(acts, units, i, rows)
        w = params[w_off[i]:w_off[i] + fan_in * fan_out].reshape((fan_in, fan_out))
        gw = grad[w_off[i]:w_off[i] + fan_in * fan_out].reshape((fan_in, fan_out))
        gb = grad[b_off[i]:b_off[i] + fan_out]
        np.dot(a_in.T, delta, gw)
        for q in range(fan_in):
            for j in range(fan_out):
                gw[q, j] = (gw[q, j] + alpha_t * w[q, j]) * inv
        for j in range(fan_out):
            gb[j] = 0
        for r in range(rows):
            for j in range(fan_out):
                gb[j] += delta[r, j]
        for j in range(fan_out):
            gb[j] *= inv
        if i > 0:
            prev = _view(deltas, units, i, rows)
            np.dot(delta, w.T, prev)
            _apply_derivative(a_in, prev, hidden)
            delta = prev
    return loss


@jit
def _gather_dense(x, order, start, rows, out):
    for r in range(rows):
        src = order[start + r]
        for j in range(x.shape[1]):
            out[r, j] = x[src, j]


@jit
def _gather_csr(data, indices, indptr, order, start, rows, out):
    zero = out.dtype.type(0)
    for r in range(rows):
        for j in range(out.shape[1]):
            out[r, j] = zero
        src = order[start + r]
        for q in range(indptr[src], indptr[src + 1]):
            out[r, indices[q]] += data[q]


@jit
def _gather_rows(a, order, start, rows, out):
    for r in range(rows):
        src = order[start + r]
        for j in range(a.shape[1]):
            out[r, j] = a[src, j]


@jit
def _sgd_update(params, grad, velocity, lr, momentum, nesterov):
    """scikit-learn's SGD: v = m*v - lr*g; p += m*v - lr*g (Nesterov) or p += v."""
    for q in range(params.size):
        v = momentum * velocity[q] - lr * grad[q]
        velocity[q] = v
        if nesterov:
            params[q] += momentum * v - lr * grad[q]
        else:
            params[q] += v


@jit
def _adam_update(params, grad, m, v, t, lr, beta1, beta2, eps):
    """scikit-learn's Adam (bias correction folded into the step size, then m / (sqrt(v) + eps)),
    run by the PyTorch-form Adam kernel with ``eps / sqrt(1 - beta2**t)``."""
    dt = params.dtype.type
    bc2_sqrt = np.sqrt(1.0 - beta2 ** t)
    _adam_serial(params, grad, m, v, False, dt(0), dt(1), dt(beta1), dt(1.0 - beta1), dt(beta2),
                 dt(1.0 - beta2), dt(bc2_sqrt), dt(lr / (1.0 - beta1 ** t)), dt(eps / bc2_sqrt))


@jit
def train_epoch(x, csr_data, csr_indices, csr_indptr, is_sparse, y, sw, has_sw, order,
                batch_size, params, grad, units, w_off, b_off, hidden, output, loss_code, alpha,
                solver, lr, momentum, nesterov, beta1, beta2, eps, t, state1, state2,
                xb, yb, swb, acts, deltas):
    """One epoch of mini-batch training over the samples in ``order``.

    Returns ``(sum of batch_loss * batch_rows, adam step count t)``. ``x`` is dense
    (rows, n_features) unless ``is_sparse``, when the CSR arrays hold the data instead.
    """
    n = order.size
    total = 0.0
    for start in range(0, n, batch_size):
        rows = min(batch_size, n - start)
        xr = xb[:rows]
        if is_sparse:
            _gather_csr(csr_data, csr_indices, csr_indptr, order, start, rows, xr)
        else:
            _gather_dense(x, order, start, rows, xr)
        yr = yb[:rows]
        _gather_rows(y, order, start, rows, yr)
        swr = swb[:rows]
        if has_sw:
            for r in range(rows):
                swr[r] = sw[order[start + r]]
        loss = loss_grad(xr, yr, swr, has_sw, params, grad, units, w_off, b_off, hidden, output,
                         loss_code, alpha, acts, deltas)
        total += loss * rows
        if solver == ADAM:
            t += 1
            _adam_update(params, grad, state1, state2, t, lr, beta1, beta2, eps)
        else:
            _sgd_update(params, grad, state1, params.dtype.type(lr),
                        params.dtype.type(momentum), nesterov)
    return total, t
