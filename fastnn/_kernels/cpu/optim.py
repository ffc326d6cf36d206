"""Fused optimizer steps on the CPU: one pass over memory, arrays updated in place.

Each host function takes validated arrays (same shape and float dtype; the updated ones writable
and C-contiguous, ``grad`` C-contiguous) and validated Python scalars, exactly as the public
wrapper in ``fastnn._kernels.optim`` documents, and returns None. The per-step constants come
from the plain-Python helpers of ``_optim_rules`` (float64), cast to the parameter dtype
here, so a kernel compiles once per dtype. Every element is independent: results do not depend on the thread count.

Each kernel is one flat loop over the elements directly under ``prange``, with its constants
hoisted; the element update (written once for both backends in ``_optim_rules.build``) is a
function inlined into the loop (``inline="always"``: the loop still vectorises), shared by a
serial copy of the kernel that runs buffers smaller than ``PARALLEL_MIN`` elements without thread
start-up cost.
"""
import numpy as np
from numba import prange

from .._optim_rules import (adagrad_constants, adam_constants, build, rmsprop_constants,
                            sgd_constants, sgd_first_step)
from ._jit import jit, loops

PARALLEL_MIN = 32768

# the element updates (their formulas: ``_optim_rules.build``), inlined into each loop below
_adam_at, _sgd_at, _sgd_momentum_at, _rmsprop_at, _adagrad_at = build(
    lambda f: jit(f, inline="always"), np.sqrt)[:5]


def _flat(a):
    return a.reshape(-1)  # a view: every array here is C-contiguous


def _typed(dtype, values):
    t = np.dtype(dtype).type
    return tuple(t(v) for v in values)


# --- Adam / AdamW ---------------------------------------------------------------------------

@loops
def _adam(p, g, m, v, c):
    for i in prange(p.size):
        _adam_at(i, p, g, m, v, c)


adam_serial = _adam.serial   # Adam over every element on this thread: the MLP epoch calls it


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
              decoupled, sklearn_epsilon):
    """One Adam (``decoupled=False``) or AdamW step in place; ``step`` is 1-based (int)."""
    if param.size == 0:
        return None
    coupled, *numbers = adam_constants(step, lr, beta1, beta2, eps, weight_decay, decoupled,
                                       sklearn_epsilon)
    kernel = _adam.parallel if param.size >= PARALLEL_MIN else _adam.serial
    kernel(_flat(param), _flat(grad), _flat(exp_avg), _flat(exp_avg_sq),
           (coupled, *_typed(param.dtype, numbers)))
    return None


# --- SGD ------------------------------------------------------------------------------------

@loops
def _sgd(p, g, use_wd, wd, neg_lr):
    for i in prange(p.size):
        _sgd_at(i, p, g, use_wd, wd, neg_lr)


@loops
def _sgd_momentum(p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd):
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
        kernel = _sgd.parallel if big else _sgd.serial
        kernel(_flat(param), _flat(grad), use_wd, *_typed(param.dtype, (wd, neg_lr)))
    else:
        first = sgd_first_step(first_step, _flat(momentum_buf), dampening, all_zero)
        kernel = _sgd_momentum.parallel if big else _sgd_momentum.serial
        kernel(_flat(param), _flat(grad), _flat(momentum_buf), use_wd, first,
               bool(nesterov), *_typed(param.dtype, (wd, neg_lr, mu, omd)))
    return None


# --- RMSprop --------------------------------------------------------------------------------

@loops
def _rmsprop(p, g, s, use_wd, wd, neg_lr, alpha, oma, eps):
    for i in prange(p.size):
        _rmsprop_at(i, p, g, s, use_wd, wd, neg_lr, alpha, oma, eps)


def rmsprop_step(param, grad, square_avg, lr, alpha, eps, weight_decay):
    """One RMSprop step in place (torch's defaults: no momentum, not centered)."""
    if param.size == 0:
        return None
    use_wd, wd, neg_lr, alpha_, oma, eps_ = rmsprop_constants(lr, alpha, eps, weight_decay)
    kernel = _rmsprop.parallel if param.size >= PARALLEL_MIN else _rmsprop.serial
    kernel(_flat(param), _flat(grad), _flat(square_avg), use_wd,
           *_typed(param.dtype, (wd, neg_lr, alpha_, oma, eps_)))
    return None


# --- Adagrad --------------------------------------------------------------------------------

@loops
def _adagrad(p, g, s, use_wd, wd, neg_clr, eps):
    for i in prange(p.size):
        _adagrad_at(i, p, g, s, use_wd, wd, neg_clr, eps)


def adagrad_step(param, grad, state_sum, step, lr, eps, weight_decay, lr_decay):
    """One Adagrad step in place; ``step`` is 1-based (int), used only through ``lr_decay``."""
    if param.size == 0:
        return None
    use_wd, wd, neg_clr, eps_ = adagrad_constants(step, lr, eps, weight_decay, lr_decay)
    kernel = _adagrad.parallel if param.size >= PARALLEL_MIN else _adagrad.serial
    kernel(_flat(param), _flat(grad), _flat(state_sum), use_wd,
           *_typed(param.dtype, (wd, neg_clr, eps_)))
    return None
