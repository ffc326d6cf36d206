"""Losses against naive NumPy formulas, torch, and scikit-learn's L2 penalty."""
import numpy as np
import pytest

from fastnn.nn import losses
from fastnn.nn.base import FlatBuffer, Parameter


def naive_ce(logits, target, w=None):
    x = logits.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    logp = x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    per = -logp[np.arange(len(x)), target]
    p = np.exp(logp)
    onehot = np.eye(x.shape[1])[target]
    w = np.ones(len(x)) if w is None else np.asarray(w, np.float64)
    return float(w @ per / w.sum()), (p - onehot) * (w / w.sum())[:, None]


def naive_bce(x, t, w=None):
    x, t = x.astype(np.float64), t.astype(np.float64)
    n = x.shape[0]
    elem = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    grad = 1 / (1 + np.exp(-x)) - t
    per_elems = x.size // n
    w = np.ones(n) if w is None else np.asarray(w, np.float64)
    shape = (n,) + (1,) * (x.ndim - 1)
    loss = float(w @ elem.reshape(n, -1).mean(axis=1) / w.sum())
    return loss, grad * (w / w.sum()).reshape(shape) / per_elems


def naive_mse(y, t, w=None):
    y, t = y.astype(np.float64), t.astype(np.float64)
    n = y.shape[0]
    d = y - t
    w = np.ones(n) if w is None else np.asarray(w, np.float64)
    shape = (n,) + (1,) * (y.ndim - 1)
    loss = float(w @ (d * d).reshape(n, -1).mean(axis=1) / w.sum())
    return loss, 2 * d * (w / w.sum()).reshape(shape) / (y.size // n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy(dtype, weighted, rng):
    logits = (rng.standard_normal((9, 4)) * 3).astype(dtype)
    target = rng.integers(0, 4, 9)
    w = rng.random(9) if weighted else None
    loss, grad = losses.get("cross_entropy")(logits, target, w)
    ref_loss, ref_grad = naive_ce(logits, target, w)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert isinstance(loss, float)
    assert loss == pytest.approx(ref_loss, rel=tol * 10)
    assert grad.dtype == dtype and grad.shape == logits.shape
    np.testing.assert_allclose(grad, ref_grad, rtol=tol * 100, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_multilabel(dtype, weighted, rng):
    x = (rng.standard_normal((6, 3)) * 4).astype(dtype)
    t = (rng.random((6, 3)) < 0.5).astype(dtype)
    w = rng.random(6) if weighted else None
    loss, grad = losses.BinaryCrossEntropyLoss()(x, t, w)
    ref_loss, ref_grad = naive_bce(x, t, w)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert loss == pytest.approx(ref_loss, rel=tol * 10)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, ref_grad, rtol=tol * 100, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_mse(dtype, weighted, rng):
    y = rng.standard_normal((7, 2)).astype(dtype)
    t = rng.standard_normal((7, 2))
    w = rng.random(7) if weighted else None
    loss, grad = losses.get("mse")(y, t, w)
    ref_loss, ref_grad = naive_mse(y, t, w)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert loss == pytest.approx(ref_loss, rel=tol * 10)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, ref_grad, rtol=tol * 100, atol=tol)


def test_mse_column_target(rng):
    y = rng.standard_normal((5, 1))
    t = rng.standard_normal(5)
    loss, grad = losses.MSELoss()(y, t)
    ref_loss, ref_grad = naive_mse(y, t[:, None])
    assert loss == pytest.approx(ref_loss)
    np.testing.assert_allclose(grad, ref_grad)


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits = rng.standard_normal((8, 5))
    target = rng.integers(0, 5, 8)
    tl = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(tl, torch.tensor(target))
    ref.backward()
    loss, grad = losses.CrossEntropyLoss()(logits, target)
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, tl.grad.numpy(), rtol=1e-10, atol=1e-14)

    x = rng.standard_normal((4, 3, 2))
    t = rng.random((4, 3, 2))
    tx = torch.tensor(x, requires_grad=True)
    ref = F.binary_cross_entropy_with_logits(tx, torch.tensor(t))
    ref.backward()
    loss, grad = losses.BinaryCrossEntropyLoss()(x, t)
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-14)

    tx = torch.tensor(x, requires_grad=True)
    ref = F.mse_loss(tx, torch.tensor(t))
    ref.backward()
    loss, grad = losses.MSELoss()(x, t)
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_get_and_errors():
    assert isinstance(losses.get("cross_entropy"), losses.CrossEntropyLoss)
    assert isinstance(losses.get("binary_cross_entropy"), losses.BinaryCrossEntropyLoss)
    assert isinstance(losses.get("mse"), losses.MSELoss)
    assert isinstance(losses.get(losses.MSELoss), losses.MSELoss)
    f = lambda out, t, w=None: (0.0, out)  # noqa: E731
    assert losses.get(f) is f
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge")
    ce = losses.CrossEntropyLoss()
    with pytest.raises(ValueError, match="2-D"):
        ce(np.zeros((3, 2, 2)), np.zeros(3, int))
    with pytest.raises(ValueError, match="target"):
        ce(np.zeros((3, 2)), np.zeros(4, int))
    with pytest.raises(ValueError, match="target"):
        ce(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        ce.prepare_target(np.array([0.5, 1.0]), np.float32)
    assert ce.prepare_target(np.array([0.0, 2.0]), np.float32).dtype == np.int64
    with pytest.raises(ValueError, match="shape"):
        losses.MSELoss()(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(TypeError, match="float"):
        losses.MSELoss()(np.zeros((3, 2), int), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="sample_weight"):
        ce(np.zeros((3, 2)), np.zeros(3, int), sample_weight=-np.ones(3))


# --- L2 penalty: scikit-learn's formula -----------------------------------------------------------

def make_flat(dtype, sizes=((5, 4), (4,), (3, 5), (3,)), seed=0):
    rng = np.random.default_rng(seed)
    params = [Parameter(rng.standard_normal(s).astype(dtype), f"p{i}", decay=len(s) > 1)
              for i, s in enumerate(sizes)]
    flat = FlatBuffer.of(params)
    flat.grad[...] = rng.standard_normal(flat.size)
    return params, flat


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_penalty_formula(dtype):
    params, flat = make_flat(dtype)
    grad0 = [p.grad.copy() for p in params]
    alpha, n = 0.3, 17
    term = losses.l2_penalty(flat, alpha, n)
    weights = [p.data.astype(np.float64) for p in params if p.decay]
    ref = 0.5 * alpha * sum(float((w * w).sum()) for w in weights) / n
    assert term == pytest.approx(ref, rel=1e-6 if dtype == np.float32 else 1e-13)
    for p, g0 in zip(params, grad0):
        want = g0 + (alpha * p.data / n if p.decay else 0)
        np.testing.assert_allclose(p.grad, want, rtol=1e-6 if dtype == np.float32 else 1e-14)
        assert p.grad.dtype == dtype
    assert losses.l2_penalty(flat, 0.0, n) == 0.0


def test_l2_penalty_large_buffer_parallel_path():
    rng = np.random.default_rng(1)
    params = [Parameter(rng.standard_normal(50000), "w"), Parameter(rng.standard_normal(10), "b",
                                                                   decay=False)]
    flat = FlatBuffer.of(params)
    term = losses.l2_penalty(flat, 2.0, 4)
    assert term == pytest.approx(0.5 * 2.0 * float(params[0].data @ params[0].data) / 4,
                                 rel=1e-12)
    np.testing.assert_allclose(params[0].grad, 0.5 * params[0].data)
    np.testing.assert_array_equal(params[1].grad, 0)
    with pytest.raises(ValueError, match="alpha"):
        losses.l2_penalty(flat, -1.0, 4)


@pytest.mark.parametrize("weighted", [False, True])
def test_l2_and_cross_entropy_match_sklearn_mlp_backprop(weighted):
    """A fastnn MLP's loss and gradients equal MLPClassifier._backprop (same weights)."""
    from sklearn.neural_network import MLPClassifier
    from fastnn.nn import Sequential
    from fastnn.nn.layers import Dense, ReLU

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 6))
    y = rng.integers(0, 3, 30)
    sw = rng.random(30) + 0.1 if weighted else None
    alpha = 0.7
    clf = MLPClassifier(hidden_layer_sizes=(5,), alpha=alpha, max_iter=1, random_state=0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    Y = np.eye(3)[y]
    activations = [X] + [None] * (clf.n_layers_ - 1)
    deltas = [None] * (len(activations) - 1)
    coef_grads = [np.empty_like(c) for c in clf.coefs_]
    intercept_grads = [np.empty_like(b) for b in clf.intercepts_]
    ref_loss, ref_cg, ref_ig = clf._backprop(X, Y, sw, activations, deltas, coef_grads,
                                             intercept_grads)

    model = Sequential(Dense(5), ReLU(), Dense(3))
    model.build((6,), dtype=np.float64)
    dense = [model[0], model[2]]
    for layer, c, b in zip(dense, clf.coefs_, clf.intercepts_):
        layer.weight.data[...] = c.T
        layer.bias.data[...] = b
    model.zero_grad()
    out = model.forward(X, training=True)
    loss, dout = losses.CrossEntropyLoss()(out, y, sw)
    model.backward(dout)
    loss += losses.l2_penalty(model.flat, alpha, len(X) if sw is None else sw.sum())
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for layer, cg, ig in zip(dense, ref_cg, ref_ig):
        np.testing.assert_allclose(layer.weight.grad, cg.T, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(layer.bias.grad, ig, rtol=1e-10, atol=1e-14)
