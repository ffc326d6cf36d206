"""Vector math for the CPU kernels: functions that jitted loops call and that keep them vectorising.

``vexp``, ``vexpm1``, ``vtanh`` and ``verf`` are branch-free versions of the libm functions
(Cephes polynomials, 2**n built from its bits), so loops that call them vectorise: libm calls do
not, without Intel's SVML, and leave exp-based activations compute-bound. They are accurate to a
few float32 / float64 ulps (``verf``: absolute error below 2 ulp of 1, evaluated in float64), with
NaN and infinities handled; exp results near the bottom of the subnormal range flush to zero.
``max1d`` is a maximum that vectorises, ``relu1`` the scalar ReLU that fused epilogues inline.
Used by the activation, loss, MLP, dense and convolution kernels.
"""
import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._jit import jit

# ----------------------------------------------------------------------------- vector math
# The functions are inlined into the calling loops at Numba-IR level (LLVM's inliner gives up on
# them when a kernel has two loops calling them, and the loops stop vectorising), except the two
# small cores that must not be reassociated: the two-constant range reduction x - n*C1 - n*C2 and
# the two-factor scaling by 2**n. Those are compiled without fastmath (the flags are per
# instruction, so they survive LLVM's inlining into fastmath loops).
# np.floor, not math.floor: the latter returns an int64 and drags float32 code into float64.

@intrinsic
def _pow2(typingctx, n, like):
    """2.0**n in the float type of ``like``, for an integral float ``n`` in the normal exponent
    range, from the bits of the exponent field."""
    if like == types.float32:
        ity, fty, bias, shift = ir.IntType(32), ir.FloatType(), 127, 23
    else:
        ity, fty, bias, shift = ir.IntType(64), ir.DoubleType(), 1023, 52

    if not isinstance(n, types.Float):
        return None

    def codegen(context, builder, sig, args):
        k = builder.fptosi(args[0], ity)
        bits = builder.shl(builder.add(k, ir.Constant(ity, bias)), ir.Constant(ity, shift))
        return builder.bitcast(bits, fty)

    return like(n, like), codegen


@jit
def _where(cond, a, b):
    """``a if cond else b``: a conditional expression inside the functions below, which are
    inlined at Numba-IR level, makes Numba warn about variables out of scope."""
    return a if cond else b


@jit(fastmath=False)
def _reduce32(x):
    """(expm1(r), n) with x = n*ln2 + r, |r| <= ln2/2 (x clamped to [-104, 89])."""
    x = np.float32(-104.0) if x < np.float32(-104.0) else x  # exp(-104) rounds to 0
    x = np.float32(89.0) if x > np.float32(89.0) else x      # exp(89) is inf
    n = np.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))
    n = n if n == n else np.float32(0)  # NaN: keep the integer conversion defined
    r = x - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    return p * (r * r) + r, n


@jit(fastmath=False)
def _reduce64(x):
    """(expm1(r), n) with x = n*ln2 + r, |r| <= ln2/2 (x clamped to [-746, 710]); Cephes' Pade
    form expm1(r) = 2P / (Q - P)."""
    x = -746.0 if x < -746.0 else x
    x = 710.0 if x > 710.0 else x
    n = np.floor(x * 1.4426950408889634073599 + 0.5)
    n = n if n == n else 0.0
    r = x - n * 6.93145751953125e-1 - n * 1.42860682030941723212e-6
    rr = r * r
    p = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
             + 9.99999999999999999910e-1)
    q = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
         + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0
    return (p + p) / (q - p), n


@jit(fastmath=False)
def _scale2(y, n, half):
    """y * 2**n in two factors (2**n alone may be subnormal or overflow); half: 0.5 in y's type."""
    h = np.floor(n * half)
    return y * _pow2(h, y) * _pow2(n - h, y)


@jit(inline="always")
def _exp32(x):
    e, n = _reduce32(x)
    y = _scale2(e + np.float32(1), n, np.float32(0.5))
    return _where(x < np.float32(-104.0), np.float32(0), y)  # NaN compares False


@jit(inline="always")
def _exp64(x):
    e, n = _reduce64(x)
    y = _scale2(e + 1.0, n, 0.5)
    return _where(x < -746.0, 0.0, y)


@jit(inline="always")
def _expm1_32(x):
    e, n = _reduce32(x)  # n == 0: no cancellation, expm1(r) itself
    big = _scale2(e + np.float32(1), n, np.float32(0.5)) - np.float32(1)
    return _where(n == np.float32(0), e, big)


@jit(inline="always")
def _expm1_64(x):
    e, n = _reduce64(x)
    big = _scale2(e + 1.0, n, 0.5) - 1.0
    return _where(n == 0.0, e, big)


@jit(inline="always")
def _tanh32(x):
    a = abs(x)
    z = x * x
    p = np.float32(-5.70498872745e-3) * z + np.float32(2.06390887954e-2)
    p = p * z - np.float32(5.37397155531e-2)
    p = p * z + np.float32(1.33314422036e-1)
    p = p * z - np.float32(3.33332819422e-1)
    small = p * z * x + x
    big = np.float32(1) - np.float32(2) / (_exp32(a + a) + np.float32(1))
    big = _where(x >= np.float32(0), big, -big)
    return _where(a < np.float32(0.625), small, big)


@jit(inline="always")
def _tanh64(x):
    a = abs(x)
    z = x * x
    p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3
    q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3
    small = x + x * z * p / q
    big = 1.0 - 2.0 / (_exp64(a + a) + 1.0)
    big = _where(x >= 0.0, big, -big)
    return _where(a < 0.625, small, big)


@jit(inline="always")
def _erf64(x):
    """erf(x) from Cephes' rational approximations: x T(x^2) / U(x^2) for |x| < 1, else
    1 - exp(-x^2) P(|x|) / Q(|x|) (|x| capped at 6, where erf rounds to 1); both are evaluated
    and one is selected, so loops vectorise. Absolute error below 2 ulp of 1."""
    z = x * x
    t = (((9.60497373987051638749e0 * z + 9.00260197203842689217e1) * z
          + 2.23200534594684319226e3) * z + 7.00332514112805075473e3) * z + 5.55923013010394962768e4
    u = ((((z + 3.35617141647503099647e1) * z + 5.21357949780152679795e2) * z
          + 4.59432382970980127987e3) * z + 2.26290000613890934246e4) * z + 4.92673942608635921086e4
    small = x * t / u
    a = abs(x)
    a = _where(a > 6.0, 6.0, a)  # NaN stays NaN
    p = ((((((((2.46196981473530512524e-10 * a + 5.64189564831068821977e-1) * a
                + 7.46321056442269912687e0) * a + 4.86371970985681366614e1) * a
              + 1.96520832956077098242e2) * a + 5.26445194995477358631e2) * a
            + 9.34528527171957607540e2) * a + 1.02755188689515710272e3) * a
         + 5.57535335369399327526e2)
    q = (((((((a + 1.32281951154744992508e1) * a + 8.67072140885989742329e1) * a
              + 3.54937778887819891062e2) * a + 9.75708501743205489753e2) * a
            + 1.82390916687909736289e3) * a + 2.24633760818710981792e3) * a
         + 1.65666309194161350182e3) * a + 5.57535340817727675546e2
    big = 1.0 - _exp64(-a * a) * p / q
    big = _where(x >= 0.0, big, -big)
    return _where(a < 1.0, small, big)


@jit(inline="always")
def _erf32(x):
    return np.float32(_erf64(np.float64(x)))  # float64 arithmetic: float32 accuracy to spare


def _typed_overload(libm, f32, f64):
    """A Python function computing ``libm(x)`` that jitted code compiles as ``f32`` or ``f64``
    (by the float type of x), inlined: vectorisable in jitted loops."""
    def fn(x):
        return libm(x)

    fn.__name__ = fn.__qualname__ = "v" + libm.__name__
    fn.__doc__ = f"{libm.__name__}(x), vectorisable in jitted loops (float32 or float64 scalar)."

    def select(x):
        if x == types.float32:
            return lambda x: f32(x)
        if x == types.float64:
            return lambda x: f64(x)

    overload(fn, inline="always")(select)
    return fn


vexp = _typed_overload(math.exp, _exp32, _exp64)
vexpm1 = _typed_overload(math.expm1, _expm1_32, _expm1_64)
vtanh = _typed_overload(math.tanh, _tanh32, _tanh64)
verf = _typed_overload(math.erf, _erf32, _erf64)


@jit(inline="always")
def relu1(v, zero):
    return zero if v <= zero else v  # NaN stays NaN, as in torch


@jit(inline="always")
def _above(a, m):
    return a if a > m else m


@jit
def max1d(v):
    """Maximum of a 1-D array (-inf when empty). Eight running maxima: a single one is a chain of
    dependent selects that does not vectorise without fastmath's 'nnan'. A NaN may be skipped
    here; softmax and the losses still return NaN for it (exp(NaN - m) is NaN)."""
    n = v.size
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = v.dtype.type(-np.inf)
    for b in range(n // 8):
        k = b * 8
        m0, m1 = _above(v[k], m0), _above(v[k + 1], m1)
        m2, m3 = _above(v[k + 2], m2), _above(v[k + 3], m3)
        m4, m5 = _above(v[k + 4], m4), _above(v[k + 5], m5)
        m6, m7 = _above(v[k + 6], m6), _above(v[k + 7], m7)
    for k in range(n - n % 8, n):
        m0 = _above(v[k], m0)
    return _above(_above(_above(m7, m6), _above(m5, m4)), _above(_above(m3, m2), _above(m1, m0)))
