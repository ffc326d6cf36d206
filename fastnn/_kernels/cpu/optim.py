"""Fused optimizer steps on the CPU: one pass over memory, arrays updated in place.

Each host function takes validated arrays (same shape and float dtype; the updated ones writable
and C-contiguous, ``grad`` C-contiguous) and validated Python scalars, exactly as the public
wrapper in ``fastnn._kernels.optim`` documents, and returns None. The per-step constants come
from the plain-Python helpers of ``_optim_constants`` (float64), cast to the parameter dtype
here, so a kernel compiles once per dtype. Every element is independent: results do not depend on the thread count.

Each kernel is one flat loop over the elements directly under ``prange``, with its constants
hoisted; the element update is a function inlined into the loop (``inline="always"``: the loop
still vectorises), shared by a serial copy of the kernel that runs buffers smaller than
``PARALLEL_MIN`` elements without thread start-up cost.
"""
import numpy as np
from numba import prange

from .._optim_constants import (adagrad_constants, adam_constants, rmsprop_constants,
                                sgd_constants)
from ._jit import jit, pjit

PARALLEL_MIN = 32768


def _flat(a):
    return a.reshape(-1)  # a view: every array here is C-contiguous


def _typed(dtype, values):
    t = np.dtype(dtype).type
    return tuple(t(v) for v in values)


# --- Adam / AdamW ---------------------------------------------------------------------------
# g' = g + wd*p (coupled only); m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2;
# p = p*decay - step_size * m / (sqrt(v)/bc2_sqrt + eps)     (decay = 1 - lr*wd when decoupled)

@jit(inline="always")
def _adam_at(i, p, g, m, v, coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps):
    pi = p[i]
    gi = g[i]
    if coupled:
        gi = gi + wd * pi
    mi = b1 * m[i] + omb1 * gi
    vi = b2 * v[i] + omb2 * gi * gi
    m[i] = mi
    v[i] = vi
    p[i] = pi * decay - step_size * mi / (np.sqrt(vi) / bc2_sqrt + eps)


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
# g' = g + wd*p; without momentum p = p - lr*g'. With momentum: buf = g' on the first step, else
# buf = mu*buf + (1-dampening)*g'; p = p - lr*(g' + mu*buf if nesterov else buf).

@jit(inline="always")
def _sgd_at(i, p, g, use_wd, wd, neg_lr):
    gi = g[i]
    if use_wd:
        gi = gi + wd * p[i]
    p[i] = p[i] + neg_lr * gi


@jit
def _sgd_serial(p, g, use_wd, wd, neg_lr):
    for i in range(p.size):
        _sgd_at(i, p, g, use_wd, wd, neg_lr)


@pjit
def _sgd_parallel(p, g, use_wd, wd, neg_lr):
    for i in prange(p.size):
        _sgd_at(i, p, g, use_wd, wd, neg_lr)


@jit(inline="always")
def _sgd_momentum_at(i, p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd):
    gi = g[i]
    if use_wd:
        gi = gi + wd * p[i]
    if first:
        b = gi
    else:
        b = mu * buf[i] + omd * gi
    buf[i] = b
    if nesterov:
        u = gi + mu * b
    else:
        u = b
    p[i] = p[i] + neg_lr * u


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
    if momentum_buf is not None and first_step is None:
        first_step = dampening != 0 and all_zero(_flat(momentum_buf))
    use_wd, wd, neg_lr, mu, omd = sgd_constants(lr, momentum, dampening, weight_decay)
    big = param.size >= PARALLEL_MIN
    if momentum_buf is None:
        kernel = _sgd_parallel if big else _sgd_serial
        kernel(_flat(param), _flat(grad), use_wd, *_typed(param.dtype, (wd, neg_lr)))
    else:
        kernel = _sgd_momentum_parallel if big else _sgd_momentum_serial
        kernel(_flat(param), _flat(grad), _flat(momentum_buf), use_wd, bool(first_step),
               bool(nesterov), *_typed(param.dtype, (wd, neg_lr, mu, omd)))
    return None


# --- RMSprop --------------------------------------------------------------------------------
# g' = g + wd*p; s = alpha*s + (1-alpha)*g'^2; p = p - lr * g' / (sqrt(s) + eps)

@jit(inline="always")
def _rmsprop_at(i, p, g, s, use_wd, wd, neg_lr, alpha, oma, eps):
    gi = g[i]
    if use_wd:
        gi = gi + wd * p[i]
    si = alpha * s[i] + oma * gi * gi
    s[i] = si
    p[i] = p[i] + neg_lr * gi / (np.sqrt(si) + eps)


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
# g' = g + wd*p; s = s + g'^2; p = p - clr * g' / (sqrt(s) + eps);
# clr = lr / (1 + (step-1)*lr_decay)

@jit(inline="always")
def _adagrad_at(i, p, g, s, use_wd, wd, neg_clr, eps):
    gi = g[i]
    if use_wd:
        gi = gi + wd * p[i]
    si = s[i] + gi * gi
    s[i] = si
    p[i] = p[i] + neg_clr * gi / (np.sqrt(si) + eps)


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
