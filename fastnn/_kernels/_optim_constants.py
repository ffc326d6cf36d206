"""Per-step scalars of the fused optimizer steps, in float64; each backend casts them to the
parameter dtype. A neutral module: both backends import it, it imports neither.
"""
import math


def adam_constants(step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """``(coupled, wd, decay, beta1, 1-beta1, beta2, 1-beta2, sqrt(bc2), lr/bc1, eps)``.

    ``coupled``: add ``wd * param`` to the gradient (Adam's L2 term); ``decay``: the factor that
    multiplies ``param`` first (AdamW's ``1 - lr * weight_decay``, else 1). bc_k = 1 - beta_k**step.
    """
    coupled = weight_decay != 0 and not decoupled
    decay = 1.0 - lr * weight_decay if decoupled else 1.0
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    return (coupled, weight_decay if coupled else 0.0, decay, beta1, 1.0 - beta1, beta2,
            1.0 - beta2, math.sqrt(bc2), lr / bc1, eps)


def sgd_constants(lr, momentum, dampening, weight_decay):
    """``(use_wd, weight_decay, -lr, momentum, 1 - dampening)``."""
    return weight_decay != 0, weight_decay, -lr, momentum, 1.0 - dampening


def rmsprop_constants(lr, alpha, eps, weight_decay):
    """``(use_wd, weight_decay, -lr, alpha, 1 - alpha, eps)``."""
    return weight_decay != 0, weight_decay, -lr, alpha, 1.0 - alpha, eps


def adagrad_constants(step, lr, eps, weight_decay, lr_decay):
    """``(use_wd, weight_decay, -clr, eps)`` with ``clr = lr / (1 + (step - 1) * lr_decay)``."""
    return weight_decay != 0, weight_decay, -(lr / (1.0 + (step - 1) * lr_decay)), eps
