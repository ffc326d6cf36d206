"""Fused optimizer-step kernels (Adam, SGD, RMSprop, Adagrad) against naive references, PyTorch,
scikit-learn's Adam, and properties."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn.kernels import adagrad_step, adam_step, rmsprop_step, sgd_step
from tests.naive import optim as ref

STATE = {"adam": ("exp_avg", "exp_avg_sq"), "sgd": ("momentum_buf",), "rmsprop": ("square_avg",),
         "adagrad": ("state_sum",)}
CONFIGS = {
    "adam": [{}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "decoupled": True},
             {"lr": 0.05, "beta1": 0.5, "beta2": 0.9, "eps": 1e-6}, {"lr": 0.01, "beta1": 0.0},
             {"lr": 0.02, "weight_decay": 0.3, "decoupled": True, "beta2": 0.95}],
    "sgd": [{"lr": 0.1}, {"lr": 0.1, "weight_decay": 0.05}, {"lr": 0.1, "momentum": 0.9},
            {"lr": 0.1, "momentum": 0.9, "dampening": 0.3},
            {"lr": 0.1, "momentum": 0.9, "nesterov": True},
            {"lr": 0.05, "momentum": 0.5, "dampening": 0.5, "weight_decay": 0.01},
            {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}],
    "rmsprop": [{}, {"weight_decay": 0.1}, {"lr": 0.001, "alpha": 0.9, "eps": 1e-6}],
    "adagrad": [{}, {"weight_decay": 0.1}, {"lr": 0.1, "lr_decay": 0.01, "eps": 1e-6}],
}
CASES = [(name, hp) for name, hps in CONFIGS.items() for hp in hps]
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in hp.items()) or 'default'}"
            for name, hp in CASES]
STEPS = 5
TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-6)}


def _problem(shape, seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(steps)]
    return p0, grads


def run_fastnn(name, p0, grads, dtype, **hp):
    """fastnn steps from zero state; returns (param, *state) in ``dtype``."""
    p = np.array(p0, dtype=dtype)
    state = [np.zeros_like(p) for _ in STATE[name]]
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, dtype=dtype)
        if name == "adam":
            adam_step(p, g, *state, t, **hp)
        elif name == "sgd":
            sgd_step(p, g, state[0], **hp)
        elif name == "rmsprop":
            rmsprop_step(p, g, *state, **hp)
        else:
            adagrad_step(p, g, *state, t, **hp)
    return [p, *state]


def run_naive(name, p0, grads, dtype, **hp):
    """The float64 reference from the same (dtype-rounded) inputs."""
    p = np.asarray(p0, dtype=dtype).astype(np.float64)
    state = [np.zeros_like(p) for _ in STATE[name]]
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, dtype=dtype).astype(np.float64)
        if name == "adam":
            p, *state = ref.adam(p, g, *state, t, **hp)
        elif name == "sgd":
            p, buf = ref.sgd(p, g, state[0], first_step=t == 1, **hp)
            state = [np.zeros_like(p) if buf is None else buf]
        elif name == "rmsprop":
            p, *state = ref.rmsprop(p, g, *state, **hp)
        else:
            p, *state = ref.adagrad(p, g, *state, t, **hp)
    return [p, *state]


def run_torch(name, p0, grads, dtype, **hp):
    torch = pytest.importorskip("torch")
    p = torch.tensor(np.asarray(p0, dtype=dtype))
    hp = dict(hp)
    if name == "adam":
        cls = torch.optim.AdamW if hp.pop("decoupled", False) else torch.optim.Adam
        kw = dict(lr=hp.get("lr", 1e-3), betas=(hp.get("beta1", 0.9), hp.get("beta2", 0.999)),
                  eps=hp.get("eps", 1e-8), weight_decay=hp.get("weight_decay", 0.0))
        opt, keys = cls([p], **kw), ("exp_avg", "exp_avg_sq")
    elif name == "sgd":
        opt, keys = torch.optim.SGD([p], **hp), ("momentum_buffer",)
    elif name == "rmsprop":
        opt, keys = torch.optim.RMSprop([p], **hp), ("square_avg",)
    else:
        opt, keys = torch.optim.Adagrad([p], **hp), ("sum",)
    for g in grads:
        p.grad = torch.tensor(np.asarray(g, dtype=dtype))
        opt.step()
    state = opt.state[p]
    out = [p.detach().numpy()]
    for k in keys:
        buf = state.get(k)
        out.append(np.zeros(p.shape, dtype) if buf is None else buf.numpy())
    return out


def _assert_close(got, want, dtype):
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"array {k}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,hp", CASES, ids=CASE_IDS)
def test_matches_naive(name, hp, dtype):
    p0, grads = _problem((37, 5))
    _assert_close(run_fastnn(name, p0, grads, dtype, **hp),
                  run_naive(name, p0, grads, dtype, **hp), dtype)


@pytest.mark.parametrize("shape", [(37, 5), (100_003,)], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,hp", CASES, ids=CASE_IDS)
def test_matches_torch(name, hp, dtype, shape):
    p0, grads = _problem(shape, seed=1)
    _assert_close(run_fastnn(name, p0, grads, dtype, **hp),
                  run_torch(name, p0, grads, dtype, **hp), dtype)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (7,), (3, 0, 2), (4, 5, 6), (2, 3, 4, 5),
                                   (32767,), (32768,), (100_000,)])
@pytest.mark.parametrize("name", list(STATE))
def test_shapes(name, shape):
    hp = CONFIGS[name][-1]
    p0, grads = _problem(shape, seed=2, steps=3)
    got = run_fastnn(name, p0, grads, np.float64, **hp)
    for a in got:
        assert a.shape == shape
    _assert_close(got, run_naive(name, p0, grads, np.float64, **hp), np.float64)


@pytest.mark.parametrize("name", list(STATE))
def test_parallel_path_matches_serial_path(name, monkeypatch):
    from fastnn._kernels.cpu import optim as cpu_optim
    hp = CONFIGS[name][-1]
    p0, grads = _problem((50_000,), seed=3, steps=3)
    parallel = run_fastnn(name, p0, grads, np.float32, **hp)
    monkeypatch.setattr(cpu_optim, "PARALLEL_MIN", 10 ** 9)
    serial = run_fastnn(name, p0, grads, np.float32, **hp)
    for a, b in zip(parallel, serial):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(STATE))
def test_thread_count_independent(name):
    numba = pytest.importorskip("numba")
    hp = CONFIGS[name][-1]
    p0, grads = _problem((100_000,), seed=4, steps=3)
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_fastnn(name, p0, grads, np.float32, **hp)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = run_fastnn(name, p0, grads, np.float32, **hp)
    finally:
        numba.set_num_threads(saved)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_and_constants_typed(dtype):
    from fastnn._kernels.cpu import optim as cpu_optim
    for name in STATE:
        for shape in [(9,), (40_000,)]:
            p0, grads = _problem(shape, steps=2)
            for a in run_fastnn(name, p0, grads, dtype, **CONFIGS[name][-1]):
                assert a.dtype == np.dtype(dtype)
    # every compiled kernel takes its float scalars in the dtype of its arrays (no float64
    # arithmetic sneaks into a float32 kernel)
    from numba import types
    from fastnn._kernels.cpu._jit import Loops
    kernels = [k for v in vars(cpu_optim).values() if isinstance(v, Loops) for k in v]
    assert len(kernels) == 10
    assert sum(bool(k.signatures) for k in kernels) >= 5   # the runs above compiled them
    for kernel in kernels:
        for sig in kernel.signatures:
            array_dtypes = {a.dtype for a in sig if isinstance(a, types.Array)}
            float_scalars = {a for a in sig if isinstance(a, types.Float)}
            assert len(array_dtypes) == 1
            assert float_scalars <= array_dtypes, (kernel, sig)


def test_sgd_first_step():
    rng = np.random.default_rng(5)
    p0, g = rng.standard_normal(11), rng.standard_normal(11)
    hp = dict(lr=0.1, momentum=0.9, dampening=0.4)
    want_p, want_buf = ref.sgd(p0, g, np.zeros(11), first_step=True, **hp)
    # automatic: a zero buffer means the first step (grad copied, no dampening)
    p, buf = p0.copy(), np.zeros(11)
    sgd_step(p, g, buf, **hp)
    np.testing.assert_allclose(buf, g, rtol=1e-15)
    np.testing.assert_allclose(p, want_p, rtol=1e-13)
    # explicit first step ignores whatever the buffer held
    p, buf = p0.copy(), np.full(11, np.nan)
    sgd_step(p, g, buf, first_step=True, **hp)
    np.testing.assert_allclose(p, want_p, rtol=1e-13)
    np.testing.assert_allclose(buf, want_buf, rtol=1e-15)
    # explicit later step updates even a zero buffer
    p, buf = p0.copy(), np.zeros(11)
    sgd_step(p, g, buf, first_step=False, **hp)
    np.testing.assert_allclose(buf, 0.6 * g, rtol=1e-15)
    # automatic with a non-zero buffer: a later step
    p, buf = p0.copy(), np.ones(11)
    sgd_step(p, g, buf, **hp)
    want_p, want_buf = ref.sgd(p0, g, np.ones(11), first_step=False, **hp)
    np.testing.assert_allclose(buf, want_buf, rtol=1e-13)
    np.testing.assert_allclose(p, want_p, rtol=1e-13)


def test_sgd_without_momentum_ignores_buffer():
    p, g = np.ones(5, np.float32), np.full(5, 2.0, np.float32)
    buf = np.full(5, 7.0, np.float32)
    sgd_step(p, g, buf, lr=0.25)
    np.testing.assert_array_equal(p, 0.5)
    np.testing.assert_array_equal(buf, 7.0)
    sgd_step(p, g, None, lr=0.25, weight_decay=1.0)
    np.testing.assert_allclose(p, 0.5 - 0.25 * 2.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hp", [{}, {"learning_rate_init": 0.01, "beta_1": 0.8, "beta_2": 0.99,
                                     "epsilon": 1e-4}])
def test_adam_reproduces_scikit_learn_form(hp, dtype):
    """eps = epsilon / sqrt(1 - beta2**t) turns torch's Adam into scikit-learn's."""
    lr, b1 = hp.get("learning_rate_init", 1e-3), hp.get("beta_1", 0.9)
    b2, epsilon = hp.get("beta_2", 0.999), hp.get("epsilon", 1e-8)
    p0, grads = _problem((23, 3), seed=6, steps=8)
    grads = [1e-3 * g for g in grads]  # small gradients: epsilon matters
    p = p0.astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    want = [p0.astype(dtype).astype(np.float64), np.zeros(p.shape), np.zeros(p.shape)]
    for t, g in enumerate(grads, start=1):
        g = g.astype(dtype)
        adam_step(p, g, m, v, t, lr=lr, beta1=b1, beta2=b2, eps=epsilon / np.sqrt(1 - b2 ** t))
        want = list(ref.sklearn_adam(*want[:1], g, *want[1:], t, lr, b1, b2, epsilon))
    _assert_close([p, m, v], want, dtype)
    if epsilon >= 1e-4:  # there the plain epsilon gives a measurably different result
        plain = [want[0] * 0 + p0.astype(dtype), np.zeros(p.shape), np.zeros(p.shape)]
        for t, g in enumerate(grads, start=1):
            plain = list(ref.adam(plain[0], g.astype(dtype), *plain[1:], t, lr, b1, b2, epsilon))
        assert np.max(np.abs(plain[0] - want[0])) > 100 * TOL[dtype]["atol"]


def test_adam_matches_scikit_learn_optimizer():
    try:
        from sklearn.neural_network._stochastic_optimizers import AdamOptimizer
    except ImportError:  # private module moved
        pytest.skip("scikit-learn's AdamOptimizer is not importable")
    p0, grads = _problem((6, 4), seed=7, steps=6)
    sk_param = p0.copy()
    opt = AdamOptimizer([sk_param], learning_rate_init=0.01, epsilon=1e-4)
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        g = 1e-3 * g
        opt.update_params([sk_param], [g])
        adam_step(p, g, m, v, t, lr=0.01, eps=1e-4 / np.sqrt(1 - 0.999 ** t))
    np.testing.assert_allclose(p, sk_param, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m, opt.ms[0], rtol=1e-12, atol=1e-16)


def test_grad_may_be_non_contiguous():
    rng = np.random.default_rng(8)
    p0 = rng.standard_normal((6, 4)).astype(np.float32)
    g_big = rng.standard_normal((6, 8)).astype(np.float32)
    g = g_big[:, ::2]
    assert not g.flags.c_contiguous
    p1, m1, v1 = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    adam_step(p1, g, m1, v1, 1)
    p2, m2, v2 = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    adam_step(p2, np.ascontiguousarray(g), m2, v2, 1)
    np.testing.assert_array_equal(p1, p2)
    ro = np.ascontiguousarray(g)
    ro.flags.writeable = False
    p3, m3, v3 = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    adam_step(p3, ro, m3, v3, 1)
    np.testing.assert_array_equal(p3, p2)


def test_nan_propagates():
    p = np.array([1.0, 2.0, 3.0], np.float32)
    g = np.array([0.5, np.nan, 0.5], np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    adam_step(p, g, m, v, 1)
    assert np.isnan(p[1]) and np.isfinite(p[[0, 2]]).all()


# --- bad arguments ---------------------------------------------------------------------------

def _buffers(n=4, dtype=np.float32):
    return np.ones(n, dtype), np.ones(n, dtype), np.zeros(n, dtype), np.zeros(n, dtype)


def test_in_place_buffers_must_be_writable_and_contiguous():
    p, g, m, v = _buffers()
    ro = p.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param.*read-only"):
        adam_step(ro, g, m, v, 1)
    m_ro = m.copy()
    m_ro.flags.writeable = False
    with pytest.raises(ValueError, match="exp_avg.*read-only"):
        adam_step(p, g, m_ro, v, 1)
    with pytest.raises(ValueError, match="param.*C-contiguous"):
        sgd_step(np.ones(8, np.float32)[::2], g, None, lr=0.1)
    fortran = np.asfortranarray(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="square_avg.*C-contiguous"):
        rmsprop_step(np.ones((3, 4), np.float32), np.ones((3, 4), np.float32), fortran)
    with pytest.raises(TypeError, match="param"):
        adagrad_step([1.0, 2.0], g, v, 1)


def test_mismatched_buffers():
    p, g, m, v = _buffers()
    with pytest.raises(ValueError, match="grad.*shape"):
        adam_step(p, np.ones(5, np.float32), m, v, 1)
    with pytest.raises(ValueError, match="exp_avg_sq.*shape"):
        adam_step(p, g, m, np.zeros((2, 2), np.float32), 1)
    with pytest.raises(TypeError, match="exp_avg.*float32"):
        adam_step(p, g, m.astype(np.float64), v, 1)
    with pytest.raises(TypeError, match="grad.*float32"):
        adam_step(p, g.astype(np.float64), m, v, 1)
    with pytest.raises(TypeError, match="param.*float"):
        sgd_step(np.ones(4, np.int64), g, None, lr=0.1)
    with pytest.raises(ValueError, match="momentum_buf.*share memory"):
        sgd_step(p, g, p, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="exp_avg.*exp_avg_sq.*share memory"):
        adam_step(p, g, m, m, 1)
    with pytest.raises(ValueError, match="momentum_buf"):
        sgd_step(p, g, None, lr=0.1, momentum=0.9)


@pytest.mark.parametrize("call,exc,match", [
    (lambda p, g, m, v: adam_step(p, g, m, v, 0), ValueError, "step"),
    (lambda p, g, m, v: adam_step(p, g, m, v, 1.0), TypeError, "step"),
    (lambda p, g, m, v: adam_step(p, g, m, v, True), TypeError, "step"),
    (lambda p, g, m, v: adam_step(p, g, m, v, 1, lr=-1e-3), ValueError, "lr"),
    (lambda p, g, m, v: adam_step(p, g, m, v, 1, lr=float("nan")), ValueError, "lr"),
    (lambda p, g, m, v: adam_step(p, g, m, v, 1, beta1=1.0), ValueError, "beta1"),
    (lambda p, g, m, v: adam_step(p, g, m, v, 1, beta2=-0.1), ValueError, "beta2"),
    (lambda p, g, m, v: adam_step(p, g, m, v, 1, eps=-1e-8), ValueError, "eps"),
    (lambda p, g, m, v: adam_step(p, g, m, v, 1, weight_decay=-1), ValueError, "weight_decay"),
    (lambda p, g, m, v: adam_step(p, g, m, v, 1, decoupled="yes"), TypeError, "decoupled"),
    (lambda p, g, m, v: sgd_step(p, g, m, lr=-0.1), ValueError, "lr"),
    (lambda p, g, m, v: sgd_step(p, g, m, lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (lambda p, g, m, v: sgd_step(p, g, m, lr=0.1, momentum=0.9, dampening=1.5), ValueError,
     "dampening"),
    (lambda p, g, m, v: sgd_step(p, g, m, lr=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda p, g, m, v: sgd_step(p, g, m, 0.1, momentum=0.9, dampening=0.1, nesterov=True),
     ValueError, "nesterov"),
    (lambda p, g, m, v: sgd_step(p, g, m, 0.1, momentum=0.9, first_step=1), TypeError,
     "first_step"),
    (lambda p, g, m, v: rmsprop_step(p, g, v, alpha=1.5), ValueError, "alpha"),
    (lambda p, g, m, v: rmsprop_step(p, g, v, eps=-1.0), ValueError, "eps"),
    (lambda p, g, m, v: rmsprop_step(p, g, v, lr="0.1"), TypeError, "lr"),
    (lambda p, g, m, v: adagrad_step(p, g, v, -3), ValueError, "step"),
    (lambda p, g, m, v: adagrad_step(p, g, v, 1, lr_decay=-0.1), ValueError, "lr_decay"),
    (lambda p, g, m, v: adagrad_step(p, g, v, 1, weight_decay=-0.1), ValueError, "weight_decay"),
])
def test_bad_hyper_parameters(call, exc, match):
    p, g, m, v = _buffers()
    before = [a.copy() for a in (p, m, v)]
    with pytest.raises(exc, match=match):
        call(p, g, m, v)
    for a, b in zip((p, m, v), before):
        np.testing.assert_array_equal(a, b)  # nothing touched


# --- properties ------------------------------------------------------------------------------

_unit = st.floats(0.0, 0.999)


@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple),
       lr=st.floats(0.0, 1.0), b1=_unit, b2=_unit, eps=st.floats(0.0, 1e-3),
       wd=st.sampled_from([0.0, 0.01, 0.5]), decoupled=st.booleans(), step=st.integers(1, 1000),
       seed=st.integers(0, 2 ** 16))
def test_adam_property(shape, lr, b1, b2, eps, wd, decoupled, step, seed):
    rng = np.random.default_rng(seed)
    p, g = rng.standard_normal(shape), rng.standard_normal(shape)
    m, v = rng.standard_normal(shape), rng.random(shape)
    want = ref.adam(p, g, m, v, step, lr, b1, b2, eps, wd, decoupled)
    adam_step(p, g, m, v, step, lr, b1, b2, eps, wd, decoupled)
    for a, b in zip((p, m, v), want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple),
       lr=st.floats(0.0, 1.0), momentum=st.sampled_from([0.0, 0.5, 0.9]),
       dampening=st.sampled_from([0.0, 0.3]), nesterov=st.booleans(),
       wd=st.sampled_from([0.0, 0.01]), first=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_sgd_property(shape, lr, momentum, dampening, nesterov, wd, first, seed):
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False
    rng = np.random.default_rng(seed)
    p, g, buf = (rng.standard_normal(shape) for _ in range(3))
    want_p, want_buf = ref.sgd(p, g, buf, lr, momentum, dampening, nesterov, wd, first)
    sgd_step(p, g, buf, lr, momentum, dampening, nesterov, wd, first_step=first)
    np.testing.assert_allclose(p, want_p, rtol=1e-12, atol=1e-13)
    if momentum != 0:
        np.testing.assert_allclose(buf, want_buf, rtol=1e-12, atol=1e-13)


@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple),
       lr=st.floats(0.0, 1.0), alpha=st.floats(0.0, 1.0), eps=st.floats(1e-10, 1e-3),
       wd=st.sampled_from([0.0, 0.1]), step=st.integers(1, 50), lr_decay=st.floats(0.0, 0.5),
       seed=st.integers(0, 2 ** 16))
def test_rmsprop_adagrad_property(shape, lr, alpha, eps, wd, step, lr_decay, seed):
    rng = np.random.default_rng(seed)
    p, g, s = rng.standard_normal(shape), rng.standard_normal(shape), rng.random(shape)
    want = ref.rmsprop(p, g, s, lr, alpha, eps, wd)
    p1, s1 = p.copy(), s.copy()
    rmsprop_step(p1, g, s1, lr, alpha, eps, wd)
    for a, b in zip((p1, s1), want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    want = ref.adagrad(p, g, s, step, lr, eps, wd, lr_decay)
    adagrad_step(p, g, s, step, lr, eps, wd, lr_decay)
    for a, b in zip((p, s), want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
