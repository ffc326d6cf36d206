"""Weight initialisers.

Every initialiser is ``f(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None)`` and returns
a new NumPy array. ``rng`` is a ``numpy.random.Generator``, an int seed, or None (fresh entropy).
Fans default to the layouts of fastnn weights, dense ``(out_features, in_features)`` and convolution
``(C_out, C_in/groups, *kernel)``: ``fan_in = shape[1] * receptive field``,
``fan_out = shape[0] * receptive field`` (see ``compute_fans``); layers whose layout differs
(transposed convolution) pass them explicitly. Values are drawn in float64 and then cast, so a seed
gives the same weights, to rounding, in either dtype.

Which to use: He (Kaiming) for ReLU-family networks (the default of fastnn's Dense and convolution
layers), Glorot (Xavier) for tanh/sigmoid, LeCun for SELU-style or linear units, orthogonal for
recurrent weights. ``get(name)`` maps a name to the function (``xavier_*`` and ``kaiming_*`` are
aliases of ``glorot_*`` and ``he_*``).
"""
import math

import numpy as np

__all__ = ["compute_fans", "he_normal", "he_uniform", "glorot_normal", "glorot_uniform",
           "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
           "lecun_normal", "lecun_uniform", "orthogonal", "zeros", "ones", "get"]


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must have non-negative sizes, got {shape}")
    return shape


def _generator(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {rng!r}")


def float_dtype(dtype):
    """``dtype`` as a NumPy dtype, float32 or float64 (what layers and weights compute in)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"layers compute in float32 or float64, got dtype {dtype}")
    return dtype


def compute_fans(shape):
    """``(fan_in, fan_out)`` of a weight of this shape: ``(out, in, *receptive field)`` layout.

    A 1-D shape ``(n,)`` has both fans ``n``; a scalar shape has both 1.
    """
    shape = _shape(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:], dtype=np.int64))
    return shape[1] * receptive, shape[0] * receptive


def _fans(shape, fan_in, fan_out):
    auto_in, auto_out = compute_fans(shape)
    fan_in = auto_in if fan_in is None else int(fan_in)
    fan_out = auto_out if fan_out is None else int(fan_out)
    return fan_in, fan_out


def _positive(fan, what, shape):
    if fan <= 0:
        raise ValueError(f"{what} must be positive to scale the initial weights, got {fan} "
                         f"for shape {shape}")
    return fan


def _normal(shape, std, rng, dtype):
    return (_generator(rng).standard_normal(shape) * std).astype(float_dtype(dtype))


def _uniform(shape, bound, rng, dtype):
    return _generator(rng).uniform(-bound, bound, size=shape).astype(float_dtype(dtype))


def _variance_scaling(shape, rng, dtype, fan_in, fan_out, scale, mode, distribution):
    """Weights of variance ``scale / n``, ``n`` = fan_in (``mode="fan_in"``) or fan_in + fan_out:
    Normal(0, sqrt(scale / n)) or Uniform(-a, a) with ``a = sqrt(3 * scale / n)``."""
    shape = _shape(shape)
    fan_in, fan_out = _fans(shape, fan_in, fan_out)
    if mode == "fan_in":
        n = _positive(fan_in, "fan_in", shape)
    else:
        n = _positive(fan_in + fan_out, "fan_in + fan_out", shape)
    if distribution == "normal":
        return _normal(shape, math.sqrt(scale / n), rng, dtype)
    return _uniform(shape, math.sqrt(3.0 * scale / n), rng, dtype)


def he_normal(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
    """Normal(0, std) with ``std = sqrt(2 / fan_in)`` (He et al. 2015; as ``kaiming_normal_``)."""
    return _variance_scaling(shape, rng, dtype, fan_in, fan_out, 2.0, "fan_in", "normal")


def he_uniform(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
    """Uniform(-a, a) with ``a = sqrt(6 / fan_in)`` (variance ``2 / fan_in``, as ``he_normal``)."""
    return _variance_scaling(shape, rng, dtype, fan_in, fan_out, 2.0, "fan_in", "uniform")


def glorot_normal(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
    """Normal(0, std) with ``std = sqrt(2 / (fan_in + fan_out))`` (Glorot & Bengio 2010)."""
    return _variance_scaling(shape, rng, dtype, fan_in, fan_out, 2.0, "fan_avg", "normal")


def glorot_uniform(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
    """Uniform(-a, a) with ``a = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010)."""
    return _variance_scaling(shape, rng, dtype, fan_in, fan_out, 2.0, "fan_avg", "uniform")


def lecun_normal(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
    """Normal(0, std) with ``std = sqrt(1 / fan_in)`` (LeCun et al. 1998)."""
    return _variance_scaling(shape, rng, dtype, fan_in, fan_out, 1.0, "fan_in", "normal")


def lecun_uniform(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
    """Uniform(-a, a) with ``a = sqrt(3 / fan_in)`` (variance ``1 / fan_in``)."""
    return _variance_scaling(shape, rng, dtype, fan_in, fan_out, 1.0, "fan_in", "uniform")


def orthogonal(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None, gain=1.0):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014; ``torch.nn.init.orthogonal_``).

    The weight is viewed as ``(shape[0], prod(shape[1:]))``: its rows are orthonormal when there
    are no more rows than columns, else its columns. Fans are ignored. For gate-stacked recurrent
    weights (``(4*units, units)`` for an LSTM) call it once per ``(units, units)`` block to make
    each gate's matrix orthogonal.
    """
    shape = _shape(shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal needs a shape of at least 2 dimensions, got {shape}")
    rows = shape[0]
    cols = int(np.prod(shape[1:], dtype=np.int64))
    if rows == 0 or cols == 0:
        return np.zeros(shape, dtype=float_dtype(dtype))
    a = _generator(rng).standard_normal((rows, cols))
    if rows < cols:
        a = a.T
    q, r = np.linalg.qr(a)
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # unique, uniformly distributed factor
    if rows < cols:
        q = q.T
    return (float(gain) * q).reshape(shape).astype(float_dtype(dtype))


def zeros(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
    """All zeros (biases, BatchNorm shift)."""
    return np.zeros(_shape(shape), dtype=float_dtype(dtype))


def ones(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
    """All ones (BatchNorm scale)."""
    return np.ones(_shape(shape), dtype=float_dtype(dtype))


xavier_normal = glorot_normal
xavier_uniform = glorot_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform

_BY_NAME = {
    "he_normal": he_normal, "he_uniform": he_uniform,
    "kaiming_normal": he_normal, "kaiming_uniform": he_uniform,
    "glorot_normal": glorot_normal, "glorot_uniform": glorot_uniform,
    "xavier_normal": glorot_normal, "xavier_uniform": glorot_uniform,
    "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform,
    "orthogonal": orthogonal, "zeros": zeros, "ones": ones,
}


def get(name_or_callable):
    """The initialiser named ``name_or_callable`` (case-insensitive), or the callable itself.

    Layers accept either; a name is what ``fastnn.save`` can store.
    """
    if isinstance(name_or_callable, str):
        try:
            return _BY_NAME[name_or_callable.lower()]
        except KeyError:
            raise ValueError(f"unknown initializer {name_or_callable!r}; expected one of "
                             f"{sorted(_BY_NAME)} or a callable") from None
    if callable(name_or_callable):
        return name_or_callable
    raise TypeError(f"initializer must be a name or a callable, got {name_or_callable!r}")
