"""Parameters, the Layer base class and flat parameter buffers (``Sequential`` is in ``sequential.py``).

A model's parameters live in one flat buffer (and their gradients in a matching one); each
``Parameter`` holds views into them, so one fused optimizer kernel updates the whole model.
Layers build lazily: input sizes are inferred at the first forward.

Devices: ``model.to("cuda")`` moves the flat buffers and the layers' state arrays to the GPU
(``"cpu"`` brings them back; ``"auto"`` picks the GPU when a real one is present). Layers then
take and return CUDA device arrays. Pickling (and ``copy.deepcopy``) always stores host arrays,
so a model trained on a GPU unpickles on a machine without one, on the CPU.
"""
import contextlib
import inspect
import threading

import numpy as np

from .._kernels._dispatch import is_cuda_array, resolve_device
from . import _array


class Parameter:
    """A trainable array ``data`` and its gradient ``grad`` (same shape and dtype).

    ``decay``: whether L2 penalties and weight decay apply (weights yes, biases and norms no).
    """

    __slots__ = ("name", "data", "grad", "decay", "_flat")

    def __init__(self, data, name, decay=True):
        self.name = name
        self.data = data
        self.grad = np.zeros_like(data)
        self.decay = decay
        self._flat = None  # (FlatBuffer, offset) once packed

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def __repr__(self):
        return f"Parameter({self.name}, shape={self.shape}, dtype={np.dtype(self.data.dtype)})"

    def __getstate__(self):
        # Views into a flat buffer are re-linked by the buffer when it is unpickled.
        state = {"name": self.name, "decay": self.decay, "_flat": self._flat}
        if self._flat is None:
            state.update(data=_array.to_host(self.data), grad=_array.to_host(self.grad))
        return state

    def __setstate__(self, state):
        self.name, self.decay, self._flat = state["name"], state["decay"], state["_flat"]
        if "data" in state:
            self.data, self.grad = state["data"], state["grad"]


class FlatBuffer:
    """One contiguous buffer for the values and one for the gradients of a list of parameters.

    ``device`` says where ``data`` and ``grad`` live; ``decay_mask`` (bool, one per element) stays
    on the host, ``device_mask()`` gives it on the buffer's device.
    """

    def __init__(self, params, dtype=None):
        self.params = list(params)
        if not self.params:
            raise ValueError("cannot pack an empty list of parameters")
        dtype = np.dtype(dtype or self.params[0].data.dtype)
        self.sizes = [p.size for p in self.params]
        self.shapes = [p.shape for p in self.params]
        total = int(sum(self.sizes))
        self.data = np.empty(total, dtype=dtype)
        self.grad = np.zeros(total, dtype=dtype)
        self.decay_mask = np.empty(total, dtype=bool)
        self.device = "cpu"
        self._mask_on_device = None
        offset = 0
        for p, n in zip(self.params, self.sizes):
            self.data[offset:offset + n] = _array.to_host(p.data).astype(dtype).reshape(-1)
            self.grad[offset:offset + n] = _array.to_host(p.grad).astype(dtype).reshape(-1)
            self.decay_mask[offset:offset + n] = p.decay
            offset += n
        self._link()

    def _link(self):
        """Point every parameter's ``data``/``grad`` at its slice of the buffers."""
        offset = 0
        for p, n, shape in zip(self.params, self.sizes, self.shapes):
            p.data = self.data[offset:offset + n].reshape(shape)
            p.grad = self.grad[offset:offset + n].reshape(shape)
            p._flat = (self, offset)
            offset += n

    def to(self, device):
        """Move values and gradients to ``device`` ('cpu', 'cuda', 'auto'); views follow."""
        device = resolve_device(device)
        if device != self.device:
            self.data = _array.move(self.data, device)
            self.grad = _array.move(self.grad, device)
            self.device = device
            self._mask_on_device = None
            self._link()
        return self

    def device_mask(self):
        """``decay_mask`` on the buffer's device (cached)."""
        if self.device == "cpu":
            return self.decay_mask
        if self._mask_on_device is None:
            self._mask_on_device = _array.move(self.decay_mask, self.device)
        return self._mask_on_device

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(data=_array.to_host(self.data), grad=_array.to_host(self.grad),
                     device="cpu", _mask_on_device=None)
        return state

    def __setstate__(self, state):
        # The parameters may not be unpickled yet (they refer back to this buffer): only their
        # data/grad slots are set here, which their own state never overwrites.
        self.__dict__.update(state)
        self._link()

    @classmethod
    def of(cls, params):
        """The buffer these parameters already share, in this order, else a new one packing them."""
        params = list(params)
        if params and all(p._flat is not None for p in params):
            buf = params[0]._flat[0]
            if buf.params == params and all(p._flat[0] is buf for p in params):
                return buf
        return cls(params)

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        self.grad.fill(0)


_budget = threading.local()


@contextlib.contextmanager
def parameter_budget(values):
    """Within this block, layers may create at most ``values`` parameter and state values in
    total (``claim_values``); the loader sets it to what a file holds, so a crafted description
    (a 16000x16000 Dense in an 8 KB file) fails before anything is allocated."""
    previous = getattr(_budget, "left", None)
    _budget.left = int(values)
    try:
        yield
    finally:
        _budget.left = previous


def claim_values(layer, count):
    """Called by a layer's ``build`` before it allocates ``count`` parameter and state values."""
    left = getattr(_budget, "left", None)
    if left is None:
        return
    if count > left:
        raise ValueError(f"{type(layer).__name__} would create {count} parameter values, more "
                         f"than the {left} the file holds for it")
    _budget.left = left - count


def model_buffers(model):
    """``model.named_buffers()``: non-trainable state arrays by path, in model order."""
    return model.named_buffers()


def parameter_count(model):
    return int(sum(p.size for p in model.parameters()))


class Layer:
    """Base class: ``forward(x, training=False)``, ``backward(dy) -> dx``, ``parameters()``.

    Subclasses implement ``build(input_shape, rng, dtype)`` (create parameters with
    ``self.add_parameter``; ``input_shape`` excludes the batch axis) when they have any,
    ``_forward(x, training)`` and ``_backward(dy)``. ``backward`` accumulates parameter gradients
    into ``Parameter.grad``. Constructor arguments are stored under their own names (this is what
    ``get_config``, ``clone`` and ``fastnn.save`` rely on).
    """

    supports_cuda = True  # False for layers that only run on the CPU
    device = "cpu"        # where the parameters and state arrays live
    # The dtype kinds a layer takes as input: floats; "iu" for integer codes (Embedding), which
    # ``fit``, ``evaluate`` and ``predict`` then pass as int64 (``nn._data._input_dtype``).
    _input_kinds = "f"

    def __init__(self):
        self.built = False
        self.input_shape = None
        self._params = []
        self._rng = None

    # -- building ---------------------------------------------------------------------------
    def build(self, input_shape, rng=None, dtype=np.float32):
        """Create parameters for per-sample ``input_shape``; layers without parameters keep this."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def add_parameter(self, name, value, decay=True):
        p = Parameter(value, f"{type(self).__name__}.{name}", decay)
        self._params.append(p)
        return p

    def parameters(self):
        return list(self._params)

    def buffers(self):
        """Non-trainable state saved with the model (e.g. BatchNorm running statistics)."""
        return {}

    def children(self):
        """The layers this one is made of (a ``Sequential``'s), in order; none for a plain layer."""
        return []

    def summary_paths(self, x):
        """What this layer is made of, for ``summary``: ``[(label, layers, input)]`` (a
        ``Sequential``: one unnamed chain; a container: its named paths); None for a plain
        layer."""
        return None

    def named_buffers(self):
        """Every non-trainable state array of this layer and its children, by path
        (``"3/running_mean"``), in model order."""
        out = {name: arr for name, arr in self.buffers().items() if arr is not None}
        for i, child in enumerate(self.children()):
            out.update({f"{i}/{name}": arr for name, arr in child.named_buffers().items()})
        return out

    def _init_rng(self):
        if self._rng is None:
            self._rng = np.random.default_rng()
        return self._rng

    # -- devices ----------------------------------------------------------------------------
    def to(self, device):
        """Move parameters, gradients and state arrays to ``device`` ('cpu', 'cuda', 'auto').

        Returns the layer. An unbuilt layer records the device and moves when it builds.
        """
        device = resolve_device(device)
        _check_supports(self, device)
        if self.built:
            params = self.parameters()
            if params:
                FlatBuffer.of(params).to(device)
            self._move_buffers(device)
        self.device = device
        return self

    def _move_buffers(self, device):
        for name, value in self.buffers().items():
            setattr(self, name, _array.move(value, device))
        if hasattr(self, "_cache"):
            self._cache = None

    def _check_device(self, x):
        """Parameters and input must share a device (no silent copies of either)."""
        if self._params:
            _check_same_device(f"{type(self).__name__} has its parameters", self.device, x)

    def __getstate__(self):
        """Host copies of every array (a GPU model unpickles on the CPU); no forward cache."""
        state = self.__dict__.copy()
        if "_cache" in state:
            state["_cache"] = None
        if state.get("device") == "cuda":
            for name in self.buffers():
                state[name] = _array.to_host(state[name])
            state["device"] = "cpu"
        return state

    def _check_input(self, x):
        """Build at the first call; afterwards the per-sample shape must match the built one."""
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = np.asarray(x)
        if not self.built:
            if x.ndim < 1 or np.dtype(x.dtype).kind not in self._input_kinds:
                what = "a float" if "f" in self._input_kinds else "an integer"
                raise TypeError(f"{self!r}: expected {what} array, got dtype {x.dtype}")
            self.build(tuple(x.shape[1:]), self._init_rng(), np.dtype(x.dtype))
            self.built = True
            if self.device == "cuda" or is_cuda_array(x):
                self.to("cuda")
        else:
            self._check_device(x)
        if self.built and not _shape_matches(self.input_shape, tuple(x.shape[1:])):
            raise ValueError(f"{self!r} was built for input of shape "
                             f"{_expected(self.input_shape)}, got {tuple(x.shape)}")
        return x

    # -- running ----------------------------------------------------------------------------
    def forward(self, x, training=False):
        x = self._check_input(x)
        return self._forward(x, training)

    # Layers whose ``_backward(dy, input_grad=False)`` skips computing dx (Dense, convolutions).
    _skips_input_grad = False
    # Layers whose ``_forward(x, training, relu=True)`` applies a following ReLU in their kernel,
    # and the ReLU that can stand aside for it (``_take_fused``).
    _fuses_relu = False
    _takes_fused_relu = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for flag in ("_fuses_relu", "_takes_fused_relu"):
            if "_forward" in vars(cls) and flag not in vars(cls):
                setattr(cls, flag, False)  # a subclass with its own _forward fuses only if it says so

    def backward(self, dy, input_grad=True):
        """Accumulate parameter gradients and return dx; ``input_grad=False`` says the caller
        needs no dx (the input of a network), so a layer that can skip it returns None."""
        if not input_grad and self._skips_input_grad:
            return self._backward(dy, input_grad=False)
        return self._backward(dy)

    def __call__(self, x, training=False):
        return self.forward(x, training)

    def _forward(self, x, training):
        raise NotImplementedError

    def _backward(self, dy):
        raise NotImplementedError

    # -- description ------------------------------------------------------------------------
    def get_config(self):
        """Constructor arguments, read back from the attributes of the same names."""
        sig = inspect.signature(type(self).__init__)
        return {name: getattr(self, name) for name in list(sig.parameters)[1:]
                if sig.parameters[name].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                     inspect.Parameter.VAR_KEYWORD)}

    def clone(self):
        """An unbuilt copy with the same constructor arguments."""
        return type(self)(**self.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _shape_matches(built, got):
    return len(built) == len(got) and all(b is None or b == g for b, g in zip(built, got))


def _expected(input_shape):
    """``(N, 3, *, *)`` for a per-sample input shape with free sizes."""
    return "(N, " + ", ".join("*" if s is None else str(s) for s in input_shape) + ")"


def _check_supports(layer, device):
    if device == "cuda" and not layer.supports_cuda:
        raise ValueError(f"{type(layer).__name__} runs on the CPU only; it cannot move to 'cuda'")


def _check_same_device(owner, device, x):
    """Parameters and input must share a device (no silent copies of either)."""
    if is_cuda_array(x) != (device == "cuda"):
        where = "a CUDA array" if is_cuda_array(x) else "a NumPy array"
        raise ValueError(f"{owner} on '{device}' but the input is {where}; move the model "
                         f"with .to(...), the input with fastnn.nn.to_device(x, '{device}'), "
                         "or use predict()")
