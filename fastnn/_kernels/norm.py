"""Batch normalisation (``torch.nn.functional.batch_norm``) and its gradient."""
from collections import namedtuple

import numpy as np

from ._dispatch import backend
from ._validate import check_scalar, check_shape

BatchNormCache = namedtuple("BatchNormCache", "x mean invstd gamma has_beta training shape")
BatchNormCache.__doc__ = """What ``batch_norm_backward`` needs from the forward pass.

x: the input as an (N, C, S) array (a view of a contiguous input, not a copy: do not modify the
input before the backward pass); mean, invstd: the per-channel statistics used (the batch's in
training, the running ones otherwise); gamma: the scale or None; has_beta: whether a shift was
given; training: the mode of the forward pass; shape: the input's shape."""

_LAYOUT = "(N, C, ...): (N, C), (N, C, L), (N, C, H, W)"


def _channel_param(be, a, name, dtype, c):
    if a is None:
        return None
    a = be.float_array(a, name, ndim=1, dtype=dtype)
    check_shape(a, name, (c,))
    return a


def batch_norm(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    """``F.batch_norm(x, running_mean, running_var, gamma, beta, training, momentum, eps)``.

    x: (N, C, ...); gamma, beta: (C,) or None (no affine scale / shift). In training the batch
    statistics normalise x (biased variance) and, when given, ``running_mean`` and
    ``running_var`` (writable (C,) arrays of x's dtype) are updated in place with the unbiased
    variance: ``r = (1 - momentum) * r + momentum * stat``. Otherwise the running statistics
    normalise x. Returns ``(y, cache)``; pass ``cache`` to ``batch_norm_backward``.
    """
    be = backend(x, gamma, beta, running_mean, running_var)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool, got {training!r}")
    training = bool(training)
    momentum = check_scalar(momentum, "momentum", 0, 1)
    eps = check_scalar(eps, "eps", 0, low_open=True)
    if np.ndim(x) < 2:
        raise ValueError(f"x must be at least 2-D {_LAYOUT}, got shape {np.shape(x)}")
    x = be.float_array(x, "x")
    shape = tuple(x.shape)
    n, c = shape[0], shape[1]
    s = x.size // (n * c) if n * c else 0
    gamma = _channel_param(be, gamma, "gamma", x.dtype, c)
    beta = _channel_param(be, beta, "beta", x.dtype, c)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or both None)")
    if training:
        if n * s <= 1:
            raise ValueError(f"x must have more than 1 value per channel in training, "
                             f"got shape {shape}")
        if running_mean is not None:
            running_mean = be.inplace_array(running_mean, "running_mean", x.dtype, (c,))
            running_var = be.inplace_array(running_var, "running_var", x.dtype, (c,))
    else:
        if running_mean is None:
            raise ValueError("running_mean and running_var are required when training=False")
        running_mean = _channel_param(be, running_mean, "running_mean", x.dtype, c)
        running_var = _channel_param(be, running_var, "running_var", x.dtype, c)
    x3 = x.reshape((n, c, s))
    y, mean, invstd = be.impl("norm").batch_norm(x3, gamma, beta, running_mean, running_var,
                                                 training, momentum, eps)
    cache = BatchNormCache(x3, mean, invstd, gamma, beta is not None, training, shape)
    return y.reshape(shape), cache


def batch_norm_backward(dy, cache):
    """``(dx, dgamma, dbeta)`` for the ``batch_norm`` call that returned ``cache``; ``dgamma``
    (``dbeta``) is None when gamma (beta) was None. Correct for training and eval mode."""
    if not isinstance(cache, BatchNormCache):
        raise TypeError("cache must be the BatchNormCache returned by batch_norm, "
                        f"got {type(cache).__name__}")
    be = backend(dy, cache.x)
    dy = be.float_array(dy, "dy", dtype=cache.x.dtype)
    check_shape(dy, "dy", cache.shape)
    dx, dgamma, dbeta = be.impl("norm").batch_norm_backward(
        dy.reshape(cache.x.shape), cache.x, cache.mean, cache.invstd, cache.gamma, cache.training)
    return (dx.reshape(cache.shape), dgamma if cache.gamma is not None else None,
            dbeta if cache.has_beta else None)
