"""float64 NumPy transcriptions of torch.optim's update rules (and scikit-learn's Adam).

Each function returns new arrays: ``(param, *state)`` after one step.
"""
import numpy as np


def _f64(*arrays):
    return [np.array(a, dtype=np.float64, copy=True) for a in arrays]


def adam(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
         weight_decay=0.0, decoupled=False):
    """torch.optim.Adam / AdamW (``_single_tensor_adam``, amsgrad=False)."""
    p, g, m, v = _f64(param, grad, exp_avg, exp_avg_sq)
    if weight_decay != 0:
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    denom = np.sqrt(v) / np.sqrt(bias_correction2) + eps
    p = p - (lr / bias_correction1) * m / denom
    return p, m, v


def sgd(param, grad, momentum_buf, lr, momentum=0.0, dampening=0.0, nesterov=False,
        weight_decay=0.0, first_step=False):
    """torch.optim.SGD (``_single_tensor_sgd``); ``first_step`` plays torch's ``buf is None``."""
    p, g = _f64(param, grad)
    buf = None if momentum_buf is None else _f64(momentum_buf)[0]
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        if first_step:
            buf = g.copy()
        else:
            buf = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p = p - lr * g
    return p, buf


def rmsprop(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
    """torch.optim.RMSprop (``_single_tensor_rmsprop``, momentum=0, centered=False)."""
    p, g, s = _f64(param, grad, square_avg)
    if weight_decay != 0:
        g = g + weight_decay * p
    s = alpha * s + (1 - alpha) * g * g
    p = p - lr * g / (np.sqrt(s) + eps)
    return p, s


def adagrad(param, grad, state_sum, step, lr=1e-2, eps=1e-10, weight_decay=0.0, lr_decay=0.0):
    """torch.optim.Adagrad (``_single_tensor_adagrad``, dense gradients)."""
    p, g, s = _f64(param, grad, state_sum)
    if weight_decay != 0:
        g = g + weight_decay * p
    clr = lr / (1 + (step - 1) * lr_decay)
    s = s + g * g
    p = p - clr * g / (np.sqrt(s) + eps)
    return p, s


def sklearn_adam(param, grad, ms, vs, t, learning_rate_init=1e-3, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
    """scikit-learn's ``AdamOptimizer._get_updates`` applied to one array; ``t`` is the step
    count after this update. Returns ``(param, ms, vs)``."""
    p, g, m, v = _f64(param, grad, ms, vs)
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * (g ** 2)
    learning_rate = learning_rate_init * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    p = p + (-learning_rate * m / (np.sqrt(v) + epsilon))
    return p, m, v
