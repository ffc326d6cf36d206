"""Fused optimizer steps on the CPU: one pass over memory, arrays updated in place.

Each host function takes validated arrays (same shape and float dtype; the updated ones writable
and C-contiguous, ``grad`` C-contiguous) and validated Python scalars, exactly as the public
wrapper in ``fastnn._kernels.optim`` documents, and returns None. The per-step constants come
from the plain-Python helpers of ``_optim_constants`` (float64), cast to the parameter dtype
here, so a kernel compiles once per dtype. Every element is independent: results do not depend on the thread count.

Each kernel is one flat loop over the elements directly under ``prange``, with its constants
hoisted; the element update (written once for both backends in ``_optim_constants.build``) is a
function inlined into the loop (``inline="always"``: the loop still vectorises), shared by a
serial copy of the kernel that runs buffers smaller than ``PARALLEL_MIN`` elements without thread
start-up cost.
"""
import numpy as np
from numba import prange

from .._optim_constants import (adagrad_constants, adam_constants, build, rmsprop_constants,
                                sgd_constants, sgd_first_step)
from ._jit import jit, pjit

PARALLEL_MIN = 32768

# the element updates (their formulas: ``_optim_constants.build``), inlined into each loop below
_adam_at, _sgd_at, _sgd_momentum_at, _rmsprop_at, _adagrad_at = build(
    lambda f: jit(f, inline="always"), np.sqrt)


def _flat(a):
    return a.reshape(-1)  # a view: every array here is C-contiguous


def _typed(dtype, values):
    t = np.dtype(dtype).type
    return tuple(t(v) for v in values)


# --- Adam / AdamW ---------------------------------------------------------------------------

@jit
def _adam_serial(p, g, m, v, coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps):
    for i in range(p.size):
        _adam_at(i, p, g, m, v, coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps)


@pjit
def _adam_parallel(p, g, m, v, coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps):
    for i in prange(p.size):
        _adam_at(i, p, g, m, v, coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps)


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
              decoupled):
    """One Adam (``decoupled=False``) or AdamW step in place; ``step`` is 1-based (int)."""
    if param.size == 0:
        return None
    coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps_ = adam_constants(
        step, lr, beta1, beta2, eps, weight_decay, decoupled)
    kernel = _adam_parallel if param.size >= PARALLEL_MIN else _adam_serial
    kernel(_flat(param), _flat(grad), _flat(exp_avg), _flat(exp_avg_sq), coupled,
           *_typed(param.dtype, (wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps_)))
    return None


# --- SGD ------------------------------------------------------------------------------------

@jit
def _sgd_serial(p, g, use_wd, wd, neg_lr):
    for i in range(p.size):
        _sgd_at(i, p, g, use_wd, wd, neg_lr)


@pjit
def _sgd_parallel(p, g, use_wd, wd, neg_lr):
    for i in prange(p.size):
        _sgd_at(i, p, g, use_wd, wd, neg_lr)


@jit
def _sgd_momentum_serial(p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd):
    for i in range(p.size):
        _sgd_momentum_at(i, p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd)


@pjit
def _sgd_momentum_parallel(p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd):
    for i in prange(p.size):
        _sgd_momentum_at(i, p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd)


@jit
def all_zero(a):
    """True if every element of the 1-D array ``a`` is zero; stops at the first that is not."""
    for i in range(a.size):
        if a[i] != 0:
            return False
    return True


def sgd_step(param, grad, momentum_buf, lr, momentum, dampening, nesterov, weight_decay,
             first_step):
    """One SGD step in place. ``momentum_buf`` is None when ``momentum == 0``.

    ``first_step``: True copies the (weight-decayed) gradient into the buffer, False updates it;
    None decides by the buffer's contents: first iff it is all zeros (only looked at when
    ``dampening != 0``: otherwise updating a zero buffer equals copying).
    """
    if param.size == 0:
        return None
    use_wd, wd, neg_lr, mu, omd = sgd_constants(lr, momentum, dampening, weight_decay)
    big = param.size >= PARALLEL_MIN
    if momentum_buf is None:
        kernel = _sgd_parallel if big else _sgd_serial
        kernel(_flat(param), _flat(grad), use_wd, *_typed(param.dtype, (wd, neg_lr)))
    else:
        first = sgd_first_step(first_step, _flat(momentum_buf), dampening, all_zero)
        kernel = _sgd_momentum_parallel if big else _sgd_momentum_serial
        kernel(_flat(param), _flat(grad), _flat(momentum_buf), use_wd, first,
               bool(nesterov), *_typed(param.dtype, (wd, neg_lr, mu, omd)))
    return None


# --- RMSprop --------------------------------------------------------------------------------

@jit
def _rmsprop_serial(p, g, s, use_wd, wd, neg_lr, alpha, oma, eps):
    for i in range(p.size):
        _rmsprop_at(i, p, g, s, use_wd, wd, neg_lr, alpha, oma, eps)


@pjit
def _rmsprop_parallel(p, g, s, use_wd, wd, neg_lr, alpha, oma, eps):
    for i in prange(p.size):
        _rmsprop_at(i, p, g, s, use_wd, wd, neg_lr, alpha, oma, eps)


def rmsprop_step(param, grad, square_avg, lr, alpha, eps, weight_decay):
    """One RMSprop step in place (torch's defaults: no momentum, not centered)."""
    if param.size == 0:
        return None
    use_wd, wd, neg_lr, alpha_, oma, eps_ = rmsprop_constants(lr, alpha, eps, weight_decay)
    kernel = _rmsprop_parallel if param.size >= PARALLEL_MIN else _rmsprop_serial
    kernel(_flat(param), _flat(grad), _flat(square_avg), use_wd,
           *_typed(param.dtype, (wd, neg_lr, alpha_, oma, eps_)))
    return None


# --- Adagrad --------------------------------------------------------------------------------

@jit
def _adagrad_serial(p, g, s, use_wd, wd, neg_clr, eps):
    for i in range(p.size):
        _adagrad_at(i, p, g, s, use_wd, wd, neg_clr, eps)


@pjit
def _adagrad_parallel(p, g, s, use_wd, wd, neg_clr, eps):
    for i in prange(p.size):
        _adagrad_at(i, p, g, s, use_wd, wd, neg_clr, eps)


def adagrad_step(param, grad, state_sum, step, lr, eps, weight_decay, lr_decay):
    """One Adagrad step in place; ``step`` is 1-based (int), used only through ``lr_decay``."""
    if param.size == 0:
        return None
    use_wd, wd, neg_clr, eps_ = adagrad_constants(step, lr, eps, weight_decay, lr_decay)
    kernel = _adagrad_parallel if param.size >= PARALLEL_MIN else _adagrad_serial
    kernel(_flat(param), _flat(grad), _flat(state_sum), use_wd,
           *_typed(param.dtype, (wd, neg_clr, eps_)))
    return None
