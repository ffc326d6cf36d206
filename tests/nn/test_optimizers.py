"""Optimizers over a flat parameter buffer, against torch.optim and against themselves."""
import numpy as np
import pytest

from fastnn.nn.base import FlatBuffer, Parameter
from fastnn.nn import optimizers as optim

SHAPES = [((7, 5), True), ((7,), False), ((3, 2, 3, 3), True), ((3,), False)]


def make_params(dtype=np.float64, seed=0, decay=None):
    rng = np.random.default_rng(seed)
    params = []
    for i, (shape, d) in enumerate(SHAPES):
        params.append(Parameter(rng.standard_normal(shape).astype(dtype), f"p{i}",
                                decay=d if decay is None else decay))
    return params


def grads_sequence(steps, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s, _ in SHAPES] for _ in range(steps)]


def run_fastnn(cls, kwargs, dtype=np.float64, steps=6, decay=None, lr_changes=None):
    params = make_params(dtype, decay=decay)
    flat = FlatBuffer.of(params)
    opt = cls(params, **kwargs)
    assert opt.flat is flat
    for k, gs in enumerate(grads_sequence(steps, dtype=dtype)):
        opt.zero_grad()
        for p, g in zip(params, gs):
            p.grad[...] += g
        if lr_changes and k in lr_changes:
            opt.lr = lr_changes[k]
        opt.step()
    return [p.data.copy() for p in params], opt


def run_torch(name, kwargs, steps=6, decay=None, lr_changes=None):
    torch = pytest.importorskip("torch")
    params = make_params(np.float64, decay=decay)
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    wd = kwargs.pop("weight_decay", 1e-2 if name == "AdamW" else 0.0)  # torch defaults
    groups = [{"params": [t for t, p in zip(tparams, params) if p.decay], "weight_decay": wd},
              {"params": [t for t, p in zip(tparams, params) if not p.decay], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    opt = getattr(torch.optim, name)(groups, **kwargs)
    for k, gs in enumerate(grads_sequence(steps)):
        for t, g in zip(tparams, gs):
            t.grad = torch.tensor(g)
        if lr_changes and k in lr_changes:
            for group in opt.param_groups:
                group["lr"] = lr_changes[k]
        opt.step()
    return [t.detach().numpy() for t in tparams]


CASES = [
    ("SGD", optim.SGD, dict(lr=0.1)),
    ("SGD", optim.SGD, dict(lr=0.1, momentum=0.9)),
    ("SGD", optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("SGD", optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", optim.SGD, dict(lr=0.05, momentum=0.7, dampening=0.5, weight_decay=0.01)),
    ("Adam", optim.Adam, dict(lr=0.01)),
    ("Adam", optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", optim.AdamW, dict(lr=0.01)),
    ("AdamW", optim.AdamW, dict(lr=0.02, betas=(0.85, 0.95), weight_decay=0.3)),
    ("RMSprop", optim.RMSprop, dict(lr=0.01)),
    ("RMSprop", optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.2)),
    ("Adagrad", optim.Adagrad, dict(lr=0.1)),
    ("Adagrad", optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1,
                                    initial_accumulator_value=0.1, eps=1e-8)),
]


@pytest.mark.parametrize("decay", [None, True])
@pytest.mark.parametrize("name,cls,kwargs", CASES)
def test_matches_torch_float64(name, cls, kwargs, decay):
    ours, _ = run_fastnn(cls, dict(kwargs), decay=decay, lr_changes={3: kwargs["lr"] / 2})
    ref = run_torch(name, dict(kwargs), decay=decay, lr_changes={3: kwargs["lr"] / 2})
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name,cls,kwargs", CASES[::2])
def test_matches_torch_float32(name, cls, kwargs):
    ours, opt = run_fastnn(cls, dict(kwargs), dtype=np.float32)
    ref = run_torch(name, dict(kwargs))
    for a, b in zip(ours, ref):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    for buf in opt.state.values():
        assert buf.dtype == np.float32 and buf.shape == opt.flat.data.shape


def naive_masked_reference(cls, kwargs, steps=6):
    """Adam with decay on masked params only, written out with NumPy."""
    params = make_params(np.float64)
    m = [np.zeros_like(p.data) for p in params]
    v = [np.zeros_like(p.data) for p in params]
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    lr, eps, wd = kwargs["lr"], kwargs.get("eps", 1e-8), kwargs.get("weight_decay", 0.0)
    for t, gs in enumerate(grads_sequence(steps), start=1):
        for i, (p, g) in enumerate(zip(params, gs)):
            w = p.data
            if cls is optim.AdamW and p.decay:
                w *= 1 - lr * wd
            elif cls is optim.Adam and p.decay:
                g = g + wd * w
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            w -= lr / (1 - b1 ** t) * m[i] / (np.sqrt(v[i]) / np.sqrt(1 - b2 ** t) + eps)
    return [p.data for p in params]


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_decay_only_on_decay_params(cls):
    kwargs = dict(lr=0.01, weight_decay=0.5)
    ours, _ = run_fastnn(cls, dict(kwargs))
    ref = naive_masked_reference(cls, kwargs)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_sklearn_epsilon_matches_sklearn_adam():
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer
    params = make_params(np.float64)
    ref_params = [p.data.copy() for p in params]
    ref = AdamOptimizer(ref_params, learning_rate_init=0.01, epsilon=1e-3)
    opt = optim.Adam(params, lr=0.01, eps=1e-3, sklearn_epsilon=True)
    for gs in grads_sequence(5):
        ref.update_params(ref_params, gs)
        opt.zero_grad()
        for p, g in zip(params, gs):
            p.grad[...] = g
        opt.step()
    for p, r in zip(params, ref_params):
        np.testing.assert_allclose(p.data, r, rtol=1e-12, atol=1e-13)


def _steps(opt, params, gs_list):
    """One optimizer step per list of gradients."""
    for gs in gs_list:
        opt.zero_grad()
        for p, g in zip(params, gs):
            p.grad[...] = g
        opt.step()


@pytest.mark.parametrize("cls,kwargs", [(c, k) for _, c, k in CASES[1::2]])
def test_state_dict_resumes_exactly(cls, kwargs):
    straight, _ = run_fastnn(cls, dict(kwargs), steps=6)
    params = make_params(np.float64)
    opt = cls(params, **kwargs)
    gs_all = grads_sequence(6)
    _steps(opt, params, gs_all[:3])
    state = opt.state_dict()
    assert state["step"] == 3 and state["type"] == cls.__name__
    # a fresh model with the same weights and a fresh optimizer given the saved state
    params2 = make_params(np.float64)
    for p, q in zip(params2, params):
        q_data = q.data.copy()
        p.data[...] = q_data
    opt2 = cls(params2, **kwargs).load_state_dict(state)
    _steps(opt2, params2, gs_all[3:])
    for a, b in zip(straight, params2):
        np.testing.assert_array_equal(a, b.data)


@pytest.mark.parametrize("cls,kwargs", [(c, k) for _, c, k in CASES[1::2]])
def test_snapshot_restore_returns_to_the_same_trajectory(cls, kwargs):
    straight, _ = run_fastnn(cls, dict(kwargs), steps=6)
    params = make_params(np.float64)
    opt = cls(params, **kwargs)
    gs_all = grads_sequence(6)
    _steps(opt, params, gs_all[:3])
    saved = [p.data.copy() for p in params]
    snap = opt.snapshot()
    lr = opt.lr
    opt.lr = lr * 10
    _steps(opt, params, gs_all[3:])  # a detour, then back
    for p, d in zip(params, saved):
        p.data[...] = d
    opt.restore(snap)
    assert opt.t == 3 and opt.lr == lr
    assert opt.snapshot(snap) is not None  # reuses the snapshot's arrays
    _steps(opt, params, gs_all[3:])
    for a, b in zip(straight, params):
        np.testing.assert_array_equal(a, b.data)


def test_load_state_dict_rejects_mismatch():
    params = make_params()
    opt = optim.Adam(params)
    state = opt.state_dict()
    with pytest.raises(ValueError, match="SGD"):
        optim.SGD(make_params(), momentum=0.9).load_state_dict(state)
    bad = dict(state, exp_avg=np.zeros(3))
    with pytest.raises(ValueError, match="exp_avg"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="step"):
        opt.load_state_dict(dict(state, step=-1))


def test_accepts_model_params_and_flat():
    params = make_params()
    flat = FlatBuffer.of(params)
    for source in (params, flat):
        assert optim.SGD(source, lr=0.1).flat is flat
    with pytest.raises(ValueError, match="build the model"):
        optim.Adam([])
    with pytest.raises(TypeError):
        optim.Adam([np.zeros(3)])


def test_bad_hyperparameters():
    params = make_params()
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(params, lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.get("lbfgs", params)
    opt = optim.get("adamw", params, lr=0.5)
    assert isinstance(opt, optim.AdamW) and opt.lr == 0.5 and opt.weight_decay == 1e-2
    with pytest.raises(ValueError, match="lr"):
        opt.lr = float("nan")


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = pytest.importorskip("torch")
    params = make_params()
    flat = FlatBuffer.of(params)
    gs = grads_sequence(1)[0]
    for p, g in zip(params, gs):
        p.grad[...] = g
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    for t, g in zip(tparams, gs):
        t.grad = torch.tensor(g)
    ref_norm = float(torch.nn.utils.clip_grad_norm_(tparams, max_norm))
    norm = optim.clip_grad_norm(flat, max_norm)
    assert norm == pytest.approx(ref_norm, rel=1e-12)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_on_unpacked_params_float32():
    rng = np.random.default_rng(3)
    params = [Parameter(np.zeros(s, np.float32), "p") for s in [(4, 3), (5,)]]
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape)
    before = np.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in params))
    norm = optim.clip_grad_norm(params, 1.0)
    assert norm == pytest.approx(before, rel=1e-6)
    after = np.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in params))
    assert after == pytest.approx(1.0, rel=1e-5)
    assert all(p.grad.dtype == np.float32 for p in params)


def test_large_buffer_masked_paths_match_small():
    """The parallel masked pass (large buffers) equals a direct NumPy computation."""
    rng = np.random.default_rng(0)
    n = 70000
    params = [Parameter(rng.standard_normal(n).astype(np.float32), "w", decay=True),
              Parameter(rng.standard_normal(100).astype(np.float32), "b", decay=False)]
    flat = FlatBuffer.of(params)
    w0, b0 = params[0].data.copy(), params[1].data.copy()
    opt = optim.AdamW(params, lr=0.1, weight_decay=0.5)
    opt.step()  # zero gradients: only the decay moves the weights
    np.testing.assert_allclose(params[0].data, w0 * np.float32(1 - 0.05), rtol=1e-6)
    np.testing.assert_array_equal(params[1].data, b0)
    flat.grad[...] = 0
    sgd = optim.SGD(params, lr=1.0, weight_decay=0.5)
    sgd.step()
    np.testing.assert_allclose(params[0].data, w0 * np.float32(0.95) * np.float32(0.5), rtol=1e-5)
    np.testing.assert_array_equal(params[1].data, b0)
