"""Inverted dropout: in training each unit is zeroed with probability ``p`` and the kept units are
scaled by ``1 / (1 - p)``; the mask comes from a counter-based generator keyed by ``seed`` (the
same mask for a seed on any thread count and on the GPU)."""

import numpy as np

from ._dispatch import backend, to_host
from ._validate import check_scalar, check_shape, is_int


def _p(p):
    return check_scalar(p, "p", 0, 1, high_open=True)


def _seed(seed):
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed


def _mask(be, mask, shape):
    """The mask as a C-contiguous uint8 array of ``shape`` (bool masks are viewed as uint8)."""
    if be.name == "cpu":
        m = np.asarray(to_host(mask), order="C")
    else:
        m = be._device(mask, "mask")
    dt = np.dtype(m.dtype)
    if dt == np.bool_:
        m = m.view(np.uint8)
    elif dt != np.uint8:
        raise TypeError(f"mask must be a uint8 or bool array (as returned by dropout), got dtype {dt}")
    check_shape(m, "mask", shape)
    return m


def dropout(x, p, seed):
    """``(y, mask)``: ``y = x * mask / (1 - p)``, ``mask`` uint8 of x's shape (1 = kept).

    p: drop probability in [0, 1) (p == 0 returns a copy of x and an all-ones mask); seed: an int
    in [0, 2**64).
    """
    p = _p(p)
    seed = _seed(seed)
    be = backend(x)
    shape = np.shape(x)
    x = be.float_array(x, "x").reshape(shape)  # (float_array makes a 0-d input 1-D)
    return be.impl("dropout").dropout(x, p, seed)


def dropout_backward(dy, mask, p):
    """``dx = dy * mask / (1 - p)`` for the mask returned by ``dropout``."""
    p = _p(p)
    be = backend(dy, mask)
    shape = np.shape(dy)
    dy = be.float_array(dy, "dy").reshape(shape)
    mask = _mask(be, mask, dy.shape)
    return be.impl("dropout").dropout_backward(dy, mask, p)
