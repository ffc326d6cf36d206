"""Learning-rate schedules against torch.optim.lr_scheduler and scikit-learn's invscaling."""
import math

import numpy as np
import pytest

from fastnn.nn import schedules
from fastnn.nn.base import Parameter
from fastnn.nn.optimizers import SGD, Adam


def make_opt(lr=0.1, cls=SGD):
    return cls([Parameter(np.zeros(3), "w")], lr=lr)


def torch_lrs(factory, epochs, lr=0.1, metrics=None):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=lr)
    sched = factory(torch.optim.lr_scheduler, opt)
    out = [opt.param_groups[0]["lr"]]
    for e in range(epochs):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[e])
        out.append(opt.param_groups[0]["lr"])
    return out


def our_lrs(sched, epochs, metrics=None):
    out = [sched.optimizer.lr]
    for e in range(epochs):
        sched.step(None if metrics is None else metrics[e])
        out.append(sched.optimizer.lr)
    return out


@pytest.mark.parametrize("ours,theirs", [
    (lambda o: schedules.StepDecay(o, step_size=3, gamma=0.5),
     lambda m, o: m.StepLR(o, step_size=3, gamma=0.5)),
    (lambda o: schedules.get("step", o, step_size=1, gamma=0.9),
     lambda m, o: m.StepLR(o, step_size=1, gamma=0.9)),
    (lambda o: schedules.ExponentialDecay(o, gamma=0.8),
     lambda m, o: m.ExponentialLR(o, gamma=0.8)),
    (lambda o: schedules.CosineAnnealing(o, T_max=7, eta_min=0.01),
     lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.01)),
    (lambda o: schedules.get("cosine", o, T_max=5),
     lambda m, o: m.CosineAnnealingLR(o, T_max=5)),
])
def test_matches_torch(ours, theirs):
    epochs = 16
    ref = torch_lrs(theirs, epochs)
    got = our_lrs(ours(make_opt()), epochs)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


METRICS = [1.0, 0.9, 0.95, 0.91, 0.9, 0.9, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9, 0.84, 0.849999,
           0.85, 0.86, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]


@pytest.mark.parametrize("kwargs", [
    dict(factor=0.5, patience=2),
    dict(factor=0.1, patience=0, min_lr=0.002),
    dict(factor=0.5, patience=1, threshold=0.05, threshold_mode="abs", cooldown=2),
    dict(mode="max", factor=0.5, patience=1, threshold=0.01),
])
def test_plateau_matches_torch(kwargs):
    ref = torch_lrs(lambda m, o: m.ReduceLROnPlateau(o, **kwargs), len(METRICS), metrics=METRICS)
    got = our_lrs(schedules.ReduceOnPlateau(make_opt(), **kwargs), len(METRICS), metrics=METRICS)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert min(got) < got[0]  # the case reduces at least once


def test_invscaling_matches_sklearn_formula():
    opt = make_opt(0.1)
    sched = schedules.get("invscaling", opt, power_t=0.5)
    assert opt.lr == 0.1
    lrs = [sched.step() for _ in range(4)]
    np.testing.assert_allclose(lrs, [0.1 / (t + 1) ** 0.5 for t in range(1, 5)])
    # scikit-learn calls iteration_ends(t_) with the number of samples seen
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer
    ref = SGDOptimizer([np.zeros(2)], learning_rate_init=0.1, lr_schedule="invscaling",
                       power_t=0.25)
    sched = schedules.InverseScaling(make_opt(0.1), power_t=0.25)
    for seen in (200, 400, 600):
        ref.iteration_ends(seen)
        assert sched.step(time_step=seen) == pytest.approx(ref.learning_rate, rel=1e-12)


def test_constant_and_binding_later():
    sched = schedules.get("constant")
    with pytest.raises(RuntimeError, match="bind"):
        sched.step()
    opt = make_opt(0.3, cls=Adam)
    sched.bind(opt)
    for _ in range(3):
        assert sched.step() == 0.3
    cos = schedules.CosineAnnealing(T_max=4)
    opt = make_opt(1.0)
    cos.bind(opt)
    cos.step()
    assert opt.lr == pytest.approx(0.5 + 0.5 * math.cos(math.pi / 4))


def test_state_dict_roundtrip():
    opt = make_opt(0.2)
    sched = schedules.ReduceOnPlateau(opt, factor=0.5, patience=1)
    for m in METRICS[:6]:
        sched.step(m)
    state = sched.state_dict()
    opt2 = make_opt(0.2)
    sched2 = schedules.ReduceOnPlateau(opt2, factor=0.5, patience=1).load_state_dict(state)
    assert opt2.lr == opt.lr
    for m in METRICS[6:]:
        assert sched.step(m) == sched2.step(m)
    step = schedules.StepDecay(make_opt(1.0), step_size=2, gamma=0.5)
    for _ in range(5):
        step.step()
    opt3 = make_opt(1.0)
    schedules.StepDecay(opt3, step_size=2, gamma=0.5).load_state_dict(step.state_dict())
    assert opt3.lr == step.optimizer.lr == 0.25


def test_bad_arguments():
    opt = make_opt()
    with pytest.raises(ValueError, match="step_size"):
        schedules.StepDecay(opt, step_size=0)
    with pytest.raises(ValueError, match="factor"):
        schedules.ReduceOnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="mode"):
        schedules.ReduceOnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="metric"):
        schedules.ReduceOnPlateau(opt).step()
    with pytest.raises(ValueError, match="unknown schedule"):
        schedules.get("linear", opt)
    with pytest.raises(TypeError, match="T_max"):
        schedules.CosineAnnealing(opt, T_max=2.5)
