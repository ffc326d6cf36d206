"""Fused optimizer steps (CUDA): one launch, one pass over the flat buffers, updated in place.

Host functions mirror ``fastnn._kernels.cpu.optim`` (same names, signatures, semantics) on
C-contiguous device arrays. The per-step constants come from the shared float64 helpers in
``fastnn._kernels._optim_constants`` and reach the kernel cast to the parameter dtype. Each kernel is a
grid-stride loop over the elements (every element independent), so the result does not depend on
the launch configuration.
"""
import math

import numpy as np
from numba import cuda

from . import _config as cfg
from .._optim_constants import (adagrad_constants, adam_constants, rmsprop_constants,
                                sgd_constants)
from ._util import flat, zeros


def _flat(a):
    return flat(a)


def _typed(dtype, values):
    t = np.dtype(dtype).type
    return tuple(t(v) for v in values)


def _grid(n):
    return cfg.grid(n), cfg.TPB


@cuda.jit
def _adam_kernel(p, g, m, v, coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        pi = p[i]
        gi = g[i]
        if coupled:
            gi = gi + wd * pi
        mi = b1 * m[i] + omb1 * gi
        vi = b2 * v[i] + omb2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi * decay - step_size * mi / (math.sqrt(vi) / bc2_sqrt + eps)


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
              decoupled):
    """One Adam (``decoupled=False``) or AdamW step in place; ``step`` is 1-based (int)."""
    if param.size == 0:
        return None
    coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps_ = adam_constants(
        step, lr, beta1, beta2, eps, weight_decay, decoupled)
    _adam_kernel[_grid(param.size)](
        _flat(param), _flat(grad), _flat(exp_avg), _flat(exp_avg_sq), coupled,
        *_typed(param.dtype, (wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps_)))
    return None


@cuda.jit
def _sgd_kernel(p, g, use_wd, wd, neg_lr):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        pi = p[i]
        if use_wd:
            gi = gi + wd * pi
        p[i] = pi + neg_lr * gi


@cuda.jit
def _sgd_momentum_kernel(p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        pi = p[i]
        if use_wd:
            gi = gi + wd * pi
        if first:
            b = gi
        else:
            b = mu * buf[i] + omd * gi
        buf[i] = b
        if nesterov:
            u = gi + mu * b
        else:
            u = b
        p[i] = pi + neg_lr * u


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
    """One SGD step in place. ``momentum_buf`` is None when ``momentum == 0``.

    ``first_step``: True copies the (weight-decayed) gradient into the buffer, False updates it;
    None decides by the buffer's contents: first iff it is all zeros (only looked at when
    ``dampening != 0``: otherwise updating a zero buffer equals copying).
    """
    if param.size == 0:
        return None
    if momentum_buf is not None and first_step is None:
        first_step = dampening != 0 and all_zero(_flat(momentum_buf))
    use_wd, wd, neg_lr, mu, omd = sgd_constants(lr, momentum, dampening, weight_decay)
    if momentum_buf is None:
        _sgd_kernel[_grid(param.size)](_flat(param), _flat(grad), use_wd,
                                       *_typed(param.dtype, (wd, neg_lr)))
    else:
        _sgd_momentum_kernel[_grid(param.size)](
            _flat(param), _flat(grad), _flat(momentum_buf), use_wd, bool(first_step),
            bool(nesterov), *_typed(param.dtype, (wd, neg_lr, mu, omd)))
    return None


@cuda.jit
def _rmsprop_kernel(p, g, s, use_wd, wd, neg_lr, alpha, oma, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        pi = p[i]
        if use_wd:
            gi = gi + wd * pi
        si = alpha * s[i] + oma * gi * gi
        s[i] = si
        p[i] = pi + neg_lr * gi / (math.sqrt(si) + eps)


def rmsprop_step(param, grad, square_avg, lr, alpha, eps, weight_decay):
    """One RMSprop step in place (torch's defaults: no momentum, not centered)."""
    if param.size == 0:
        return None
    use_wd, wd, neg_lr, alpha_, oma, eps_ = rmsprop_constants(lr, alpha, eps, weight_decay)
    _rmsprop_kernel[_grid(param.size)](_flat(param), _flat(grad), _flat(square_avg), use_wd,
                                       *_typed(param.dtype, (wd, neg_lr, alpha_, oma, eps_)))
    return None


@cuda.jit
def _adagrad_kernel(p, g, s, use_wd, wd, neg_clr, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        pi = p[i]
        if use_wd:
            gi = gi + wd * pi
        si = s[i] + gi * gi
        s[i] = si
        p[i] = pi + neg_clr * gi / (math.sqrt(si) + eps)


def adagrad_step(param, grad, state_sum, step, lr, eps, weight_decay, lr_decay):
    """One Adagrad step in place; ``step`` is 1-based (int), used only through ``lr_decay``."""
    if param.size == 0:
        return None
    use_wd, wd, neg_clr, eps_ = adagrad_constants(step, lr, eps, weight_decay, lr_decay)
    _adagrad_kernel[_grid(param.size)](_flat(param), _flat(grad), _flat(state_sum), use_wd,
                                       *_typed(param.dtype, (wd, neg_clr, eps_)))
    return None
