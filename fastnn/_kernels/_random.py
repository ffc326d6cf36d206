"""Counter-based random numbers: the same value for (seed, counter) on any thread and backend.

``build(compile)`` compiles the functions with the backend's decorator (``cpu._jit.jit`` on the
CPU, ``cuda.jit(device=True)`` on the GPU), so dropout masks and stochastic-pooling draws agree
across thread counts and devices.
"""
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S40 = np.uint64(40)
_S11 = np.uint64(11)
_INV24 = np.float32(1.0 / 16777216.0)
_INV53 = np.float64(1.0 / 9007199254740992.0)


def build(compile):
    """Return ``(random_bits, uniform_f32, uniform_f64)`` compiled with ``compile``."""

    @compile
    def mix64(z):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)

    @compile
    def random_bits(seed, counter):
        """64 random bits for a (seed, counter) pair (SplitMix64 of both)."""
        return mix64(mix64(np.uint64(seed) * _GOLDEN + _GOLDEN) + np.uint64(counter) * _GOLDEN)

    @compile
    def uniform_f32(seed, counter):
        """float32 uniform in [0, 1) with 24 random bits."""
        return np.float32(random_bits(seed, counter) >> _S40) * _INV24

    @compile
    def uniform_f64(seed, counter):
        """float64 uniform in [0, 1) with 53 random bits."""
        return np.float64(random_bits(seed, counter) >> _S11) * _INV53

    return random_bits, uniform_f32, uniform_f64
