"""Learning-rate schedules: objects whose ``step(metric=None)`` sets ``optimizer.lr`` per epoch.

A schedule remembers the optimizer's learning rate when it is bound (``base_lr``) and counts
``step()`` calls (``epoch``). The formulas are those of ``torch.optim.lr_scheduler`` (``StepLR``,
``ExponentialLR``, ``CosineAnnealingLR``, ``ReduceLROnPlateau``) and scikit-learn's
``invscaling``. A schedule may be created without an optimizer and bound later (``fit`` does this)::

    opt = Adam(model.parameters(), lr=1e-2)
    sched = CosineAnnealing(opt, T_max=20)
    for epoch in range(20):
        ...train one epoch...
        sched.step()
"""
import math
import numbers

__all__ = ["Schedule", "Constant", "StepDecay", "ExponentialDecay", "InverseScaling",
           "CosineAnnealing", "ReduceOnPlateau", "StepLR", "ExponentialLR", "CosineAnnealingLR",
           "ReduceLROnPlateau", "get"]


def _number(value, name, low=None, high=None, low_open=False, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{name} must be {'an int' if integer else 'a real number'}, got {value!r}")
    value = int(value) if integer else float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value


class Schedule:
    """Base class: ``lr_at(epoch)`` gives the rate after ``epoch`` steps (closed form)."""

    needs_metric = False

    def __init__(self, optimizer=None):
        self.optimizer = None
        self.base_lr = None
        self.epoch = 0
        if optimizer is not None:
            self.bind(optimizer)

    def bind(self, optimizer):
        """Attach to ``optimizer`` (anything with a settable ``lr``) and set the epoch-0 rate."""
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.epoch = 0
        optimizer.lr = self.lr_at(0)
        return self

    def _require_bound(self):
        if self.optimizer is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to an optimizer; "
                               "pass one to the constructor or call bind(optimizer)")

    def step(self, metric=None):
        """Advance one epoch and set the optimizer's learning rate; returns it."""
        self._require_bound()
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr

    @property
    def lr(self):
        self._require_bound()
        return self.optimizer.lr

    def lr_at(self, epoch):
        raise NotImplementedError

    def get_config(self):
        return {}

    def state_dict(self):
        return {"type": type(self).__name__, "epoch": self.epoch, "base_lr": self.base_lr,
                **self.get_config()}

    def load_state_dict(self, state):
        self.epoch = int(state["epoch"])
        self.base_lr = float(state["base_lr"])
        if self.optimizer is not None:
            self.optimizer.lr = self.lr_at(self.epoch)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The learning rate never changes."""

    def lr_at(self, epoch):
        return self.base_lr


class StepDecay(Schedule):
    """``lr = base_lr * gamma ** (epoch // step_size)`` (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer=None, step_size=10, gamma=0.1):
        self.step_size = _number(step_size, "step_size", 1, integer=True)
        self.gamma = _number(gamma, "gamma", 0, low_open=True)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def get_config(self):
        return {"step_size": self.step_size, "gamma": self.gamma}


class ExponentialDecay(Schedule):
    """``lr = base_lr * gamma ** epoch`` (``torch.optim.lr_scheduler.ExponentialLR``)."""

    def __init__(self, optimizer=None, gamma=0.95):
        self.gamma = _number(gamma, "gamma", 0, low_open=True)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** epoch

    def get_config(self):
        return {"gamma": self.gamma}


class InverseScaling(Schedule):
    """scikit-learn's ``invscaling``: ``lr = base_lr / t ** power_t`` with ``t = time_step + 1``.

    ``step()`` counts epochs (``time_step`` = number of steps so far); ``step(time_step=n)`` uses
    ``n`` instead, e.g. the number of samples seen, as scikit-learn's MLP does.
    """

    def __init__(self, optimizer=None, power_t=0.5):
        self.power_t = _number(power_t, "power_t", 0)
        super().__init__(optimizer)

    def step(self, metric=None, time_step=None):
        self._require_bound()
        if time_step is None:
            self.epoch += 1
        else:
            self.epoch = _number(time_step, "time_step", 0, integer=True)
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr

    def lr_at(self, epoch):
        return self.base_lr / (epoch + 1) ** self.power_t

    def get_config(self):
        return {"power_t": self.power_t}


class CosineAnnealing(Schedule):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    ``torch.optim.lr_scheduler.CosineAnnealingLR`` in closed form (past ``T_max`` the cosine
    continues, rising again, as torch's does).
    """

    def __init__(self, optimizer=None, T_max=10, eta_min=0.0):
        self.T_max = _number(T_max, "T_max", 1, integer=True)
        self.eta_min = _number(eta_min, "eta_min", 0)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        cos = math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + cos) / 2

    def get_config(self):
        return {"T_max": self.T_max, "eta_min": self.eta_min}


class ReduceOnPlateau(Schedule):
    """Multiply the rate by ``factor`` when the monitored value stops improving.

    ``torch.optim.lr_scheduler.ReduceLROnPlateau``: after more than ``patience`` epochs without an
    improvement larger than ``threshold`` (relative by default) the rate becomes
    ``max(lr * factor, min_lr)``; ``cooldown`` epochs follow in which no reduction happens.
    ``step(metric)`` must be given the monitored value; ``monitor`` names it for ``fit``
    (default: "val_loss" when there is validation data, else "loss").
    """

    needs_metric = True

    def __init__(self, optimizer=None, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8, monitor=None):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode = mode
        self.factor = _number(factor, "factor", 0, low_open=True)
        if self.factor >= 1:
            raise ValueError(f"factor must be < 1, got {factor!r}")
        self.patience = _number(patience, "patience", 0, integer=True)
        self.threshold = _number(threshold, "threshold", 0)
        self.threshold_mode = threshold_mode
        self.cooldown = _number(cooldown, "cooldown", 0, integer=True)
        self.min_lr = _number(min_lr, "min_lr", 0)
        self.eps = _number(eps, "eps", 0)
        self.monitor = monitor
        self._reset()
        super().__init__(optimizer)

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def bind(self, optimizer):
        self._reset()
        return super().bind(optimizer)

    def lr_at(self, epoch):
        return self.base_lr if self.optimizer is None else self.optimizer.lr

    def _is_better(self, a):
        if self.mode == "min":
            limit = self.best * (1 - self.threshold) if self.threshold_mode == "rel" \
                else self.best - self.threshold
            return a < limit
        limit = self.best * (1 + self.threshold) if self.threshold_mode == "rel" \
            else self.best + self.threshold
        return a > limit

    def step(self, metric=None):
        self._require_bound()
        if metric is None:
            raise ValueError("ReduceOnPlateau.step needs the monitored value: step(metric)")
        current = float(metric)
        self.epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.optimizer.lr

    def get_config(self):
        return {"mode": self.mode, "factor": self.factor, "patience": self.patience,
                "threshold": self.threshold, "threshold_mode": self.threshold_mode,
                "cooldown": self.cooldown, "min_lr": self.min_lr, "eps": self.eps,
                "monitor": self.monitor}

    def state_dict(self):
        return {**super().state_dict(), "best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter,
                "lr": None if self.optimizer is None else self.optimizer.lr}

    def load_state_dict(self, state):
        self.epoch = int(state["epoch"])
        self.base_lr = float(state["base_lr"])
        self.best = float(state["best"])
        self.num_bad_epochs = int(state["num_bad_epochs"])
        self.cooldown_counter = int(state["cooldown_counter"])
        if self.optimizer is not None and state.get("lr") is not None:
            self.optimizer.lr = float(state["lr"])
        return self


# torch-style names
StepLR = StepDecay
ExponentialLR = ExponentialDecay
CosineAnnealingLR = CosineAnnealing
ReduceLROnPlateau = ReduceOnPlateau

_SCHEDULES = {
    "constant": Constant, "step": StepDecay, "exponential": ExponentialDecay,
    "invscaling": InverseScaling, "inverse_scaling": InverseScaling, "cosine": CosineAnnealing,
    "plateau": ReduceOnPlateau, "reduce_on_plateau": ReduceOnPlateau,
}


def get(name, optimizer=None, **kwargs):
    """A schedule from its name: "constant", "step" (step_size, gamma), "exponential" (gamma),
    "invscaling" (power_t), "cosine" (T_max, eta_min), "plateau" / "reduce_on_plateau"
    (factor, patience, threshold, min_lr, ...). A Schedule object is returned as is."""
    if isinstance(name, Schedule):
        if kwargs:
            raise TypeError("keyword arguments only apply when a schedule is given by name")
        return name if optimizer is None or name.optimizer is optimizer else name.bind(optimizer)
    if isinstance(name, str):
        try:
            cls = _SCHEDULES[name.lower()]
        except KeyError:
            raise ValueError(f"unknown schedule {name!r}; expected one of {sorted(_SCHEDULES)}") \
                from None
        return cls(optimizer, **kwargs)
    if isinstance(name, type) and issubclass(name, Schedule):
        return name(optimizer, **kwargs)
    raise TypeError(f"schedule must be a name or a Schedule, got {name!r}")
