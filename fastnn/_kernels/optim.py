"""Fused optimizer steps: validate, then update ``param`` and the state buffers in place.

Every array has the parameter's shape and dtype (any shape: a flat buffer holding all of a model's
parameters is the intended use). ``param`` and the state buffers must be writable and
C-contiguous, because they are updated in place; ``grad`` may be any float array of the same
shape and dtype. Each function returns None. Semantics are ``torch.optim``'s, to float32 rounding.

Each step's scalars come from ``_optim_rules`` (float64, shared by both backends).
"""
import numbers

import numpy as np

from ._dispatch import backend
from ._validate import check_scalar, check_shape


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _step(value):
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"step must be an int (the 1-based count after this update), got {value!r}")
    if value < 1:
        raise ValueError(f"step must be >= 1 (the 1-based count after this update), got {value!r}")
    return int(value)


def _arrays(param, grad, buffers):
    """Validate ``param`` (in place), ``grad`` and the named in-place ``buffers`` against it."""
    be = backend(param, grad, *buffers.values())
    param = be.inplace_array(param, "param")
    grad = be.float_array(grad, "grad", dtype=param.dtype)
    if grad.shape != param.shape and grad.size == param.size == 1 and np.ndim(grad) <= 1:
        grad = grad.reshape(param.shape)  # a 0-d grad comes back from float_array as 1-D
    check_shape(grad, "grad", param.shape)
    out = {name: None if a is None else be.inplace_array(a, name, param.dtype, param.shape)
           for name, a in buffers.items()}
    if be.name == "cpu":
        named = [("param", param), ("grad", grad)]
        named += [(k, a) for k, a in out.items() if a is not None]
        for j, (name_a, a) in enumerate(named):
            for name_b, b in named[j + 1:]:
                if a.size and np.may_share_memory(a, b):
                    raise ValueError(
                        f"{name_a} and {name_b} share memory; each must be its own array")
    return be, param, grad, out


# --- public steps -------------------------------------------------------------------------

def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False, sklearn_epsilon=False):
    """One ``torch.optim.Adam`` step in place (``decoupled=True``: ``torch.optim.AdamW``).

    ``step`` is the 1-based step count after this update (1 on the first call). Updates ``param``,
    ``exp_avg`` (m) and ``exp_avg_sq`` (v), which start as zeros::

        g = grad + weight_decay * param            (Adam; AdamW instead does
                                                    param *= 1 - lr * weight_decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        param -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)

    scikit-learn's Adam folds the bias corrections into the step size and adds its epsilon to
    the uncorrected root: ``param -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) +
    epsilon)``. Multiplying the numerator and denominator above by ``sqrt(1 - beta2**step)``
    shows that this function computes that update (algebraically equal; the same to rounding)
    when given ``eps = epsilon / sqrt(1 - beta2**step)``, a new value at every step (with
    ``weight_decay=0``: scikit-learn's L2 term is part of its gradient); ``sklearn_epsilon=True``
    takes ``eps`` as scikit-learn's epsilon and does that division itself.
    """
    be, param, grad, bufs = _arrays(param, grad, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq})
    step = _step(step)
    lr = check_scalar(lr, "lr", 0)
    beta1 = check_scalar(beta1, "beta1", 0, 1, high_open=True)
    beta2 = check_scalar(beta2, "beta2", 0, 1, high_open=True)
    eps = check_scalar(eps, "eps", 0)
    weight_decay = check_scalar(weight_decay, "weight_decay", 0)
    decoupled = _flag(decoupled, "decoupled")
    sklearn_epsilon = _flag(sklearn_epsilon, "sklearn_epsilon")
    be.impl("optim").adam_step(param, grad, bufs["exp_avg"], bufs["exp_avg_sq"], step, lr, beta1,
                               beta2, eps, weight_decay, decoupled, sklearn_epsilon)


def sgd_step(param, grad, momentum_buf, lr, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0, first_step=None):
    """One ``torch.optim.SGD`` step in place::

        g = grad + weight_decay * param
        buf = g  on the first step,  else  buf = momentum * buf + (1 - dampening) * g
        param -= lr * (g + momentum * buf  if nesterov else  buf)
        (param -= lr * g  when momentum == 0)

    ``momentum_buf`` is required when ``momentum != 0`` and ignored (may be None) otherwise.
    ``first_step`` says whether this is the first step, when torch copies ``g`` into the buffer:
    True or False, or None (default) to take the step as the first exactly when
    ``momentum_buf`` is all zeros, as a freshly created buffer is. That only matters when
    ``dampening != 0`` (with no dampening, updating a zero buffer equals copying into it); pass
    it explicitly when gradients can be exactly zero for a whole step.

    scikit-learn's SGD with a constant learning rate is this step with ``dampening=0`` (its
    velocity is ``-lr * momentum_buf``), with or without Nesterov momentum.
    """
    momentum = check_scalar(momentum, "momentum", 0)
    be, param, grad, bufs = _arrays(param, grad,
                                    {"momentum_buf": momentum_buf if momentum != 0 else None})
    if momentum != 0 and bufs["momentum_buf"] is None:
        raise ValueError("momentum_buf is required when momentum != 0 "
                         "(an array of param's shape and dtype, zeros before the first step)")
    lr = check_scalar(lr, "lr", 0)
    dampening = check_scalar(dampening, "dampening", 0, 1)
    weight_decay = check_scalar(weight_decay, "weight_decay", 0)
    nesterov = _flag(nesterov, "nesterov")
    if nesterov and (momentum == 0 or dampening != 0):
        raise ValueError("nesterov=True requires momentum > 0 and dampening == 0")
    if first_step is not None:
        first_step = _flag(first_step, "first_step")
    be.impl("optim").sgd_step(param, grad, bufs["momentum_buf"], lr, momentum, dampening, nesterov,
                              weight_decay, first_step)


def rmsprop_step(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
    """One ``torch.optim.RMSprop`` step in place (no momentum, not centered)::

        g = grad + weight_decay * param
        square_avg = alpha * square_avg + (1 - alpha) * g**2
        param -= lr * g / (sqrt(square_avg) + eps)
    """
    be, param, grad, bufs = _arrays(param, grad, {"square_avg": square_avg})
    lr = check_scalar(lr, "lr", 0)
    alpha = check_scalar(alpha, "alpha", 0, 1)
    eps = check_scalar(eps, "eps", 0)
    weight_decay = check_scalar(weight_decay, "weight_decay", 0)
    be.impl("optim").rmsprop_step(param, grad, bufs["square_avg"], lr, alpha, eps, weight_decay)


def adagrad_step(param, grad, state_sum, step, lr=1e-2, eps=1e-10, weight_decay=0.0,
                 lr_decay=0.0):
    """One ``torch.optim.Adagrad`` step in place; ``step`` is the 1-based count after this update::

        g = grad + weight_decay * param
        state_sum += g**2
        param -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(state_sum) + eps)

    ``state_sum`` starts at torch's ``initial_accumulator_value`` (0 by default).
    """
    be, param, grad, bufs = _arrays(param, grad, {"state_sum": state_sum})
    step = _step(step)
    lr = check_scalar(lr, "lr", 0)
    eps = check_scalar(eps, "eps", 0)
    weight_decay = check_scalar(weight_decay, "weight_decay", 0)
    lr_decay = check_scalar(lr_decay, "lr_decay", 0)
    be.impl("optim").adagrad_step(param, grad, bufs["state_sum"], step, lr, eps, weight_decay,
                                  lr_decay)
