"""Every optimizer rule, written once for both backends: the per-step scalars of each update
(``*_constants``, float64; each backend casts them to the parameter dtype), the element updates
(``build``, compiled by each backend), and scikit-learn's forms (its Adam epsilon inside
``adam_constants``, its SGD in ``build``), which the fused MLP epochs and ``fastnn.nn``'s
``Adam(sklearn_epsilon=True)`` use. A neutral module: both backends import it, it imports neither
(nor Numba: the backend passes its compiler in, and ``adam_constants`` compiles as it is).
"""
import math


def adam_constants(step, lr, beta1, beta2, eps, weight_decay, decoupled, sklearn_epsilon):
    """``(coupled, wd, decay, beta1, 1-beta1, beta2, 1-beta2, sqrt(bc2), lr/bc1, eps')``.

    ``coupled``: add ``wd * param`` to the gradient (Adam's L2 term); ``decay``: the factor that
    multiplies ``param`` first (AdamW's ``1 - lr * weight_decay``, else 1). bc_k = 1 - beta_k**step.
    ``eps' = eps``, or with ``sklearn_epsilon`` scikit-learn's form ``eps / sqrt(bc2)``: it adds
    ``eps`` to the root of the uncorrected second moment, which this update reaches with that
    value (multiply its numerator and denominator by ``sqrt(bc2)``). Plain arithmetic: the CPU's
    MLP epoch compiles this function as it is.
    """
    coupled = weight_decay != 0 and not decoupled
    decay = 1.0 - lr * weight_decay if decoupled else 1.0
    bc1 = 1.0 - beta1 ** step
    bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
    return (coupled, weight_decay if coupled else 0.0, decay, beta1, 1.0 - beta1, beta2,
            1.0 - beta2, bc2_sqrt, lr / bc1, eps / bc2_sqrt if sklearn_epsilon else eps)


def sgd_constants(lr, momentum, dampening, weight_decay):
    """``(use_wd, weight_decay, -lr, momentum, 1 - dampening)``."""
    return weight_decay != 0, weight_decay, -lr, momentum, 1.0 - dampening


def rmsprop_constants(lr, alpha, eps, weight_decay):
    """``(use_wd, weight_decay, -lr, alpha, 1 - alpha, eps)``."""
    return weight_decay != 0, weight_decay, -lr, alpha, 1.0 - alpha, eps


def adagrad_constants(step, lr, eps, weight_decay, lr_decay):
    """``(use_wd, weight_decay, -clr, eps)`` with ``clr = lr / (1 + (step - 1) * lr_decay)``."""
    return weight_decay != 0, weight_decay, -(lr / (1.0 + (step - 1) * lr_decay)), eps


def build(compile, sqrt):
    """The element updates ``(adam_at, sgd_at, sgd_momentum_at, rmsprop_at, adagrad_at,
    sklearn_sgd_at)``, each ``*_at(i, p, g, state..., constants...)`` updating element ``i`` of
    the flat arrays in place,
    compiled with the backend's decorator (the CPU's inlines into its ``prange`` loop, the GPU's
    into its grid-stride loop) and its ``sqrt``: one rule, the same arithmetic on both.

    The constants are the helpers' results above, cast to the parameter dtype. An edit here makes
    the CPU kernels cached on disk that use it stale (``cpu/_cache.sources_digest``).
    """

    @compile
    def adam_at(i, p, g, m, v, c):
        """g' = g + wd*p (coupled only); m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2;
        p = p*decay - step_size * m / (sqrt(v)/bc2_sqrt + eps)  (decay = 1 - lr*wd: AdamW).
        ``c``: ``adam_constants``' tuple, its numbers cast to the parameter dtype."""
        coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps = c
        pi = p[i]
        gi = g[i]
        if coupled:
            gi = gi + wd * pi
        mi = b1 * m[i] + omb1 * gi
        vi = b2 * v[i] + omb2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi * decay - step_size * mi / (sqrt(vi) / bc2_sqrt + eps)

    @compile
    def sgd_at(i, p, g, use_wd, wd, neg_lr):
        """g' = g + wd*p; p = p - lr*g'."""
        gi = g[i]
        pi = p[i]
        if use_wd:
            gi = gi + wd * pi
        p[i] = pi + neg_lr * gi

    @compile
    def sgd_momentum_at(i, p, g, buf, use_wd, first, nesterov, wd, neg_lr, mu, omd):
        """g' = g + wd*p; buf = g' on the first step, else mu*buf + (1-dampening)*g';
        p = p - lr*(g' + mu*buf if nesterov else buf)."""
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

    @compile
    def rmsprop_at(i, p, g, s, use_wd, wd, neg_lr, alpha, oma, eps):
        """g' = g + wd*p; s = alpha*s + (1-alpha)*g'^2; p = p - lr * g' / (sqrt(s) + eps)."""
        gi = g[i]
        pi = p[i]
        if use_wd:
            gi = gi + wd * pi
        si = alpha * s[i] + oma * gi * gi
        s[i] = si
        p[i] = pi + neg_lr * gi / (sqrt(si) + eps)

    @compile
    def adagrad_at(i, p, g, s, use_wd, wd, neg_clr, eps):
        """g' = g + wd*p; s = s + g'^2; p = p - clr * g' / (sqrt(s) + eps)."""
        gi = g[i]
        pi = p[i]
        if use_wd:
            gi = gi + wd * pi
        si = s[i] + gi * gi
        s[i] = si
        p[i] = pi + neg_clr * gi / (sqrt(si) + eps)

    @compile
    def sklearn_sgd_at(i, p, g, velocity, lr, momentum, nesterov):
        """scikit-learn's SGD: v = momentum*v - lr*g; p += momentum*v - lr*g (Nesterov) or
        p += v (the fused MLP epochs)."""
        gi = g[i]
        vi = momentum * velocity[i] - lr * gi
        velocity[i] = vi
        if nesterov:
            p[i] += momentum * vi - lr * gi
        else:
            p[i] += vi

    return adam_at, sgd_at, sgd_momentum_at, rmsprop_at, adagrad_at, sklearn_sgd_at


def sgd_first_step(first_step, momentum_buf, dampening, all_zero):
    """Whether an SGD step with momentum copies the gradient into the buffer: ``first_step`` when
    given, else (None) iff the buffer is all zeros by the backend's ``all_zero``, looked at only
    when ``dampening != 0`` (otherwise updating a zero buffer equals copying)."""
    if first_step is None:
        return dampening != 0 and all_zero(momentum_buf)
    return bool(first_step)
