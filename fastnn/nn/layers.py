"""Layers: dense, convolution, pooling, reshaping, dropout, batch normalisation and activations.

Every layer computes through ``fastnn.kernels`` (resolved lazily, so importing this module compiles
nothing) and touches activations only with ``.reshape`` and ``fastnn.nn._array`` helpers: the same
code runs on NumPy arrays and CUDA device arrays.

Building: a layer learns its input size at the first forward (parameters take the input's dtype).
``in_features=`` / ``in_channels=`` build at construction instead, in float32, with weights drawn
from the layer's generator ``numpy.random.default_rng(seed)`` (``seed=None``: fresh entropy; an int
makes the weights reproducible). Inside a ``Sequential`` that has not built yet, lazily built layers
draw from the model's generator instead (``Sequential(seed=...)``). After building, an input of
another per-sample shape raises ``ValueError`` naming the layer and the expected shape; ``None``
in ``input_shape`` (printed ``*``) marks a free size, such as the spatial sizes of a convolution.

Randomness at run time (dropout masks, stochastic pooling) uses one seed per call drawn from the
layer's generator ``layer._rng``; replacing it with a freshly seeded generator before each forward
repeats the draws (``fastnn.testing.gradcheck`` does this).
"""
import math
import numbers

import numpy as np

from .. import kernels as K
from .._kernels import conv as _conv_ops
from .._kernels import pool as _pool_ops
from .._kernels._validate import check_scalar, conv_padding, int_tuple, is_int, size_tuple
from . import init as _init
from . import _array
from ._array import accumulate
from .base import Layer, claim_values

__all__ = ["Dense", "Conv1D", "Conv2D", "Conv2DTranspose",
           "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "StochasticPool2D",
           "GlobalAvgPool2D", "GlobalAvgPool1D", "GlobalMaxPool1D", "GlobalMaxPool2D",
           "Flatten", "Reshape", "Dropout", "BatchNorm", "LayerNorm", "Embedding",
           "ReLU", "LeakyReLU", "PReLU", "ELU", "Sigmoid", "Tanh", "GELU", "Softmax"]


# -- argument checks (run at construction; messages name the layer and the argument) ----------
def _positive_int(value, name, owner, minimum=1):
    if not is_int(value):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def _ints(value, name, owner, n, minimum):
    return int_tuple(value, f"{owner}: {name}", n, minimum)


def _bool(value, name, owner):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def _seed(value, owner):
    if value is not None and (not is_int(value)
                              or value < 0):
        raise TypeError(f"{owner}: seed must be None or a non-negative int, got {value!r}")


def _layout(nd):
    return {0: "(N, C)", 1: "(N, C, L)", 2: "(N, C, H, W)"}[nd]


def _need_rank(layer, input_shape, ranks, layout):
    """``input_shape`` (without N) must have one of ``ranks`` dimensions."""
    if len(input_shape) not in ranks:
        raise ValueError(f"{type(layer).__name__} expects input of shape {layout}, got a "
                         f"per-sample shape {tuple(input_shape)} ({len(input_shape) + 1}-D input)")


def _free(rank):
    return (None,) * rank


class _Stateless(Layer):
    """A layer without parameters that accepts any size along each axis of a fixed rank."""

    _ranks = None      # allowed per-sample ranks (None: any)
    _layout = "(N, ...)"

    def __init__(self):
        super().__init__()
        self._cache = None

    def build(self, input_shape, rng=None, dtype=np.float32):
        input_shape = tuple(input_shape)
        if self._ranks is not None:
            _need_rank(self, input_shape, self._ranks, self._layout)
        self.input_shape = _free(len(input_shape))
        self.built = True

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache


class _Weighted(Layer):
    """A layer with parameters: a seeded generator of its own and a dtype check on input."""

    def __init__(self, seed=None):
        super().__init__()
        _seed(seed, type(self).__name__)
        self.seed = seed
        self._cache = None

    def _init_rng(self):
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    def _start_build(self, rng, dtype):
        self._params = []
        return (self._init_rng() if rng is None else rng), _init.float_dtype(dtype)

    def _check_dtype(self, x):
        want = np.dtype(self._params[0].data.dtype) if self._params else None
        if want is not None and np.dtype(x.dtype) != want:
            raise TypeError(f"{type(self).__name__} has {want} parameters; got {np.dtype(x.dtype)} "
                            f"input (feed {want}, or use a new layer built on this dtype)")

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache


def _initializer(value, owner):
    if value is not None:
        try:
            _init.get(value)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{owner}: kernel_initializer: {err}") from None
    return value


# -- dense ------------------------------------------------------------------------------------
class Dense(_Weighted):
    """Fully connected layer ``y = x @ weight.T + bias`` on the last axis (``F.linear``).

    ``weight`` (units, in_features), ``bias`` (units,). Input (N, in_features), or
    (N, ..., in_features) with the leading axes kept. Weights default to He-uniform
    (``init.he_uniform``: suits the ReLU family; pass ``kernel_initializer="glorot_uniform"``
    before tanh or sigmoid); biases start at zero and take no weight decay. ``in_features``
    builds at construction (see the module docstring).
    """

    def __init__(self, units, use_bias=True, kernel_initializer=None, in_features=None, seed=None):
        super().__init__(seed)
        self.units = _positive_int(units, "units", "Dense")
        self.use_bias = _bool(use_bias, "use_bias", "Dense")
        self.kernel_initializer = _initializer(kernel_initializer, "Dense")
        self.in_features = (None if in_features is None
                            else _positive_int(in_features, "in_features", "Dense"))
        self.weight = self.bias = None
        if in_features is not None:
            self.build((self.in_features,))

    def build(self, input_shape, rng=None, dtype=np.float32):
        input_shape = tuple(input_shape)
        _need_rank(self, input_shape, range(1, 64), "(N, in_features) or (N, ..., in_features)")
        rng, dtype = self._start_build(rng, dtype)
        fan_in = int(input_shape[-1])
        if fan_in < 1:
            raise ValueError(f"Dense needs at least one input feature, got input shape "
                             f"(N, {', '.join(map(str, input_shape))})")
        claim_values(self, self.units * fan_in + (self.units if self.use_bias else 0))
        make = _init.get(self.kernel_initializer or "he_uniform")
        self.weight = self.add_parameter(
            "weight", make((self.units, fan_in), rng, dtype, fan_in=fan_in, fan_out=self.units))
        self.bias = (self.add_parameter("bias", np.zeros(self.units, dtype), decay=False)
                     if self.use_bias else None)
        self.input_shape = _free(len(input_shape) - 1) + (fan_in,)
        self.built = True

    _fuses_relu = True

    def _forward(self, x, training, relu=False):
        self._check_dtype(x)
        lead = tuple(x.shape[:-1])
        x2 = x if x.ndim == 2 else x.reshape(math.prod(lead), x.shape[-1])
        y = K.linear(x2, self.weight.data, None if self.bias is None else self.bias.data,
                     activation="relu" if relu else None)
        self._cache = (x2, lead)
        return y if x.ndim == 2 else y.reshape(lead + (self.units,))

    _skips_input_grad = True

    def _backward(self, dy, input_grad=True):
        x2, lead = self._cached()
        if len(lead) != 1:
            dy = dy.reshape(x2.shape[0], self.units)
        dx, dw, db = K.linear_backward(dy, x2, self.weight.data, input_grad=input_grad)
        accumulate(self.weight.grad, dw)
        if self.bias is not None:
            accumulate(self.bias.grad, db)
        if dx is None or len(lead) == 1:
            return dx
        return dx.reshape(lead + (x2.shape[1],))


# -- convolutions -----------------------------------------------------------------------------
class _Conv(_Weighted):
    _nd = 2
    _transposed = False

    def _setup(self, filters, kernel_size, stride, padding, dilation, groups, use_bias,
               kernel_initializer, in_channels, output_padding=0):
        name, nd = type(self).__name__, self._nd
        self.filters = _positive_int(filters, "filters", name)
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = _positive_int(groups, "groups", name)
        self.use_bias = _bool(use_bias, "use_bias", name)
        self.kernel_initializer = _initializer(kernel_initializer, name)
        self.in_channels = (None if in_channels is None
                            else _positive_int(in_channels, "in_channels", name))
        self._k = _ints(kernel_size, "kernel_size", name, nd, 1)
        self._stride = _ints(stride, "stride", name, nd, 1)
        self._dilation = _ints(dilation, "dilation", name, nd, 1)
        if type(padding) is str and not self._transposed:
            # a mode ("valid", "same", "causal"): checked here, resolved by the kernels
            conv_padding(padding, self._k, self._stride, self._dilation, f"{name}: padding")
            self._padding = padding
        else:
            self._padding = _ints(padding, "padding", name, nd, 0)
        self._output_padding = _ints(output_padding, "output_padding", name, nd, 0)
        if self.filters % self.groups:
            raise ValueError(f"{name}: groups={self.groups} must divide filters={self.filters}")
        self.weight = self.bias = None
        if self.in_channels is not None:
            self.build((self.in_channels,) + _free(nd))

    def build(self, input_shape, rng=None, dtype=np.float32):
        input_shape = tuple(input_shape)
        name = type(self).__name__
        _need_rank(self, input_shape, (self._nd + 1,), _layout(self._nd))
        rng, dtype = self._start_build(rng, dtype)
        c_in = int(input_shape[0])
        if c_in < 1 or c_in % self.groups:
            raise ValueError(f"{name}: groups={self.groups} must divide the {c_in} input channels")
        area = int(np.prod(self._k))
        g = self.groups
        if self._transposed:
            shape = (c_in, self.filters // g) + self._k
        else:
            shape = (self.filters, c_in // g) + self._k
        claim_values(self, math.prod(shape) + (self.filters if self.use_bias else 0))
        make = _init.get(self.kernel_initializer or "he_uniform")
        w = make(shape, rng, dtype, fan_in=c_in // g * area, fan_out=self.filters // g * area)
        self.weight = self.add_parameter("weight", w)
        self.bias = (self.add_parameter("bias", np.zeros(self.filters, dtype), decay=False)
                     if self.use_bias else None)
        self.input_shape = (c_in,) + _free(self._nd)
        self.built = True

    def _geometry(self):
        return dict(stride=self._stride, padding=self._padding, dilation=self._dilation,
                    groups=self.groups)

    _fuses_relu = True

    def _forward(self, x, training, relu=False):
        self._check_dtype(x)
        b = None if self.bias is None else self.bias.data
        geo = self._geometry()
        if relu:
            geo["activation"] = "relu"
        y = self._op(x, self.weight.data, b, **geo)
        self._cache = x
        return y

    def _backward(self, dy, input_grad=True):
        x = self._cached()
        geo = self._geometry()
        if not input_grad:
            geo["input_grad"] = False
        dx, dw, db = self._op_backward(dy, x, self.weight.data, **geo)
        accumulate(self.weight.grad, dw)
        if self.bias is not None:
            accumulate(self.bias.grad, db)
        return dx


class _ConvND(_Conv):
    """Conv1D and Conv2D: one layer, told apart by class attributes (the number of spatial
    axes and the kernels)."""
    _skips_input_grad = True

    def __init__(self, filters, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 use_bias=True, kernel_initializer=None, in_channels=None, seed=None):
        super().__init__(seed)
        self._setup(filters, kernel_size, stride, padding, dilation, groups, use_bias,
                    kernel_initializer, in_channels)


class Conv1D(_ConvND):
    """1-D convolution (``F.conv1d``) on (N, C, L): ``weight`` (filters, C/groups, k).

    Weights default to He-uniform with ``fan_in = C/groups * k`` (ReLU family; pass
    ``kernel_initializer="glorot_uniform"`` before tanh or sigmoid); biases start at zero. Any
    length is accepted once built; ``in_channels`` builds at construction.

    ``padding``: an int (zeros on both sides), ``"valid"`` (none), ``"same"`` (PyTorch's: stride
    1, the output keeps the input's length) or ``"causal"`` (Keras' ``Conv1D(padding="causal")``:
    ``dilation * (kernel_size - 1)`` zeros before the sequence only, so the output has length
    ``(L - 1) // stride + 1`` and output t depends on inputs up to ``t * stride``). With
    ``dilation=d`` the kernel taps inputs d apart (Keras' ``dilation_rate``), as ``F.conv1d``.
    """
    _nd = 1
    _op = staticmethod(_conv_ops.conv1d)
    _op_backward = staticmethod(_conv_ops.conv1d_backward)


class Conv2D(_ConvND):
    """2-D convolution (``F.conv2d``) on (N, C, H, W): ``weight`` (filters, C/groups, kh, kw).

    Weights default to He-uniform with ``fan_in = C/groups * kh * kw`` (ReLU family; pass
    ``kernel_initializer="glorot_uniform"`` before tanh or sigmoid); biases start at zero. Any
    height and width are accepted once built; ``in_channels`` builds at construction.
    ``padding``: an int, a pair, ``"valid"`` or ``"same"`` (PyTorch's, stride 1).
    """
    _nd = 2
    _op = staticmethod(_conv_ops.conv2d)
    _op_backward = staticmethod(_conv_ops.conv2d_backward)


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution (``F.conv_transpose2d``): ``weight`` (C, filters/groups, kh, kw).

    Output size ``(H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1``.
    Weights default to He-uniform with ``fan_in = C/groups * kh * kw`` (the equivalent forward
    convolution's); biases start at zero. ``in_channels`` builds at construction.
    """
    _nd = 2
    _transposed = True

    def __init__(self, filters, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                 groups=1, use_bias=True, kernel_initializer=None, in_channels=None, seed=None):
        super().__init__(seed)
        self.output_padding = output_padding
        self._setup(filters, kernel_size, stride, padding, dilation, groups, use_bias,
                    kernel_initializer, in_channels, output_padding)

    def _geometry(self):
        geo = super()._geometry()
        geo["output_padding"] = self._output_padding
        return geo

    _fuses_relu = False
    _op = staticmethod(_conv_ops.conv_transpose2d)
    _op_backward = staticmethod(_conv_ops.conv_transpose2d_backward)


# -- pooling ----------------------------------------------------------------------------------
class _Pool(_Stateless):
    _nd = 2

    def __init__(self, pool_size, stride=None, padding=0):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        self.pool_size = pool_size
        self.stride = stride
        self.padding = padding
        self._k = _ints(pool_size, "pool_size", name, nd, 1)
        self._stride = self._k if stride is None else _ints(stride, "stride", name, nd, 1)
        self._padding = _ints(padding, "padding", name, nd, 0)
        if any(2 * p > k for p, k in zip(self._padding, self._k)):
            raise ValueError(f"{name}: padding={padding!r} must be at most half of "
                             f"pool_size={pool_size!r}")
        self._ranks = (nd + 1,)
        self._layout = _layout(nd)

    def _args(self):
        return self._k, self._stride, self._padding


class _MaxPool(_Pool):
    """Max pooling: the subclasses name the number of axes and the kernels."""

    def _forward(self, x, training):
        y, idx = self._pool(x, *self._args())
        self._cache = (idx, tuple(x.shape))
        return y

    def _backward(self, dy):
        idx, shape = self._cached()
        return self._pool_backward(dy, idx, shape)


class MaxPool1D(_MaxPool):
    """Max pooling over (N, C, L) (``F.max_pool1d``); ``stride`` defaults to ``pool_size``."""
    _nd = 1
    _pool = staticmethod(_pool_ops.max_pool1d)
    _pool_backward = staticmethod(_pool_ops.max_pool1d_backward)


class MaxPool2D(_MaxPool):
    """Max pooling over (N, C, H, W) (``F.max_pool2d``); ``stride`` defaults to ``pool_size``."""
    _nd = 2
    _pool = staticmethod(_pool_ops.max_pool2d)
    _pool_backward = staticmethod(_pool_ops.max_pool2d_backward)


class _AvgPool(_Pool):
    """Average pooling (zero padding counted): the subclasses name the axes and the kernels."""

    def _forward(self, x, training):
        self._cache = tuple(x.shape)
        return self._pool(x, *self._args())

    def _backward(self, dy):
        return self._pool_backward(dy, self._cached(), *self._args())


class AvgPool1D(_AvgPool):
    """Average pooling over (N, C, L) (``F.avg_pool1d``, zero padding counted)."""
    _nd = 1
    _pool = staticmethod(_pool_ops.avg_pool1d)
    _pool_backward = staticmethod(_pool_ops.avg_pool1d_backward)


class AvgPool2D(_AvgPool):
    """Average pooling over (N, C, H, W) (``F.avg_pool2d``, zero padding counted)."""
    _nd = 2
    _pool = staticmethod(_pool_ops.avg_pool2d)
    _pool_backward = staticmethod(_pool_ops.avg_pool2d_backward)


class StochasticPool2D(_Stateless):
    """Stochastic pooling (Zeiler & Fergus 2013) over (N, C, H, W), no padding.

    Training: in each window one activation is sampled with probability proportional to it
    (negative activations weigh 0: place it after ReLU), with a seed drawn per call from the
    layer's generator (``seed``, or the model's). Evaluation: the probability-weighted mean
    ``sum(a^2) / sum(a)``. ``stride`` defaults to ``pool_size``.
    """
    _ranks = (3,)
    _layout = "(N, C, H, W)"

    def __init__(self, pool_size, stride=None, seed=None):
        super().__init__()
        _seed(seed, "StochasticPool2D")
        self.pool_size = pool_size
        self.stride = stride
        self.seed = seed
        self._k = _ints(pool_size, "pool_size", "StochasticPool2D", 2, 1)
        self._stride = (self._k if stride is None
                        else _ints(stride, "stride", "StochasticPool2D", 2, 1))

    def _init_rng(self):
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    def _forward(self, x, training):
        training = bool(training)
        seed = int(self._init_rng().integers(0, 2 ** 63)) if training else 0
        y, idx = K.stochastic_pool2d(x, self._k, self._stride, seed=seed, training=training)
        self._cache = (x, idx, training)
        return y

    def _backward(self, dy):
        x, idx, training = self._cached()
        return K.stochastic_pool2d_backward(dy, x, idx, self._k, self._stride, training=training)


class _GlobalAvgPool(_Stateless):
    """Mean over every spatial axis: (N, C, ...) -> (N, C); the subclasses name the kernels."""

    def _forward(self, x, training):
        self._cache = tuple(x.shape)
        return self._pool(x)

    def _backward(self, dy):
        return self._pool_backward(dy, self._cached())


class GlobalAvgPool2D(_GlobalAvgPool):
    """Mean over H and W: (N, C, H, W) -> (N, C)."""
    _ranks = (3,)
    _layout = "(N, C, H, W)"
    _pool = staticmethod(_pool_ops.global_avg_pool2d)
    _pool_backward = staticmethod(_pool_ops.global_avg_pool2d_backward)


class GlobalAvgPool1D(_GlobalAvgPool):
    """Mean over L: (N, C, L) -> (N, C) (Keras' ``GlobalAveragePooling1D`` on channels-first
    input; ``F.adaptive_avg_pool1d(x, 1)`` squeezed)."""
    _ranks = (2,)
    _layout = "(N, C, L)"
    _pool = staticmethod(_pool_ops.global_avg_pool1d)
    _pool_backward = staticmethod(_pool_ops.global_avg_pool1d_backward)


class _GlobalMaxPool(_Stateless):
    """Maximum over every spatial axis: (N, C, ...) -> (N, C); the gradient goes to the first
    maximal element of each plane (as ``F.adaptive_max_pool2d(x, 1)``'s)."""

    def _forward(self, x, training):
        y, idx = self._pool(x)
        self._cache = (idx, tuple(x.shape))
        return y

    def _backward(self, dy):
        idx, shape = self._cached()
        return self._pool_backward(dy, idx, shape)


class GlobalMaxPool1D(_GlobalMaxPool):
    """Maximum over L: (N, C, L) -> (N, C) (Keras' ``GlobalMaxPooling1D`` on channels-first
    input; ``F.adaptive_max_pool1d(x, 1)`` squeezed)."""
    _ranks = (2,)
    _layout = "(N, C, L)"
    _pool = staticmethod(_pool_ops.global_max_pool1d)
    _pool_backward = staticmethod(_pool_ops.global_max_pool1d_backward)


class GlobalMaxPool2D(_GlobalMaxPool):
    """Maximum over H and W: (N, C, H, W) -> (N, C) (``F.adaptive_max_pool2d(x, 1)``
    squeezed)."""
    _ranks = (3,)
    _layout = "(N, C, H, W)"
    _pool = staticmethod(_pool_ops.global_max_pool2d)
    _pool_backward = staticmethod(_pool_ops.global_max_pool2d_backward)


# -- reshaping --------------------------------------------------------------------------------
class Flatten(_Stateless):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), a view where the input is contiguous."""

    def _forward(self, x, training):
        shape = tuple(x.shape)
        self._cache = shape
        return x.reshape(shape[0], math.prod(shape[1:]))

    def _backward(self, dy):
        return dy.reshape(self._cached())


class Reshape(_Stateless):
    """(N, ...) -> (N, *shape); ``shape`` excludes the batch axis and may hold one -1."""

    def __init__(self, shape):
        super().__init__()
        if isinstance(shape, numbers.Integral):
            shape = (shape,)
        try:
            target = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise TypeError(f"Reshape: shape must be a tuple of ints, got {shape!r}") from None
        if any(s < -1 for s in target) or target.count(-1) > 1:
            raise ValueError(f"Reshape: shape must hold sizes >= 0 and at most one -1, "
                             f"got {shape!r}")
        self.shape = tuple(shape)
        self._target = target

    def _resolve(self, in_shape):
        size = int(np.prod(in_shape[1:], dtype=np.int64))
        target = self._target
        if -1 in target:
            known = int(np.prod([s for s in target if s != -1], dtype=np.int64))
            if known == 0 or size % known:
                target = None
            else:
                target = tuple(size // known if s == -1 else s for s in target)
        if target is None or int(np.prod(target, dtype=np.int64)) != size:
            raise ValueError(f"{self!r} cannot reshape input of shape {tuple(in_shape)} "
                             f"({size} values per sample) to (N, "
                             f"{', '.join(map(str, self._target))})")
        return target

    def _forward(self, x, training):
        shape = tuple(x.shape)
        self._cache = shape
        return x.reshape((shape[0],) + self._resolve(shape))

    def _backward(self, dy):
        return dy.reshape(self._cached())


# -- regularisation and normalisation ---------------------------------------------------------
class Dropout(_Stateless):
    """Inverted dropout: in training each unit is zeroed with probability ``rate`` and the kept
    ones are scaled by ``1 / (1 - rate)``; identity in evaluation.

    The mask comes from a seed drawn per call from the layer's generator (``seed``, or the model's).
    """

    def __init__(self, rate, seed=None):
        super().__init__()
        rate = check_scalar(rate, "Dropout: rate", 0.0, 1.0, high_open=True)
        _seed(seed, "Dropout")
        self.rate = rate
        self.seed = seed

    def _init_rng(self):
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    def _forward(self, x, training):
        if not training or self.rate == 0.0:
            self._cache = (None,)
            return x
        seed = int(self._init_rng().integers(0, 2 ** 63))
        y, mask = K.dropout(x, self.rate, seed)
        self._cache = (mask,)
        return y

    def _backward(self, dy):
        (mask,) = self._cached()
        return dy if mask is None else K.dropout_backward(dy, mask, self.rate)


class BatchNorm(Layer):
    """Batch normalisation (Ioffe & Szegedy 2015) over axis 1, as ``F.batch_norm``.

    Input (N, C), (N, C, L) or (N, C, H, W). Training normalises with the batch statistics and
    updates ``running_mean``/``running_var`` in place (``running = (1 - momentum) * running +
    momentum * batch``, unbiased batch variance); evaluation uses the running statistics.
    ``gamma`` (ones) and ``beta`` (zeros) are parameters without weight decay; the running
    statistics are state arrays (``buffers()``), not parameters.
    """

    def __init__(self, momentum=0.1, eps=1e-5):
        super().__init__()
        self.momentum = check_scalar(momentum, "BatchNorm: momentum", 0.0, 1.0)
        self.eps = check_scalar(eps, "BatchNorm: eps", 0.0, low_open=True)
        self.gamma = self.beta = None
        self.running_mean = self.running_var = None
        self._cache = None

    def build(self, input_shape, rng=None, dtype=np.float32):
        input_shape = tuple(input_shape)
        _need_rank(self, input_shape, (1, 2, 3), "(N, C), (N, C, L) or (N, C, H, W)")
        dtype = _init.float_dtype(dtype)
        c = int(input_shape[0])
        claim_values(self, 4 * c)  # gamma, beta and the two running statistics
        self._params = []
        self.gamma = self.add_parameter("gamma", np.ones(c, dtype), decay=False)
        self.beta = self.add_parameter("beta", np.zeros(c, dtype), decay=False)
        self.running_mean = np.zeros(c, dtype)
        self.running_var = np.ones(c, dtype)
        self.input_shape = (c,) + _free(len(input_shape) - 1)
        self.built = True

    def buffers(self):
        """The non-trainable state arrays by name (updated in place in training)."""
        if not self.built:
            return {}
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def _forward(self, x, training):
        if np.dtype(x.dtype) != np.dtype(self.gamma.data.dtype):
            raise TypeError(f"BatchNorm has {np.dtype(self.gamma.data.dtype)} parameters; got "
                            f"{np.dtype(x.dtype)} input")
        shape = tuple(x.shape)
        if x.ndim == 3:  # (N, C, L) -> (N, C, L, 1)
            x = x.reshape(shape + (1,))
        y, cache = K.batch_norm(x, self.gamma.data, self.beta.data, self.running_mean,
                                self.running_var, training=bool(training),
                                momentum=self.momentum, eps=self.eps)
        self._cache = (cache, shape)
        return y.reshape(shape) if len(shape) == 3 else y

    def _backward(self, dy):
        if self._cache is None:
            raise RuntimeError("BatchNorm.backward called before forward")
        cache, shape = self._cache
        if len(shape) == 3:
            dy = dy.reshape(shape + (1,))
        dx, dgamma, dbeta = K.batch_norm_backward(dy, cache)
        accumulate(self.gamma.grad, dgamma)
        accumulate(self.beta.grad, dbeta)
        return dx.reshape(shape) if len(shape) == 3 else dx


def _normalized_shape(value):
    """LayerNorm's ``normalized_shape``: None, or a tuple of positive ints."""
    if value is None:
        return None
    return size_tuple(value, "LayerNorm: normalized_shape (None, an int or ints)",
                      " (pass eps by keyword: LayerNorm(eps=...))")


class LayerNorm(Layer):
    """Layer normalisation (Ba et al. 2016) over the trailing axes, as ``torch.nn.LayerNorm``.

    ``normalized_shape``: the sizes of the last axes to normalise over (an int or a tuple, which
    the input must end with); None (the default): the last axis, whatever its size. Each
    sample's values over those axes are normalised with their own mean and biased variance (the
    same in training and evaluation: no running statistics), then scaled by ``gamma`` (ones)
    and shifted by ``beta`` (zeros), parameters of shape ``normalized_shape`` without weight
    decay; ``elementwise_affine=False``: no parameters.
    """

    def __init__(self, normalized_shape=None, eps=1e-5, elementwise_affine=True):
        super().__init__()
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = check_scalar(eps, "LayerNorm: eps", 0.0, low_open=True)
        self.elementwise_affine = _bool(elementwise_affine, "elementwise_affine", "LayerNorm")
        self.gamma = self.beta = None
        self._shape = None
        self._cache = None

    def build(self, input_shape, rng=None, dtype=np.float32):
        input_shape = tuple(input_shape)
        shape = self.normalized_shape
        if shape is None:
            _need_rank(self, input_shape, range(1, 64), "(N, ..., features)")
            shape = (int(input_shape[-1]),)
        k = len(shape)
        if len(input_shape) < k or tuple(input_shape[len(input_shape) - k:]) != shape:
            raise ValueError(f"LayerNorm over the last axes {shape} expects input of shape (N, "
                             f"..., {', '.join(map(str, shape))}), got a per-sample shape "
                             f"{input_shape}")
        if math.prod(shape) < 1:
            raise ValueError(f"LayerNorm needs at least one value to normalise, got a "
                             f"per-sample shape {input_shape}")
        dtype = _init.float_dtype(dtype)
        self._params = []
        if self.elementwise_affine:
            claim_values(self, 2 * math.prod(shape))
            self.gamma = self.add_parameter("gamma", np.ones(shape, dtype), decay=False)
            self.beta = self.add_parameter("beta", np.zeros(shape, dtype), decay=False)
        self._shape = shape
        self._built_dtype = dtype.name
        self.input_shape = _free(len(input_shape) - k) + shape
        self.built = True

    def _forward(self, x, training):
        gamma = beta = None
        if self.gamma is not None:
            gamma, beta = self.gamma.data, self.beta.data
            if np.dtype(x.dtype) != np.dtype(gamma.dtype):
                raise TypeError(f"LayerNorm has {np.dtype(gamma.dtype)} parameters; got "
                                f"{np.dtype(x.dtype)} input")
        y, mean, invstd = K.layer_norm(x, self._shape, gamma, beta, self.eps)
        self._cache = (x, mean, invstd)
        return y

    def _backward(self, dy):
        if self._cache is None:
            raise RuntimeError("LayerNorm.backward called before forward")
        x, mean, invstd = self._cache
        gamma = None if self.gamma is None else self.gamma.data
        dx, dgamma, dbeta = K.layer_norm_backward(dy, x, mean, invstd, gamma)
        if self.gamma is not None:
            accumulate(self.gamma.grad, dgamma)
            accumulate(self.beta.grad, dbeta)
        return dx


# -- embeddings -------------------------------------------------------------------------------
class Embedding(_Weighted):
    """A table of learned vectors looked up by integer code, as ``torch.nn.Embedding``.

    Input: integer codes (N, ...) (cast to int64), each in ``[0, num_embeddings)`` (ValueError
    naming the code otherwise); output (N, ..., embedding_dim): row ``code`` of ``weight``
    (num_embeddings, embedding_dim). ``fit``, ``evaluate`` and ``predict`` hand x to a model
    that opens with an Embedding as int64 codes. Weights start normal(0, 1) (torch's
    initialisation) in float32 (``build(..., dtype=np.float64)`` or a float64 model:
    float64), and take weight decay like any weight (torch's optimizers decay every parameter
    they are given). ``padding_idx`` (negative values count from the end; stored as a row
    number): that row starts at zero and gets no gradient. The weight gradient adds rows in a
    fixed order (bitwise the same for any thread count); there is no gradient for the codes.
    """

    _input_kinds = "iu"

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, seed=None):
        super().__init__(seed)
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        if padding_idx is not None:
            if not is_int(padding_idx):
                raise TypeError(f"Embedding: padding_idx must be None or an int, got "
                                f"{padding_idx!r}")
            v = self.num_embeddings
            if not -v <= padding_idx < v:
                raise ValueError(f"Embedding: padding_idx must be within [-{v}, {v}) "
                                 f"(num_embeddings={v}), got {padding_idx}")
            padding_idx = int(padding_idx) % v
        self.padding_idx = padding_idx
        self.weight = None

    def build(self, input_shape, rng=None, dtype=np.float32):
        input_shape = tuple(input_shape)
        if np.dtype(dtype).kind in "iu":  # built from the codes: they say nothing of the weights
            dtype = np.float32
        rng, dtype = self._start_build(rng, dtype)
        shape = (self.num_embeddings, self.embedding_dim)
        claim_values(self, shape[0] * shape[1])
        weight = rng.standard_normal(shape).astype(dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self.weight = self.add_parameter("weight", weight)
        self.input_shape = _free(len(input_shape))
        self.built = True

    def forward(self, x, training=False):
        """Float input holding whole numbers (a column block of a float X, ``Columns``) is
        taken as codes; on the GPU such a float array makes one trip through the host."""
        if np.dtype(getattr(x, "dtype", np.asarray(x).dtype)).kind == "f":
            from ._data import codes
            on_device = _array.is_cuda_array(x)
            if not self.built:   # weights of the float dtype the rest of the model has
                self.build(tuple(x.shape[1:]), self._init_rng(), np.dtype(x.dtype))
                if self.device == "cuda" or on_device:
                    self.to("cuda")
            x = codes(_array.to_host(x) if on_device else x, "Embedding input")
            if on_device:
                x = _array.move(x, "cuda")
        return super().forward(x, training)

    def _forward(self, x, training):
        self._cache = x
        return K.embedding(x, self.weight.data)

    def _backward(self, dy):
        dw = K.embedding_backward(dy, self._cached(), self.num_embeddings, self.padding_idx)
        accumulate(self.weight.grad, dw)
        return None


# -- activations ------------------------------------------------------------------------------
class _Activation(_Stateless):
    """Elementwise ``f(x)``; backward is ``f_backward(dy, x, *args)``."""

    _ranks = None

    def _kernel_args(self):
        return ()

    def _forward(self, x, training):
        self._cache = x
        return getattr(K, self._kernel)(x, *self._kernel_args())

    def _backward(self, dy):
        return getattr(K, self._kernel + "_backward")(dy, self._cached(), *self._kernel_args())


class ReLU(_Activation):
    """``max(x, 0)``.

    After a Dense, Conv1D or Conv2D in a Sequential, the ReLU runs inside that layer's kernel
    (``activation="relu"``) and this layer keeps the output, whose sign is the input's.
    """
    _kernel = "relu"
    _takes_fused_relu = True

    def _take_fused(self, y):
        """Stand for ``forward`` when the previous layer already applied the ReLU to ``y``."""
        y = self._check_input(y)
        self._cache = y
        return y


class LeakyReLU(_Activation):
    """``x`` where positive, else ``negative_slope * x``."""
    _kernel = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = check_scalar(negative_slope, "LeakyReLU: negative_slope")

    def _kernel_args(self):
        return (self.negative_slope,)


class ELU(_Activation):
    """``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    _kernel = "elu"

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = check_scalar(alpha, "ELU: alpha")

    def _kernel_args(self):
        return (self.alpha,)


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""
    _kernel = "sigmoid"


class Tanh(_Activation):
    """``tanh(x)``."""
    _kernel = "tanh"


class GELU(_Activation):
    """``x * Phi(x)`` with the exact (erf) normal CDF, as ``F.gelu``."""
    _kernel = "gelu"


class Softmax(_Stateless):
    """``exp(x) / sum(exp(x))`` along ``axis`` (an axis of the full input, batch axis 0)."""

    def __init__(self, axis=-1):
        super().__init__()
        if not is_int(axis):
            raise TypeError(f"Softmax: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def build(self, input_shape, rng=None, dtype=np.float32):
        super().build(input_shape, rng, dtype)
        ndim = len(self.input_shape) + 1
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"Softmax: axis={self.axis} is out of range for {ndim}-D input")

    def _forward(self, x, training):
        self._cache = x
        return K.softmax(x, self.axis)

    def _backward(self, dy):
        return K.softmax_backward(dy, self._cached(), self.axis)


class PReLU(Layer):
    """``x`` where positive, else ``weight[c] * x``: one learned slope per channel (axis 1),
    initialised to 0.25 as ``torch.nn.PReLU``; no weight decay on the slopes (He et al. 2015)."""

    def __init__(self):
        super().__init__()
        self.weight = None
        self._cache = None

    def build(self, input_shape, rng=None, dtype=np.float32):
        input_shape = tuple(input_shape)
        _need_rank(self, input_shape, range(1, 64), "(N, C, ...)")
        dtype = _init.float_dtype(dtype)
        c = int(input_shape[0])
        claim_values(self, c)
        self._params = []
        self.weight = self.add_parameter("weight", np.full(c, 0.25, dtype), decay=False)
        self.input_shape = (c,) + _free(len(input_shape) - 1)
        self.built = True

    def _forward(self, x, training):
        if np.dtype(x.dtype) != np.dtype(self.weight.data.dtype):
            raise TypeError(f"PReLU has {np.dtype(self.weight.data.dtype)} parameters; got "
                            f"{np.dtype(x.dtype)} input")
        self._cache = x
        return K.prelu(x, self.weight.data)

    def _backward(self, dy):
        if self._cache is None:
            raise RuntimeError("PReLU.backward called before forward")
        dx, dw = K.prelu_backward(dy, self._cache, self.weight.data)
        accumulate(self.weight.grad, dw)
        return dx
