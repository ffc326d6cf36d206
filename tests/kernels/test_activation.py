"""Activation kernels (elementwise, PReLU, softmax) against naive references, PyTorch, numerical
gradients and properties."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn.kernels as K
from tests.gradients import check_backward
from tests.naive import activation as ref

# name -> keyword arguments of the forward and backward calls
ELEMENTWISE = {
    "relu": {},
    "leaky_relu": {"negative_slope": 0.2},
    "elu": {"alpha": 1.3},
    "sigmoid": {},
    "tanh": {},
    "gelu": {},
}
TOL = {np.float32: dict(rtol=2e-6, atol=2e-7), np.float64: dict(rtol=1e-13, atol=1e-15)}
SERIAL_BELOW = 1 << 15


def _inputs(rng, shape, dtype, away_from_zero=False):
    x = rng.standard_normal(shape) * 3
    if away_from_zero:  # kinks at 0: keep central differences on one side
        x = np.where(np.abs(x) < 0.1, 0.5, x)
    return x.astype(dtype), rng.standard_normal(shape).astype(dtype)


def _f(name):
    return getattr(K, name), getattr(K, name + "_backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_matches_naive(name, dtype, rng):
    kw = ELEMENTWISE[name]
    x, dy = _inputs(rng, (3, 4, 5), dtype)
    x.flat[:3] = 0  # the kink of relu / leaky_relu / elu
    f, fb = _f(name)
    y = f(x, **kw)
    dx = fb(dy, x, **kw)
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, getattr(ref, name)(x, **kw), **TOL[dtype])
    np.testing.assert_allclose(dx, getattr(ref, name + "_backward")(dy, x, **kw), **TOL[dtype])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_numerical_gradient(name, rng):
    kw = ELEMENTWISE[name]
    f, fb = _f(name)
    x, _ = _inputs(rng, (4, 5), np.float64, away_from_zero=True)
    check_backward(lambda v: f(v, **kw), lambda dy, v: (fb(dy, v, **kw),), [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_parallel_path_matches_serial(name, dtype, rng):
    """Above SERIAL_BELOW elements the prange loop runs; pieces below it run serially."""
    kw = ELEMENTWISE[name]
    f, fb = _f(name)
    x, dy = _inputs(rng, (4 * SERIAL_BELOW + 3,), dtype)
    pieces = lambda a: np.array_split(a, 8)  # noqa: E731
    y = f(x, **kw)
    dx = fb(dy, x, **kw)
    # the two loops may round differently (FMA contraction); gelu's 1 + erf(x/sqrt(2)) cancels
    # for negative x, so compare to a few ulp of |x| as well
    atol = 4 * np.finfo(dtype).eps * np.abs(x) * (np.abs(dy) + 1)
    for got, want in ((y, np.concatenate([f(p, **kw) for p in pieces(x)])),
                      (dx, np.concatenate([fb(g, p, **kw) for g, p in zip(pieces(dy), pieces(x))]))):
        assert got.dtype == dtype
        assert np.all(np.abs(got - want) <= 1e-6 * np.abs(want) + atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_matches_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tf = {"relu": F.relu, "leaky_relu": F.leaky_relu, "elu": F.elu, "sigmoid": torch.sigmoid,
          "tanh": torch.tanh, "gelu": F.gelu}[name]
    kw = ELEMENTWISE[name]
    x, dy = _inputs(rng, (2, 3, 7, 5), dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = tf(tx, **kw)
    (tdx,) = torch.autograd.grad(ty, tx, torch.tensor(dy))
    f, fb = _f(name)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(f(x, **kw), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(fb(dy, x, **kw), tdx.numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_saturate_without_overflow(dtype):
    x = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], dtype=dtype)
    with np.errstate(all="raise"):
        s = K.sigmoid(x)
        t = K.tanh(x)
        ds = K.sigmoid_backward(np.ones_like(x), x)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(ds)) and np.all(np.isfinite(t))
    assert s[0] == 0 and s[-1] == 1 and s[3] == 0.5
    assert t[0] == -1 and t[-1] == 1
    assert ds[0] == 0 and ds[-1] == 0
    np.testing.assert_allclose(s, ref.sigmoid(x), rtol=1e-6, atol=1e-40)  # denormals


def test_nan_propagates():
    x = np.array([np.nan, 1.0, -1.0], dtype=np.float32)
    for name in ELEMENTWISE:
        assert np.isnan(getattr(K, name)(x)[0]), name
    assert np.isnan(K.softmax(x)).all()
    assert np.isnan(K.log_softmax(x)).all()


@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data())
def test_elementwise_shapes_property(shape, data):
    name = data.draw(st.sampled_from(sorted(ELEMENTWISE)))
    rng = np.random.default_rng(len(shape))
    x, dy = _inputs(rng, tuple(shape), np.float64)
    f, fb = _f(name)
    kw = ELEMENTWISE[name]
    np.testing.assert_allclose(f(x, **kw), getattr(ref, name)(x, **kw), **TOL[np.float64])
    np.testing.assert_allclose(fb(dy, x, **kw), getattr(ref, name + "_backward")(dy, x, **kw),
                               **TOL[np.float64])


# ----------------------------------------------------------------------------- PReLU

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,per_channel", [((6, 4), False), ((6, 4), True), ((2, 3, 4, 5), True),
                                               ((2, 3, 7), False), ((9,), False)])
def test_prelu_matches_naive(shape, per_channel, dtype, rng):
    x, dy = _inputs(rng, shape, dtype)
    w = rng.uniform(-0.5, 0.5, shape[1] if per_channel else 1).astype(dtype)
    y = K.prelu(x, w)
    dx, dw = K.prelu_backward(dy, x, w)
    rdx, rdw = ref.prelu_backward(dy, x, w)
    assert y.dtype == dx.dtype == dw.dtype == dtype and dw.shape == w.shape
    np.testing.assert_allclose(y, ref.prelu(x, w), **TOL[dtype])
    np.testing.assert_allclose(dx, rdx, **TOL[dtype])
    np.testing.assert_allclose(dw, rdw, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("shape,channels", [((5, 4), 4), ((5, 4), 1), ((2, 3, 3, 4), 3), ((2, 3, 5), 1)])
def test_prelu_numerical_gradient(shape, channels, rng):
    x, _ = _inputs(rng, shape, np.float64, away_from_zero=True)
    w = rng.uniform(0.05, 0.5, channels)
    check_backward(K.prelu, lambda dy, a, b: K.prelu_backward(dy, a, b), [x, w])


@pytest.mark.parametrize("shape,per_channel", [((300, 150), True), ((64, 16, 9, 9), True),
                                               ((50000,), False)])
def test_prelu_parallel_path(shape, per_channel, rng):
    x, dy = _inputs(rng, shape, np.float64)
    w = rng.uniform(0.05, 0.5, shape[1] if per_channel else 1)
    slopes = w.reshape((1, -1) + (1,) * (x.ndim - 2)) if per_channel else w[0]
    np.testing.assert_allclose(K.prelu(x, w), np.where(x > 0, x, slopes * x), rtol=1e-14)
    dx, dw = K.prelu_backward(dy, x, w)
    np.testing.assert_allclose(dx, np.where(x > 0, dy, slopes * dy), rtol=1e-14)
    axes = (0,) + tuple(range(2, x.ndim)) if per_channel else None
    expect = np.sum(np.where(x > 0, 0.0, dy * x), axis=axes)
    np.testing.assert_allclose(dw, np.reshape(expect, w.shape), rtol=1e-10)


def test_prelu_with_a_number_as_the_slope(rng):
    x, dy = _inputs(rng, (3, 4), np.float32)
    np.testing.assert_array_equal(K.prelu(x, 0.25), K.prelu(x, np.array([0.25], np.float32)))
    dx, dw = K.prelu_backward(dy, x, 0.25)
    assert dw.shape == () and dw.dtype == np.float32
    np.testing.assert_allclose(dw, ref.prelu_backward(dy, x, [0.25])[1][0], rtol=1e-5)


def test_prelu_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x, dy = _inputs(rng, (3, 4, 5, 2), np.float32)
    for w in (np.array([0.25], np.float32), rng.uniform(0, 0.5, 4).astype(np.float32)):
        tx = torch.tensor(x, requires_grad=True)
        tw = torch.tensor(w, requires_grad=True)
        ty = torch.nn.functional.prelu(tx, tw)
        tdx, tdw = torch.autograd.grad(ty, (tx, tw), torch.tensor(dy))
        dx, dw = K.prelu_backward(dy, x, w)
        np.testing.assert_allclose(K.prelu(x, w), ty.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(dx, tdx.numpy(), rtol=1e-6)
        np.testing.assert_allclose(dw, tdw.numpy(), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- softmax

SOFTMAX = ("softmax", "log_softmax")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_matches_naive(name, axis, dtype, rng):
    x, dy = _inputs(rng, (3, 4, 5), dtype)
    f, fb = _f(name)
    y = f(x, axis)
    dx = fb(dy, x, axis)
    assert y.dtype == dx.dtype == dtype
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y, getattr(ref, name)(x, axis), **tol)
    np.testing.assert_allclose(dx, getattr(ref, name + "_backward")(dy, x, axis), **tol)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_numerical_gradient(name, axis, rng):
    f, fb = _f(name)
    x, _ = _inputs(rng, (3, 4, 2), np.float64)
    check_backward(lambda v: f(v, axis), lambda dy, v: (fb(dy, v, axis),), [x])


@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data())
def test_softmax_axes_property(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    name = data.draw(st.sampled_from(SOFTMAX))
    rng = np.random.default_rng(sum(shape))
    x, dy = _inputs(rng, tuple(shape), np.float64)
    f, fb = _f(name)
    y = f(x, axis=axis)
    np.testing.assert_allclose(y, getattr(ref, name)(x, axis), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fb(dy, x, axis=axis), getattr(ref, name + "_backward")(dy, x, axis),
                               rtol=1e-11, atol=1e-13)
    if name == "softmax":
        np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-12)


@pytest.mark.parametrize("shape,axis", [((3000, 20), 1), ((2, 600, 40), 1), ((40000,), 0),
                                        ((20, 3000), 0)])
@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_parallel_paths(name, shape, axis, rng):
    scipy_special = pytest.importorskip("scipy.special")
    x, dy = _inputs(rng, shape, np.float64)
    f, fb = _f(name)
    expect = getattr(scipy_special, name)(x, axis=axis)
    np.testing.assert_allclose(f(x, axis), expect, rtol=1e-11, atol=1e-15)
    y = scipy_special.softmax(x, axis=axis)
    if name == "softmax":
        dx = y * (dy - np.sum(dy * y, axis=axis, keepdims=True))
    else:
        dx = dy - y * np.sum(dy, axis=axis, keepdims=True)
    np.testing.assert_allclose(fb(dy, x, axis), dx, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_matches_torch(axis, dtype, rng):
    torch = pytest.importorskip("torch")
    x, dy = _inputs(rng, (6, 9), dtype)
    tx = torch.tensor(x, requires_grad=True)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for name, tf in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
        ty = tf(tx, axis)
        (tdx,) = torch.autograd.grad(ty, tx, torch.tensor(dy))
        f, fb = _f(name)
        np.testing.assert_allclose(f(x, axis), ty.detach().numpy(), **tol)
        np.testing.assert_allclose(fb(dy, x, axis), tdx.numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_for_huge_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4 + 1]], dtype=dtype)
    with np.errstate(all="raise"):
        y = K.softmax(x)
        ly = K.log_softmax(x)
    np.testing.assert_allclose(y, [[1, 0, 0], [1 / 3] * 3, ref.softmax([0.0, 0.0, 1.0])], rtol=1e-6)
    np.testing.assert_allclose(ly[0], [0, -2e4, -1e4], rtol=1e-6)
    assert np.all(np.isfinite(ly))


# ----------------------------------------------------------------------------- arguments

def test_dtype_float32_default_and_preserved():
    x32 = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    w = np.array([0.1], np.float32)
    for name in ELEMENTWISE:
        f, fb = _f(name)
        assert f(x32).dtype == np.float32 and fb(x32, x32).dtype == np.float32
        assert f(x32.astype(np.float64)).dtype == np.float64
    assert K.prelu(x32, w).dtype == np.float32
    assert K.softmax(x32).dtype == np.float32 and K.log_softmax_backward(x32, x32).dtype == np.float32


def test_non_contiguous_input(rng):
    x = rng.standard_normal((6, 8))[:, ::2]
    np.testing.assert_allclose(K.relu(x), np.maximum(x, 0))
    np.testing.assert_allclose(K.softmax(x.T, axis=0), ref.softmax(x.T, 0), rtol=1e-12)


def test_bad_arguments():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="dy must have shape"):
        K.relu_backward(np.ones((3, 2), np.float32), x)
    with pytest.raises(TypeError, match="dy must have dtype"):
        K.tanh_backward(np.ones((2, 3)), x)
    with pytest.raises(TypeError, match="x must be a float"):
        K.sigmoid(np.ones(3, dtype=np.int64))
    with pytest.raises(TypeError, match="negative_slope"):
        K.leaky_relu(x, negative_slope="0.1")
    with pytest.raises(ValueError, match="alpha"):
        K.elu(x, alpha=np.inf)
    with pytest.raises(ValueError, match="axis"):
        K.softmax(x, axis=2)
    with pytest.raises(TypeError, match="axis"):
        K.log_softmax(x, axis=1.0)
    with pytest.raises(ValueError, match="weight"):
        K.prelu(x, np.ones(2, np.float32))
    with pytest.raises(ValueError, match="weight"):
        K.prelu(x, np.ones((3, 1), np.float32))
    with pytest.raises(TypeError, match="weight"):
        K.prelu(x, np.ones(3, np.float64))
    with pytest.raises(ValueError, match="dy must have shape"):
        K.prelu_backward(np.ones(6, np.float32), x, np.ones(3, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_based_activations_are_accurate_over_the_whole_range(dtype):
    """The vectorised exp / expm1 / tanh stay within a few ulp of float64 (or long double) libm."""
    lo, hi = (-120.0, 100.0) if dtype == np.float32 else (-800.0, 800.0)
    x = np.concatenate([np.linspace(lo, hi, 200_001), np.geomspace(1e-30, 2.0, 2001),
                        -np.geomspace(1e-30, 2.0, 2001), [0.0, np.inf, -np.inf]]).astype(dtype)
    wide = np.longdouble if dtype == np.float64 else np.float64
    xw = x.astype(wide)
    eps = np.finfo(dtype).eps
    with np.errstate(over="ignore"):
        want = {"tanh": np.tanh(xw), "sigmoid": 1 / (1 + np.exp(-xw)),
                "elu": np.where(xw > 0, xw, np.expm1(xw))}
    tiny = np.finfo(dtype).tiny
    for name, w in want.items():
        got = getattr(K, name)(x)
        assert got.dtype == dtype
        w = w.astype(dtype).astype(wide)
        normal = np.abs(w) >= tiny
        np.testing.assert_allclose(got[normal], w[normal], rtol=4 * eps, atol=0, err_msg=name)
        assert np.all(np.abs(got[~normal]) <= 2 * tiny), name  # subnormal results may flush
    assert np.isnan(K.tanh(np.array([np.nan], dtype)))[0]
    assert np.isnan(K.elu(np.array([np.nan], dtype)))[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_is_accurate_over_the_whole_range(dtype):
    """gelu's vectorised erf: within a few ulp of x * Phi(x) computed from math.erf, up to the
    cancellation in 1 + erf(x / sqrt(2)) for negative x (which torch's formula shares)."""
    x = np.concatenate([np.linspace(-40, 40, 100_001), np.geomspace(1e-30, 3.0, 2001),
                        -np.geomspace(1e-30, 3.0, 2001), [0.0, np.inf, -np.inf]]).astype(dtype)
    eps = np.finfo(dtype).eps
    want = ref.gelu(x[np.isfinite(x)])
    got = K.gelu(x)[np.isfinite(x)]
    xf = x[np.isfinite(x)].astype(np.float64)
    assert np.all(np.abs(got - want) <= 4 * eps * (np.abs(want) + np.abs(xf)))
    near = np.abs(xf) < 1  # no cancellation there: relative accuracy
    assert np.all(np.abs(got - want)[near] <= 4 * eps * np.abs(want)[near] + np.finfo(dtype).tiny)
    dy = np.ones_like(x)
    gwant = ref.gelu_backward(dy[np.isfinite(x)], x[np.isfinite(x)])
    ggot = K.gelu_backward(dy, x)[np.isfinite(x)]
    assert np.all(np.abs(ggot - gwant) <= 8 * eps * (np.abs(gwant) + np.abs(xf)))
    assert K.gelu(np.array([np.inf], dtype))[0] == np.inf
    assert np.isnan(K.gelu(np.array([np.nan], dtype)))[0]


def test_float32_kernels_do_their_arithmetic_in_float32():
    """No float64 arithmetic sneaks into float32 kernels (Numba promotes a float32 op with a float64
    or int64 operand, e.g. a Python float literal or math.floor's int, to float64)."""
    import re

    import numba

    from fastnn._kernels.cpu import activation as A
    from fastnn._kernels.cpu import loss as L
    from fastnn._kernels.cpu import vecmath as V
    from fastnn._kernels.cpu._jit import FASTMATH

    x = np.linspace(-3, 3, 40, dtype=np.float32)
    x2 = x.reshape(4, 10)
    out = np.empty_like(x)
    elementwise = [A._relu_kernel, A._relu_grad_kernel, A._leaky_kernel, A._leaky_grad_kernel,
                   A._elu_kernel, A._elu_grad_kernel, A._sigmoid_kernel, A._sigmoid_grad_kernel,
                   A._tanh_kernel, A._tanh_grad_kernel]  # GELU evaluates erf in float64 on purpose
    cases = [(V._reduce32, (np.float32(0.5),), False),
             (V._scale2, (np.float32(1.5), np.float32(3), np.float32(0.5)), False),
             *[(k.serial, (out, x, x, 0.5), True) for k in elementwise],
             (A._softmax_row, (0, x2, x2, out.reshape(4, 10), 0), True),
             (L._ce_row, (0, x2, np.zeros(4, np.int64), np.ones(4, np.float32),
                          np.empty(4, np.float32), out.reshape(4, 10)), True)]
    float64_op = re.compile(r"= f(add|sub|mul|div|neg)\b[^\n]*double|fpext")
    for kernel, args, fast in cases:
        fn = numba.njit(error_model="numpy", fastmath=set(FASTMATH) if fast else False)(kernel.py_func)
        fn(*args)
        ir = fn.inspect_llvm(fn.signatures[0])
        # the compiled function itself, not the wrappers that box results as Python floats
        bodies = [f for f in ir.split("\ndefine ")[1:]
                  if not re.match(r'[^@\n]*@"?(_ZN7cpython|cfunc\.)', f)]
        bad = [line.strip() for body in bodies for line in body.splitlines() if float64_op.search(line)]
        assert bodies and not bad, (kernel.py_func.__name__, bad[:3])
