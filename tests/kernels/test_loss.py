"""Fused loss kernels (cross-entropy, elementwise losses) against naive references, PyTorch and
numerical gradients."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn.kernels as K
from tests.gradients import numerical_gradient
from tests.naive import loss as ref

TOL = {np.float32: dict(rtol=2e-5, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-15)}
SERIAL_BELOW = 1 << 15


def _ce_data(rng, n, c, dtype, scale=3.0):
    return ((rng.standard_normal((n, c)) * scale).astype(dtype), rng.integers(0, c, n),
            rng.uniform(0.1, 2.0, n).astype(dtype))


def _elementwise_data(name, rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    if name == "binary_cross_entropy_with_logits":
        t = rng.uniform(0, 1, shape).astype(dtype)
    else:
        t = rng.standard_normal(shape).astype(dtype)
    return x, t, rng.uniform(0.1, 2.0, shape[0]).astype(dtype)


ELEMENTWISE = ("binary_cross_entropy_with_logits", "mse_loss")


def _assert_loss(got, want, dtype):
    loss, grad = got
    assert isinstance(loss, np.generic) and np.dtype(type(loss)) == dtype, type(loss)
    assert grad.dtype == dtype
    np.testing.assert_allclose(float(loss), want[0], **TOL[dtype])
    np.testing.assert_allclose(grad, want[1], **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_naive(weighted, dtype, rng):
    x, t, w = _ce_data(rng, 9, 5, dtype)
    w = w if weighted else None
    _assert_loss(K.softmax_cross_entropy(x, t, w), ref.softmax_cross_entropy(x, t, w), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(7,), (6, 4), (3, 2, 4)])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_losses_match_naive(name, shape, weighted, dtype, rng):
    x, t, w = _elementwise_data(name, rng, shape, dtype)
    w = w if weighted else None
    got = getattr(K, name)(x, t, w)
    assert got[1].shape == shape
    _assert_loss(got, getattr(ref, name)(x, t, w), dtype)


@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_numerical_gradient(weighted, rng):
    x, t, w = _ce_data(rng, 6, 4, np.float64)
    w = w if weighted else None
    _, grad = K.softmax_cross_entropy(x, t, w)
    num = numerical_gradient(lambda v: K.softmax_cross_entropy(v, t, w)[0], x)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_numerical_gradient(name, weighted, rng):
    x, t, w = _elementwise_data(name, rng, (5, 3), np.float64)
    w = w if weighted else None
    f = getattr(K, name)
    _, grad = f(x, t, w)
    num = numerical_gradient(lambda v: f(v, t, w)[0], x)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_match_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    x, t, _ = _ce_data(rng, 32, 10, dtype)
    y_bce = rng.uniform(0, 1, x.shape).astype(dtype)
    y_mse = rng.standard_normal(x.shape).astype(dtype)
    cases = [(K.softmax_cross_entropy, lambda a: F.cross_entropy(a, torch.tensor(t)), t),
             (K.binary_cross_entropy_with_logits,
              lambda a: F.binary_cross_entropy_with_logits(a, torch.tensor(y_bce)), y_bce),
             (K.mse_loss, lambda a: F.mse_loss(a, torch.tensor(y_mse)), y_mse)]
    for ours, theirs, target in cases:
        tx = torch.tensor(x, requires_grad=True)
        tl = theirs(tx)
        (tg,) = torch.autograd.grad(tl, tx)
        loss, grad = ours(x, target)
        np.testing.assert_allclose(loss, tl.item(), **tol)
        np.testing.assert_allclose(grad, tg.numpy(), **tol)


def test_cross_entropy_weights_match_torch_class_weights(rng):
    """Per-sample weights w[target] equal torch's class weights: sum(w_i l_i) / sum(w_i)."""
    torch = pytest.importorskip("torch")
    x, t, _ = _ce_data(rng, 20, 4, np.float64)
    cw = rng.uniform(0.2, 3.0, 4)
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(t), weight=torch.tensor(cw))
    (tg,) = torch.autograd.grad(tl, tx)
    loss, grad = K.softmax_cross_entropy(x, t, cw[t])
    np.testing.assert_allclose(loss, tl.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, tg.numpy(), rtol=1e-12, atol=1e-15)


def test_sample_weights_are_relative(rng):
    x, t, w = _ce_data(rng, 8, 3, np.float64)
    a = K.softmax_cross_entropy(x, t, w)
    b = K.softmax_cross_entropy(x, t, 10 * w)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-13)
    ones = K.mse_loss(x, x[::-1], np.ones(8))
    plain = K.mse_loss(x, x[::-1])
    np.testing.assert_allclose(ones[0], plain[0], rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_for_huge_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    t = np.array([1, 2, 0])
    with np.errstate(all="raise"):
        loss, grad = K.softmax_cross_entropy(x, t)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, (2e4 + np.log(3) + np.log(2)) / 3, rtol=1e-6)
    np.testing.assert_allclose(grad, ref.softmax_cross_entropy(x, t)[1], rtol=1e-6, atol=1e-7)

    z = np.array([[-1e4, 1e4], [200.0, -200.0]], dtype=dtype)
    y = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=dtype)
    with np.errstate(all="raise"):
        loss, grad = K.binary_cross_entropy_with_logits(z, y)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, (1e4 + 1e4) / 4, rtol=1e-6)
    np.testing.assert_allclose(grad, [[-0.25, 0.25], [0.0, 0.0]], atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_path_matches_serial(dtype, rng):
    """A batch above SERIAL_BELOW elements runs rows in parallel; halves of it run serially."""
    n = SERIAL_BELOW // 4 + 10
    x, t, w = _ce_data(rng, n, 8, dtype)
    y_bce = rng.uniform(0, 1, x.shape).astype(dtype)
    for f, target in ((K.softmax_cross_entropy, t), (K.binary_cross_entropy_with_logits, y_bce),
                      (K.mse_loss, y_bce)):
        loss, grad = f(x, target, w)
        h = n // 2
        (l1, g1), (l2, g2) = f(x[:h], target[:h], w[:h]), f(x[h:], target[h:], w[h:])
        w1, w2 = w[:h].sum(dtype=np.float64), w[h:].sum(dtype=np.float64)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(loss, (l1 * w1 + l2 * w2) / (w1 + w2), rtol=rtol)
        # float32: softmax - one-hot cancels, so compare relative to the largest entry too
        np.testing.assert_allclose(grad, np.concatenate([g1 * w1, g2 * w2]) / (w1 + w2), rtol=rtol,
                                   atol=rtol * np.abs(grad).max())


def test_float32_loss_is_computed_in_float32(rng):
    x, t, _ = _ce_data(rng, 4, 3, np.float32)
    loss, _ = K.softmax_cross_entropy(x, t)
    assert type(loss) is np.float32
    assert type(K.mse_loss(x, x)[0]) is np.float32
    assert type(K.binary_cross_entropy_with_logits(x, np.ones_like(x))[0]) is np.float32
    assert type(K.mse_loss(x.astype(np.float64), x)[0]) is np.float64


def test_targets_are_cast_to_the_input_dtype(rng):
    x = rng.standard_normal((4, 2)).astype(np.float32)
    loss, grad = K.binary_cross_entropy_with_logits(x, np.array([[1, 0]] * 4))
    assert grad.dtype == np.float32
    np.testing.assert_allclose(loss, ref.binary_cross_entropy_with_logits(x, [[1, 0]] * 4)[0],
                               rtol=1e-6)


@given(st.integers(1, 6), st.integers(1, 6), st.booleans(), st.data())
def test_cross_entropy_property(n, c, weighted, data):
    rng = np.random.default_rng(n * 10 + c)
    x, t, w = _ce_data(rng, n, c, np.float64, scale=data.draw(st.sampled_from([0.1, 3.0, 50.0])))
    w = w if weighted else None
    loss, grad = K.softmax_cross_entropy(x, t, w)
    rl, rg = ref.softmax_cross_entropy(x, t, w)
    np.testing.assert_allclose(loss, rl, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, rg, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-12)  # softmax minus one-hot


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.sampled_from(ELEMENTWISE),
       st.booleans())
def test_elementwise_property(shape, name, weighted):
    rng = np.random.default_rng(len(shape) * 5 + shape[0])
    x, t, w = _elementwise_data(name, rng, tuple(shape), np.float64)
    w = w if weighted else None
    loss, grad = getattr(K, name)(x, t, w)
    rl, rg = getattr(ref, name)(x, t, w)
    np.testing.assert_allclose(loss, rl, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, rg, rtol=1e-12, atol=1e-15)


def test_bad_arguments():
    x = np.zeros((3, 4), np.float32)
    t = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="target"):
        K.softmax_cross_entropy(x, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="target"):
        K.softmax_cross_entropy(x, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="target"):
        K.softmax_cross_entropy(x, np.array([0, 1]))
    with pytest.raises(TypeError, match="target"):
        K.softmax_cross_entropy(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="logits"):
        K.softmax_cross_entropy(np.zeros(4, np.float32), t)
    with pytest.raises(ValueError, match="logits"):
        K.softmax_cross_entropy(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="sample_weight"):
        K.softmax_cross_entropy(x, t, np.ones(2, np.float32))
    with pytest.raises(ValueError, match="sample_weight"):
        K.softmax_cross_entropy(x, t, np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="sample_weight"):
        K.mse_loss(x, x, np.zeros(3))
    with pytest.raises(ValueError, match="target"):
        K.binary_cross_entropy_with_logits(x, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="target"):
        K.mse_loss(x, np.zeros(12, np.float32))
    with pytest.raises(TypeError, match="pred"):
        K.mse_loss(x.astype(np.int32), x)
    with pytest.raises(ValueError, match="pred"):
        K.mse_loss(np.float32(1.0), np.float32(1.0))


def test_losses_add_to_a_running_total_on_the_cpu():
    from fastnn import kernels
    from fastnn._kernels import arrayops
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 6)
    total = np.array([0.5])
    for name, target in [("softmax_cross_entropy", labels),
                         ("binary_cross_entropy_with_logits", (logits > 0).astype(np.float32)),
                         ("mse_loss", logits[::-1].copy())]:
        fn = getattr(kernels, name)
        ref, ref_grad = fn(logits, target)
        start = total[0]
        loss, grad = fn(logits, target, total=total, factor=3.0)
        assert loss is None
        np.testing.assert_array_equal(grad, ref_grad)
        np.testing.assert_allclose(total[0], start + 3.0 * float(ref), rtol=1e-12)
    count = arrayops.count_argmax_correct(logits, labels)
    assert arrayops.count_argmax_correct(logits, labels, total=total) is None
    np.testing.assert_allclose(total[0], start + 3.0 * float(ref) + count, rtol=1e-12)
    for bad in (np.zeros(2), np.zeros(1, np.float32), [0.0], np.zeros((1, 1))):
        with pytest.raises(ValueError, match=r"total must be a NumPy float64 array of shape \(1,\)"):
            kernels.mse_loss(logits, logits, total=bad)
    with pytest.raises(ValueError, match="class indices"):  # host labels: always checked
        kernels.softmax_cross_entropy(logits, labels + 5, total=total, check_target=False)
