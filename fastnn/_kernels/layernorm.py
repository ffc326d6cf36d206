"""Layer normalisation (``torch.nn.functional.layer_norm``) and its gradient."""
import math

from ._dispatch import backend
from ._validate import check_scalar, check_shape, size_tuple


def _normalized_shape(normalized_shape, x_shape):
    """``normalized_shape`` (an int or a sequence of ints) as a tuple matching x's last axes."""
    shape = size_tuple(normalized_shape, "normalized_shape")
    k = len(shape)
    if len(x_shape) < k or tuple(x_shape[len(x_shape) - k:]) != shape:
        raise ValueError(f"x must end with the normalized_shape {shape}: expected shape "
                         f"(*, {', '.join(map(str, shape))}), got {tuple(x_shape)}")
    return shape


def _affine(be, a, name, dtype, shape):
    """gamma or beta: None, or an array of ``shape`` and ``dtype``, as a flat array."""
    if a is None:
        return None
    a = be.float_array(a, name, dtype=dtype)
    check_shape(a, name, shape)
    return a.reshape(math.prod(shape)) if len(shape) != 1 else a


def layer_norm(x, normalized_shape, gamma=None, beta=None, eps=1e-5):
    """``F.layer_norm(x, normalized_shape, gamma, beta, eps)``: each sample normalised over the
    trailing axes ``normalized_shape``, then scaled by ``gamma`` and shifted by ``beta``.

    x: (*, *normalized_shape) float; gamma, beta: arrays of shape ``normalized_shape`` in x's
    dtype, or None (no scale / no shift). Statistics use the biased variance, summed in float64.
    Returns ``(y, mean, invstd)``: y of x's shape and dtype; ``mean`` and ``invstd``
    (``1 / sqrt(var + eps)``) of shape ``x.shape[:-len(normalized_shape)]`` in x's dtype, what
    ``layer_norm_backward`` takes.
    """
    be = backend(x, gamma, beta)
    eps = check_scalar(eps, "eps", 0, low_open=True)
    x = be.float_array(x, "x")
    shape = _normalized_shape(normalized_shape, tuple(x.shape))
    lead = tuple(x.shape[:x.ndim - len(shape)])
    m, d = math.prod(lead), math.prod(shape)
    gamma = _affine(be, gamma, "gamma", x.dtype, shape)
    beta = _affine(be, beta, "beta", x.dtype, shape)
    y, mean, invstd = be.impl("layernorm").layer_norm(x.reshape((m, d)), gamma, beta, eps)
    return y.reshape(tuple(x.shape)), mean.reshape(lead), invstd.reshape(lead)


def layer_norm_backward(dy, x, mean, invstd, gamma=None):
    """``(dx, dgamma, dbeta)`` for the ``layer_norm`` call on ``x`` that returned ``mean`` and
    ``invstd``; the normalised axes are the axes of x after ``mean``'s.

    dgamma and dbeta (shape ``normalized_shape``, x's dtype) are the sums over the rows of
    ``dy * x_hat`` and of ``dy``, computed whether or not ``gamma`` was given; their row sums are
    cut into blocks by the size of the problem and added in a fixed order (bitwise the same for
    any thread count).
    """
    be = backend(dy, x, mean, invstd, gamma)
    x = be.float_array(x, "x")
    mean = be.float_array(mean, "mean", dtype=x.dtype)
    invstd = be.float_array(invstd, "invstd", dtype=x.dtype)
    lead = tuple(mean.shape)
    check_shape(invstd, "invstd", lead)
    if len(lead) >= x.ndim or tuple(x.shape[:len(lead)]) != lead:
        raise ValueError(f"mean must have the shape of x's leading axes (x.shape[:-k] for k "
                         f"normalised axes), got {lead} for x of shape {tuple(x.shape)}")
    shape = tuple(x.shape[len(lead):])
    m, d = math.prod(lead), math.prod(shape)
    dy = be.float_array(dy, "dy", dtype=x.dtype)
    check_shape(dy, "dy", tuple(x.shape))
    gamma = _affine(be, gamma, "gamma", x.dtype, shape)
    dx, dgamma, dbeta = be.impl("layernorm").layer_norm_backward(
        dy.reshape((m, d)), x.reshape((m, d)), mean.reshape(m), invstd.reshape(m), gamma)
    return dx.reshape(tuple(x.shape)), dgamma.reshape(shape), dbeta.reshape(shape)
