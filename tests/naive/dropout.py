"""Float64 references for inverted dropout given a mask."""
import numpy as np


def dropout_apply(x, mask, p):
    """x * mask / (1 - p), element by element."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        if mask[idx]:
            out[idx] = x[idx] / (1.0 - p)
    return out


def dropout_backward(dy, mask, p):
    return dropout_apply(dy, mask, p)


_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def uniform_f32(seed, counter):
    """SplitMix64 of (seed, counter) -> 24 random bits -> float in [0, 1), in Python integers."""
    key = _mix64((seed * _GOLDEN + _GOLDEN) & _MASK64)
    bits = _mix64((key + counter * _GOLDEN) & _MASK64)
    return (bits >> 40) / 16777216.0


def dropout_mask(shape, p, seed):
    """Element i (C order) is kept iff uniform_f32(seed, i) >= float32(p)."""
    p32 = float(np.float32(p))
    size = int(np.prod(shape))
    return np.array([uniform_f32(seed, i) >= p32 for i in range(size)], dtype=np.uint8).reshape(shape)
