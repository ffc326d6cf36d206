"""Optimizers like ``torch.optim``'s that update a whole model with one fused kernel per step.

An optimizer takes a model (or its ``parameters()``, or a ``FlatBuffer``), packs the parameters
with ``FlatBuffer.of`` (a built ``Sequential`` already shares one buffer, which is reused) and keeps
its state (momentum, moments) in flat arrays of the buffer's size. ``step()`` calls one kernel from
``fastnn.kernels`` over the whole buffer; ``zero_grad()`` clears the gradient buffer; ``lr`` may be
set at any time (schedules do); ``state_dict()`` / ``load_state_dict()`` hold plain arrays and
numbers (for ``fastnn.save`` and warm starts).

Weight decay (``weight_decay=``) applies only to parameters with ``decay=True`` (weights; not
biases or normalisation parameters). ``SGD``, ``Adam``, ``RMSprop`` and ``Adagrad`` add
``weight_decay * W`` to those gradients (torch's coupled L2); ``AdamW`` multiplies those weights by
``1 - lr * weight_decay`` before the Adam update (decoupled, as ``torch.optim.AdamW``). When every
parameter decays the kernel applies the decay itself; otherwise one masked pass applies it first
(the gradient buffer then holds the decayed gradient) and the kernel runs with no decay. Either way
the result equals torch's with the decaying parameters in a group of their own.

State arrays live on the parameters' device and follow the model when it moves (``model.to``);
``state_dict()`` returns host copies, and pickling stores host arrays.
"""
import math

import numpy as np

from .. import kernels
from . import _array
from .base import FlatBuffer, Parameter
from .._kernels._validate import is_int, is_real

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "clip_grad_norm", "get"]

def _flat_of(params):
    """The ``FlatBuffer`` holding these parameters (a model, a list of Parameters, or a buffer)."""
    if isinstance(params, FlatBuffer):
        return params
    if hasattr(params, "parameters") and callable(params.parameters):
        flat = getattr(params, "flat", None)
        if isinstance(flat, FlatBuffer):
            return flat
        params = params.parameters()
    params = list(params)
    if not params:
        raise ValueError("no parameters to optimize: build the model first "
                         "(a forward pass, or model.build(input_shape))")
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"expected fastnn.nn Parameters, got {type(p).__name__}")
    return FlatBuffer.of(params)


def _nonneg(value, name):
    if not is_real(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return value


class Optimizer:
    """Base class: subclasses name their flat state buffers (``_buffers``), define ``_update``."""

    _buffers = ()
    _hyper = ("lr", "weight_decay")

    def __init__(self, params, lr, weight_decay=0.0):
        self.flat = _flat_of(params)
        self.lr = lr
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.t = 0  # steps taken
        self.state = {name: _array.zeros_like(self.flat.data) for name in self._buffers}
        self._state_device = self.flat.device
        mask = self.flat.decay_mask
        self._decay_all = bool(mask.all())
        self._decay_none = not bool(mask.any())

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _nonneg(value, "lr")

    @property
    def params(self):
        return self.flat.params

    def zero_grad(self):
        self.flat.zero_grad()

    def step(self):
        """Update every parameter from its gradient (one fused kernel over the flat buffer)."""
        self._follow_parameters()
        self.t += 1
        self._update()

    def _follow_parameters(self):
        """Move the state arrays to the parameters' device if the model moved."""
        if self._state_device != self.flat.device:
            self.state = {k: _array.move(v, self.flat.device) for k, v in self.state.items()}
            self._state_device = self.flat.device

    def __getstate__(self):
        state = self.__dict__.copy()
        state["state"] = {k: _array.to_host(v) for k, v in self.state.items()}
        state["_state_device"] = "cpu"
        return state

    def _update(self):
        raise NotImplementedError

    def _coupled_decay(self):
        """The weight decay to hand the kernel, after applying it here when it must skip params."""
        wd = self.weight_decay
        if wd == 0 or self._decay_none:
            return 0.0
        if self._decay_all:
            return wd
        _array.masked_axpy(self.flat.grad, self.flat.data, self.flat.device_mask(), wd)
        return 0.0

    # -- state ----------------------------------------------------------------------------
    def get_config(self):
        return {name: getattr(self, name) for name in self._hyper}

    def state_dict(self):
        """Plain numbers and copies of the flat state arrays.

        Keys: ``type`` (class name), ``step``, the hyperparameters and the state buffers.
        """
        out = {"type": type(self).__name__, "step": int(self.t)}
        for k, v in self.get_config().items():
            out[k] = list(v) if isinstance(v, tuple) else v
        for name, buf in self.state.items():
            out[name] = _array.to_host(buf).copy()
        return out

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned (for the same parameter layout)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if state.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"state is for {state.get('type')!r}, not {type(self).__name__}")
        arrays = {}
        for name in self._buffers:
            if name not in state:
                raise ValueError(f"state has no {name!r} buffer")
            a = np.asarray(state[name])
            if a.shape != self.flat.data.shape or a.dtype.kind != "f":
                raise ValueError(f"state[{name!r}] must be a float array of shape "
                                 f"{self.flat.data.shape}, got {a.dtype} {a.shape}")
            arrays[name] = a
        step = state.get("step", 0)
        if not is_int(step) or step < 0:
            raise ValueError(f"state['step'] must be an int >= 0, got {step!r}")
        config = {}
        for name in self._hyper:
            if name in state:
                v = state[name]
                config[name] = tuple(v) if isinstance(v, (list, tuple)) else v
        for name, value in config.items():
            setattr(self, name, value)
        self._check_hyper()
        self._follow_parameters()
        for name, a in arrays.items():
            _array.assign(self.state[name], a.astype(self.flat.data.dtype, copy=False))
        self.t = int(step)
        return self

    def snapshot(self, into=None):
        """The step count, the hyperparameters and copies of the state buffers on their device
        (reusing ``into``'s arrays): what ``restore`` puts back. Unlike ``state_dict`` nothing
        is read back from a GPU; ``fit`` takes one each epoch to undo a diverged epoch."""
        self._follow_parameters()
        if into is None:
            buffers = {k: _array.copy(v) for k, v in self.state.items()}
        else:
            buffers = into[2]
            for k, v in self.state.items():
                _array.assign(buffers[k], v)
        return int(self.t), self.get_config(), buffers

    def restore(self, snapshot):
        """Return to a ``snapshot`` of this optimizer."""
        t, config, buffers = snapshot
        for name, value in config.items():
            setattr(self, name, value)
        for k, v in buffers.items():
            _array.assign(self.state[k], v)
        self.t = t
        return self

    def _check_hyper(self):
        self.weight_decay = _nonneg(self.weight_decay, "weight_decay")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """``torch.optim.SGD``: momentum, dampening, Nesterov, coupled weight decay (decay params)."""

    _hyper = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        self.momentum = _nonneg(momentum, "momentum")
        self._buffers = ("momentum_buf",) if self.momentum != 0 else ()
        self.dampening = dampening
        self.nesterov = bool(nesterov)
        super().__init__(params, lr, weight_decay)
        self._check_hyper()

    def _check_hyper(self):
        super()._check_hyper()
        self.dampening = _nonneg(self.dampening, "dampening")
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening == 0")

    def _update(self):
        wd = self._coupled_decay()
        f = self.flat
        kernels.sgd_step(f.data, f.grad, self.state.get("momentum_buf"), self.lr,
                         momentum=self.momentum, dampening=self.dampening, nesterov=self.nesterov,
                         weight_decay=wd,
                         first_step=(self.t == 1) if self.momentum != 0 else None)


class Adam(Optimizer):
    """``torch.optim.Adam`` (coupled weight decay on decay params).

    ``sklearn_epsilon=True`` adds ``eps`` to the root of the uncorrected second moment, as
    scikit-learn's Adam does (the kernel gets ``eps / sqrt(1 - beta2**t)``).
    """

    _buffers = ("exp_avg", "exp_avg_sq")
    _hyper = ("lr", "betas", "eps", "weight_decay", "sklearn_epsilon")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 sklearn_epsilon=False):
        self.betas = betas
        self.eps = eps
        self.sklearn_epsilon = bool(sklearn_epsilon)
        super().__init__(params, lr, weight_decay)
        self._check_hyper()

    def _check_hyper(self):
        super()._check_hyper()
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = betas
        self.eps = _nonneg(self.eps, "eps")

    def _update(self):
        f = self.flat
        b1, b2 = self.betas
        if self._decoupled:
            wd = self.weight_decay
            if wd != 0 and not self._decay_all and not self._decay_none:
                _array.masked_scale(f.data, f.device_mask(), 1.0 - self.lr * wd)
                wd = 0.0
            elif self._decay_none:
                wd = 0.0
        else:
            wd = self._coupled_decay()
        kernels.adam_step(f.data, f.grad, self.state["exp_avg"], self.state["exp_avg_sq"], self.t,
                          lr=self.lr, beta1=b1, beta2=b2, eps=self.eps, weight_decay=wd,
                          decoupled=self._decoupled, sklearn_epsilon=self.sklearn_epsilon)


class AdamW(Adam):
    """``torch.optim.AdamW``: decoupled decay ``W *= 1 - lr * weight_decay`` (decay params)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 sklearn_epsilon=False):
        super().__init__(params, lr, betas, eps, weight_decay, sklearn_epsilon)


class RMSprop(Optimizer):
    """``torch.optim.RMSprop`` (no momentum, not centered; coupled weight decay on decay params)."""

    _buffers = ("square_avg",)
    _hyper = ("lr", "alpha", "eps", "weight_decay")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        self.alpha = alpha
        self.eps = eps
        super().__init__(params, lr, weight_decay)
        self._check_hyper()

    def _check_hyper(self):
        super()._check_hyper()
        self.alpha = _nonneg(self.alpha, "alpha")
        if self.alpha > 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")
        self.eps = _nonneg(self.eps, "eps")

    def _update(self):
        wd = self._coupled_decay()
        f = self.flat
        kernels.rmsprop_step(f.data, f.grad, self.state["square_avg"], lr=self.lr,
                             alpha=self.alpha, eps=self.eps, weight_decay=wd)


class Adagrad(Optimizer):
    """``torch.optim.Adagrad`` (coupled weight decay on decay params)."""

    _buffers = ("state_sum",)
    _hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        self.lr_decay = lr_decay
        self.initial_accumulator_value = initial_accumulator_value
        self.eps = eps
        super().__init__(params, lr, weight_decay)
        self._check_hyper()
        _array.fill(self.state["state_sum"], self.initial_accumulator_value)

    def _check_hyper(self):
        super()._check_hyper()
        self.lr_decay = _nonneg(self.lr_decay, "lr_decay")
        self.initial_accumulator_value = _nonneg(self.initial_accumulator_value,
                                                 "initial_accumulator_value")
        self.eps = _nonneg(self.eps, "eps")

    def _update(self):
        wd = self._coupled_decay()
        f = self.flat
        kernels.adagrad_step(f.data, f.grad, self.state["state_sum"], self.t, lr=self.lr,
                             eps=self.eps, weight_decay=wd, lr_decay=self.lr_decay)


def _grads(params_or_flat):
    """The gradient arrays to clip: the flat gradient buffer when there is one, else each grad."""
    if isinstance(params_or_flat, FlatBuffer):
        return [params_or_flat.grad]
    if hasattr(params_or_flat, "parameters") and callable(params_or_flat.parameters):
        flat = getattr(params_or_flat, "flat", None)
        if isinstance(flat, FlatBuffer):
            return [flat.grad]
        params_or_flat = params_or_flat.parameters()
    params = list(params_or_flat)
    if params and all(p._flat is not None for p in params):
        buf = params[0]._flat[0]
        if buf.params == params:
            return [buf.grad]
    return [p.grad for p in params]


def clip_grad_norm(params_or_flat, max_norm, eps=1e-6):
    """Scale gradients so their global L2 norm is at most ``max_norm``; return the norm before.

    As ``torch.nn.utils.clip_grad_norm_``: every gradient is multiplied by
    ``min(1, max_norm / (norm + eps))``. Accepts a model, a list of Parameters or a FlatBuffer.
    """
    max_norm = _nonneg(max_norm, "max_norm")
    grads = _grads(params_or_flat)
    norm = math.sqrt(sum(_array.sum_squares(g) for g in grads))
    coef = max_norm / (norm + eps)
    if coef < 1.0:
        for g in grads:
            _array.scale(g, coef)
    return norm


_OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(name, params, **kwargs):
    """An optimizer from its name ("sgd", "adam", "adamw", "rmsprop", "adagrad") over ``params``."""
    if isinstance(name, str):
        try:
            cls = _OPTIMIZERS[name.lower()]
        except KeyError:
            raise ValueError(f"unknown optimizer {name!r}; expected one of "
                             f"{sorted(_OPTIMIZERS)} or an Optimizer") from None
        return cls(params, **kwargs)
    if isinstance(name, type) and issubclass(name, Optimizer):
        return name(params, **kwargs)
    raise TypeError(f"optimizer must be a name or an Optimizer class, got {name!r}")
