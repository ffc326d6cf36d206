"""Fused optimizer steps (CUDA): one launch, one pass over the flat buffers, updated in place.

Host functions mirror ``fastnn._kernels.cpu.optim`` (same names, signatures, semantics) on
C-contiguous device arrays. The per-step constants come from the shared float64 helpers in
``fastnn._kernels._optim_rules`` and reach the kernel cast to the parameter dtype, and so do
the element updates (compiled here as inlined device functions). Each kernel is a grid-stride loop
over the elements (every element independent), so the result does not depend on
the launch configuration.
"""
import math

import numpy as np
from numba import cuda

from . import _config as cfg
from .._optim_rules import (adagrad_constants, adam_constants, build, rmsprop_constants,
                            sgd_constants, sgd_first_step)
from ._util import flat, inline_device, zeros

# the element updates (shared with the CPU), inlined into each grid-stride loop below
(_adam_at, _sgd_at, _sgd_momentum_at, _rmsprop_at, _adagrad_at,
 _sklearn_sgd_at) = build(inline_device, math.sqrt)


def _flat(a):
    return flat(a)


def _grid(n):
    return cfg.grid(n), cfg.TPB


def _launch(kernel, arrays, flags, constants):
    """Run an update kernel over the flat ``arrays`` (parameter first), then its ``flags``, then its
    ``constants`` cast to the parameter dtype; nothing to do for an empty parameter."""
    p = arrays[0]
    if p.size:
        t = np.dtype(p.dtype).type
        kernel[_grid(p.size)](*[_flat(a) for a in arrays], *flags, *[t(c) for c in constants])


@cuda.jit
def _adam_kernel(p, g, m, v, coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        _adam_at(i, p, g, m, v,
                 (coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps))


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
              decoupled, sklearn_epsilon):
    """One Adam (``decoupled=False``) or AdamW step in place; ``step`` is 1-based (int)."""
    coupled, *constants = adam_constants(step, lr, beta1, beta2, eps, weight_decay, decoupled,
                                         sklearn_epsilon)
    _launch(_adam_kernel, (param, grad, exp_avg, exp_avg_sq), (coupled,), constants)


@cuda.jit
def _sgd_kernel(p, g, use_wd, wd, neg_lr):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        _sgd_at(i, p, g, use_wd, wd, neg_lr)


@cuda.jit
def _sgd_momentum_kernel(p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        _sgd_momentum_at(i, p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd)


@cuda.jit
def _any_nonzero_kernel(a, flag):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        if a[i] != 0:
            flag[0] = 1


def all_zero(a):
    """True if every element of the 1-D device array ``a`` is zero (one small read-back)."""
    flag = zeros(1, np.int32)
    if a.size:
        _any_nonzero_kernel[_grid(a.size)](a, flag)
    return int(flag.copy_to_host()[0]) == 0


def sgd_step(param, grad, momentum_buf, lr, momentum, dampening, nesterov, weight_decay,
             first_step):
    """One SGD step in place; ``momentum_buf`` is None when ``momentum == 0``; ``first_step``
    True, False or None (decided by the buffer, see ``_optim_rules.sgd_first_step``)."""
    if param.size == 0:
        return None
    use_wd, *constants = sgd_constants(lr, momentum, dampening, weight_decay)
    if momentum_buf is None:
        _launch(_sgd_kernel, (param, grad), (use_wd,), constants[:2])
    else:
        first = sgd_first_step(first_step, _flat(momentum_buf), dampening, all_zero)
        _launch(_sgd_momentum_kernel, (param, grad, momentum_buf), (use_wd, first, bool(nesterov)),
                constants)


@cuda.jit
def _rmsprop_kernel(p, g, s, use_wd, wd, neg_lr, alpha, oma, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        _rmsprop_at(i, p, g, s, use_wd, wd, neg_lr, alpha, oma, eps)


def rmsprop_step(param, grad, square_avg, lr, alpha, eps, weight_decay):
    """One RMSprop step in place (torch's defaults: no momentum, not centered)."""
    use_wd, *constants = rmsprop_constants(lr, alpha, eps, weight_decay)
    _launch(_rmsprop_kernel, (param, grad, square_avg), (use_wd,), constants)


@cuda.jit
def _adagrad_kernel(p, g, s, use_wd, wd, neg_clr, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        _adagrad_at(i, p, g, s, use_wd, wd, neg_clr, eps)


def adagrad_step(param, grad, state_sum, step, lr, eps, weight_decay, lr_decay):
    """One Adagrad step in place; ``step`` is 1-based (int), used only through ``lr_decay``."""
    use_wd, *constants = adagrad_constants(step, lr, eps, weight_decay, lr_decay)
    _launch(_adagrad_kernel, (param, grad, state_sum), (use_wd,), constants)
