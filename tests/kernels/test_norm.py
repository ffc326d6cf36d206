"""Batch-normalisation kernels against the naive reference, PyTorch's running statistics and
numerical gradients."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn.kernels as K
from tests.gradients import check_backward
from tests.naive import norm as ref

SHAPES = [(6, 4), (5, 3, 7), (4, 3, 5, 5)]
TOL = {np.float32: dict(rtol=1e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _params(rng, c, dtype):
    gamma = rng.uniform(0.5, 2.0, c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    running_mean = rng.standard_normal(c).astype(dtype)
    running_var = rng.uniform(0.5, 2.0, c).astype(dtype)
    return gamma, beta, running_mean, running_var


def _x(rng, shape, dtype, offset=3.0):
    return (rng.standard_normal(shape) * 2 + offset).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_matches_naive(shape, training, dtype, rng):
    x = _x(rng, shape, dtype)
    gamma, beta, rm, rv = _params(rng, shape[1], dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    want_y, want_rm, want_rv = ref.batch_norm(x, gamma, beta, rm, rv, training, 0.1, 1e-5)
    want_dx, want_dg, want_db = ref.batch_norm_backward(dy, x, gamma, rm, rv, training, 1e-5)
    y, cache = K.batch_norm(x, gamma, beta, rm, rv, training=training, momentum=0.1, eps=1e-5)
    dx, dg, db = K.batch_norm_backward(dy, cache)
    for a in (y, dx, dg, db, rm, rv):
        assert a.dtype == dtype
    assert y.shape == dx.shape == shape and dg.shape == db.shape == (shape[1],)
    np.testing.assert_allclose(y, want_y, **TOL[dtype])
    np.testing.assert_allclose(rm, want_rm, **TOL[dtype])
    np.testing.assert_allclose(rv, want_rv, **TOL[dtype])
    np.testing.assert_allclose(dx, want_dx, **TOL[dtype])
    np.testing.assert_allclose(dg, want_dg, **TOL[dtype])
    np.testing.assert_allclose(db, want_db, **TOL[dtype])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 2, 3)])
def test_batch_norm_numerical_gradient(shape, training, rng):
    x = _x(rng, shape, np.float64)
    gamma, beta, rm, rv = _params(rng, shape[1], np.float64)

    def forward(x_, g_, b_):
        # copies: in training the running statistics would drift between evaluations
        return K.batch_norm(x_, g_, b_, rm.copy(), rv.copy(), training=training)[0]

    def backward(dy, x_, g_, b_):
        _, cache = K.batch_norm(x_, g_, b_, rm.copy(), rv.copy(), training=training)
        return K.batch_norm_backward(dy, cache)

    check_backward(forward, backward, [x, gamma, beta], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("training", [True, False])
def test_without_affine_parameters(training, rng):
    x = _x(rng, (8, 3, 4), np.float64)
    _, _, rm, rv = _params(rng, 3, np.float64)
    dy = rng.standard_normal(x.shape)
    y, cache = K.batch_norm(x, None, None, rm.copy(), rv.copy(), training=training)
    dx, dg, db = K.batch_norm_backward(dy, cache)
    assert dg is None and db is None
    np.testing.assert_allclose(y, ref.batch_norm(x, None, None, rm, rv, training)[0], rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(dx, ref.batch_norm_backward(dy, x, None, rm, rv, training)[0],
                               rtol=1e-12, atol=1e-12)
    gamma = np.ones(3)
    _, cache = K.batch_norm(x, gamma, None, rm.copy(), rv.copy(), training=training)
    dx2, dg2, db2 = K.batch_norm_backward(dy, cache)
    assert dg2 is not None and db2 is None
    np.testing.assert_allclose(dx2, dx, rtol=1e-13, atol=1e-14)


def test_training_without_running_stats(rng):
    x = _x(rng, (10, 4), np.float32)
    y, _ = K.batch_norm(x, None, None, None, None, training=True)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(y.var(axis=0), 1, rtol=1e-4)


def test_running_stats_follow_torch_over_steps(rng):
    torch = pytest.importorskip("torch")
    bn = torch.nn.BatchNorm2d(3, momentum=0.3, eps=1e-3, dtype=torch.float32)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(rng.uniform(0.5, 2, 3)))
        bn.bias.copy_(torch.tensor(rng.standard_normal(3)))
    gamma = bn.weight.detach().numpy().copy()
    beta = bn.bias.detach().numpy().copy()
    rm = np.zeros(3, np.float32)
    rv = np.ones(3, np.float32)
    for step in range(4):
        x = _x(rng, (4, 3, 5, 6), np.float32, offset=step)
        tx = torch.tensor(x, requires_grad=True)
        bn.train()
        ty = bn(tx)
        y, cache = K.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=0.3, eps=1e-3)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        tdx, tdg, tdb = torch.autograd.grad(ty, (tx, bn.weight, bn.bias), torch.tensor(dy))
        dx, dg, db = K.batch_norm_backward(dy, cache)
        np.testing.assert_allclose(dx, tdx.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dg, tdg.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(db, tdb.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rm, bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
    bn.eval()
    x = _x(rng, (4, 3, 5, 6), np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = bn(tx)
    y, cache = K.batch_norm(x, gamma, beta, rm, rv, training=False, momentum=0.3, eps=1e-3)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    (tdx,) = torch.autograd.grad(ty, (tx,), torch.tensor(dy))
    np.testing.assert_allclose(K.batch_norm_backward(dy, cache)[0], tdx.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(2000, 40), (20, 16, 12, 12), (2, 3, 9000)])
def test_parallel_path_matches_naive(shape, rng):
    x = _x(rng, shape, np.float64)
    gamma, beta, rm, rv = _params(rng, shape[1], np.float64)
    dy = rng.standard_normal(shape)
    want_y, want_rm, want_rv = ref.batch_norm(x, gamma, beta, rm, rv, True)
    want = ref.batch_norm_backward(dy, x, gamma, rm, rv, True)
    y, cache = K.batch_norm(x, gamma, beta, rm, rv, training=True)
    np.testing.assert_allclose(y, want_y, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(rv, want_rv, rtol=1e-12)
    for got, w in zip(K.batch_norm_backward(dy, cache), want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-10)


def test_variance_is_stable_for_a_large_offset(rng):
    """float32 data with mean 1e4 and std 1: no catastrophic cancellation in the variance."""
    x = (rng.standard_normal((4000, 3)) + 1e4).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y, _ = K.batch_norm(x, None, None, rm, rv, momentum=1.0)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(rv, exact.var(axis=0, ddof=1), rtol=1e-6)
    np.testing.assert_allclose(rm, exact.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(y.std(axis=0, dtype=np.float64), 1.0, rtol=1e-4)


@given(st.integers(2, 5), st.integers(1, 4), st.lists(st.integers(1, 4), max_size=2),
       st.booleans(), st.booleans())
def test_shapes_property(n, c, spatial, training, affine):
    rng = np.random.default_rng(n * 100 + c * 10 + len(spatial))
    shape = (n, c) + tuple(spatial)
    x = _x(rng, shape, np.float64)
    gamma, beta, rm, rv = _params(rng, c, np.float64)
    gamma, beta = (gamma, beta) if affine else (None, None)
    dy = rng.standard_normal(shape)
    want_y, want_rm, want_rv = ref.batch_norm(x, gamma, beta, rm, rv, training)
    want = ref.batch_norm_backward(dy, x, gamma, rm, rv, training)
    y, cache = K.batch_norm(x, gamma, beta, rm, rv, training=training)
    np.testing.assert_allclose(y, want_y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(rm, want_rm, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rv, want_rv, rtol=1e-12, atol=1e-12)
    dx, dg, db = K.batch_norm_backward(dy, cache)
    np.testing.assert_allclose(dx, want[0], rtol=1e-9, atol=1e-9)
    if affine:
        np.testing.assert_allclose(dg, want[1], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(db, want[2], rtol=1e-10, atol=1e-10)


def test_bad_arguments(rng):
    x = _x(rng, (4, 3), np.float32)
    gamma, beta, rm, rv = _params(rng, 3, np.float32)
    with pytest.raises(ValueError, match="x must be at least 2-D"):
        K.batch_norm(np.ones(4, np.float32), gamma, beta, rm, rv)
    with pytest.raises(ValueError, match="gamma"):
        K.batch_norm(x, np.ones(4, np.float32), beta, rm, rv)
    with pytest.raises(TypeError, match="beta"):
        K.batch_norm(x, gamma, beta.astype(np.float64), rm, rv)
    with pytest.raises(ValueError, match="running_mean"):
        K.batch_norm(x, gamma, beta, np.zeros(2, np.float32), rv)
    frozen = rv.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="running_var"):
        K.batch_norm(x, gamma, beta, rm, frozen, training=True)
    K.batch_norm(x, gamma, beta, rm, frozen, training=False)  # read-only is fine in eval mode
    with pytest.raises(TypeError, match="running_mean"):
        K.batch_norm(x, gamma, beta, list(rm), rv, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        K.batch_norm(x, gamma, beta, None, None, training=False)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        K.batch_norm(x, gamma, beta, rm, None)
    with pytest.raises(ValueError, match="momentum"):
        K.batch_norm(x, gamma, beta, rm, rv, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        K.batch_norm(x, gamma, beta, rm, rv, eps=0.0)
    with pytest.raises(TypeError, match="training"):
        K.batch_norm(x, gamma, beta, rm, rv, training="yes")
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        K.batch_norm(x[:1], gamma, beta, rm, rv, training=True)
    _, cache = K.batch_norm(x, gamma, beta, rm, rv)
    with pytest.raises(ValueError, match="dy must have shape"):
        K.batch_norm_backward(np.ones((3, 3), np.float32), cache)
    with pytest.raises(TypeError, match="dy must have dtype"):
        K.batch_norm_backward(np.ones((4, 3)), cache)
    with pytest.raises(TypeError, match="cache"):
        K.batch_norm_backward(np.ones((4, 3), np.float32), (x, None))
