"""Pooling: max, average, global (max and average) and stochastic pooling, with their backward
passes.

Semantics follow ``torch.nn.functional`` (``max_pool2d(..., return_indices=True)``,
``avg_pool2d(..., count_include_pad=True)``, ``ceil_mode=False``). ``stride`` defaults to the
kernel size; ``padding`` may be at most half the kernel (PyTorch's rule). 1-D pooling runs the 2-D
kernels on a height-1 view of (N, C, L). Global pooling reduces each plane to one value (N, C);
the gradient of a global maximum is the max-pool routing of ``max_pool2d_backward``.
"""
import numbers

import numpy as np

from ._dispatch import backend
from ._validate import is_int, pair, single

_LAYOUT_2D = "(N, C, H, W)"
_LAYOUT_1D = "(N, C, L)"


def _window(kernel_size, stride, padding, n):
    """Normalise (kernel_size, stride, padding) to n-tuples and apply PyTorch's padding rule."""
    to = pair if n == 2 else (lambda v, name, minimum=1: (single(v, name, minimum),))
    k = to(kernel_size, "kernel_size")
    s = k if stride is None else to(stride, "stride")
    p = to(padding, "padding", minimum=0)
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"padding must be at most half the kernel size (kernel_size={kernel_size!r}), "
                         f"got padding={padding!r}")
    return k, s, p


def _out_shape(spatial, k, s, p, names):
    out = []
    for size, ki, si, pi, name in zip(spatial, k, s, p, names):
        if size + 2 * pi < ki:
            raise ValueError(f"kernel_size {ki} is larger than the padded {name} "
                             f"(size {size} + 2*{pi} padding)")
        out.append((size + 2 * pi - ki) // si + 1)
    return tuple(out)


def _x_shape(x_shape, ndim, layout):
    """``x_shape`` as a tuple of ``ndim`` ints: N, C >= 0 and spatial sizes >= 1."""
    try:
        shape = tuple(x_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != ndim
            or not all(is_int(v) for v in shape)):
        raise TypeError(f"x_shape must be a sequence of {ndim} ints {layout}, got {x_shape!r}")
    shape = tuple(int(v) for v in shape)
    if min(shape[:2]) < 0 or min(shape[2:]) < 1:
        raise ValueError(f"x_shape must have N, C >= 0 and positive spatial sizes, got {shape}")
    return shape


def _expect(a, name, shape):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(a.shape)}")


def _as_2d(shape):
    """(N, C, L) -> (N, C, 1, L)."""
    return (shape[0], shape[1], 1, shape[2])


# ------------------------------------------------------------------------------------------ 2-D

def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pooling as ``F.max_pool2d(..., return_indices=True)``: ``(y, indices)``.

    ``x`` (N, C, H, W); -inf padding; ``indices`` (int64) are flat positions in each H*W plane;
    ties take the first maximum in scan order, NaN propagates.
    """
    be = backend(x)
    x = be.float_array(x, "x", ndim=4, layout=_LAYOUT_2D)
    k, s, p = _window(kernel_size, stride, padding, 2)
    _out_shape(x.shape[2:], k, s, p, ("input height", "input width"))
    return be.impl("pool").max_pool2d(x, k, s, p)


def _max_backward_inputs(dy, indices, x_shape, ndim, dy_layout, x_layout):
    """The backend and the checked ``dy``, ``indices`` and ``x_shape`` of a max-pool gradient."""
    be = backend(dy, indices)
    dy = be.float_array(dy, "dy", ndim=ndim, layout=dy_layout)
    indices = be.int_array(indices, "indices", ndim=ndim)
    x_shape = _x_shape(x_shape, ndim, x_layout)
    _expect(indices, "indices", dy.shape)
    if tuple(dy.shape[:2]) != x_shape[:2]:
        raise ValueError(f"dy must have N, C = {x_shape[:2]} like x_shape, got shape {tuple(dy.shape)}")
    return be, dy, indices, x_shape


def max_pool2d_backward(dy, indices, x_shape):
    """Gradient of ``max_pool2d``: ``dy`` routed to ``indices`` (summed where they coincide)."""
    be, dy, indices, x_shape = _max_backward_inputs(dy, indices, x_shape, 4, "(N, C, OH, OW)",
                                                    _LAYOUT_2D)
    return be.impl("pool").max_pool2d_backward(dy, indices, x_shape)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Average pooling as ``F.avg_pool2d`` (count_include_pad=True): ``y``; ``x`` (N, C, H, W)."""
    be = backend(x)
    x = be.float_array(x, "x", ndim=4, layout=_LAYOUT_2D)
    k, s, p = _window(kernel_size, stride, padding, 2)
    _out_shape(x.shape[2:], k, s, p, ("input height", "input width"))
    return be.impl("pool").avg_pool2d(x, k, s, p)


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0):
    """Gradient of ``avg_pool2d`` with respect to its input of shape ``x_shape``."""
    be = backend(dy)
    dy = be.float_array(dy, "dy", ndim=4, layout="(N, C, OH, OW)")
    x_shape = _x_shape(x_shape, 4, _LAYOUT_2D)
    k, s, p = _window(kernel_size, stride, padding, 2)
    out = _out_shape(x_shape[2:], k, s, p, ("input height", "input width"))
    _expect(dy, "dy", x_shape[:2] + out)
    return be.impl("pool").avg_pool2d_backward(dy, x_shape, k, s, p)


# ------------------------------------------------------------------------------------------ 1-D

def max_pool1d(x, kernel_size, stride=None, padding=0):
    """Max pooling as ``F.max_pool1d(..., return_indices=True)`` on ``x`` (N, C, L)."""
    be = backend(x)
    x = be.float_array(x, "x", ndim=3, layout=_LAYOUT_1D)
    (k,), (s,), (p,) = _window(kernel_size, stride, padding, 1)
    _out_shape(x.shape[2:], (k,), (s,), (p,), ("input length",))
    y, idx = be.impl("pool").max_pool2d(x.reshape(_as_2d(x.shape)), (1, k), (1, s), (0, p))
    return y.reshape(y.shape[0], y.shape[1], y.shape[3]), idx.reshape(y.shape[0], y.shape[1], y.shape[3])


def max_pool1d_backward(dy, indices, x_shape):
    """Gradient of ``max_pool1d``: ``dy`` (N, C, OL) routed to ``indices`` in an input ``x_shape``."""
    be, dy, indices, x_shape = _max_backward_inputs(dy, indices, x_shape, 3, "(N, C, OL)",
                                                    _LAYOUT_1D)
    dx = be.impl("pool").max_pool2d_backward(dy.reshape(_as_2d(dy.shape)),
                                             indices.reshape(_as_2d(indices.shape)), _as_2d(x_shape))
    return dx.reshape(x_shape)


def avg_pool1d(x, kernel_size, stride=None, padding=0):
    """Average pooling as ``F.avg_pool1d`` (count_include_pad=True) on ``x`` (N, C, L)."""
    be = backend(x)
    x = be.float_array(x, "x", ndim=3, layout=_LAYOUT_1D)
    (k,), (s,), (p,) = _window(kernel_size, stride, padding, 1)
    _out_shape(x.shape[2:], (k,), (s,), (p,), ("input length",))
    y = be.impl("pool").avg_pool2d(x.reshape(_as_2d(x.shape)), (1, k), (1, s), (0, p))
    return y.reshape(y.shape[0], y.shape[1], y.shape[3])


def avg_pool1d_backward(dy, x_shape, kernel_size, stride=None, padding=0):
    """Gradient of ``avg_pool1d`` with respect to its input of shape ``x_shape`` (N, C, L)."""
    be = backend(dy)
    dy = be.float_array(dy, "dy", ndim=3, layout="(N, C, OL)")
    x_shape = _x_shape(x_shape, 3, _LAYOUT_1D)
    (k,), (s,), (p,) = _window(kernel_size, stride, padding, 1)
    out = _out_shape(x_shape[2:], (k,), (s,), (p,), ("input length",))
    _expect(dy, "dy", x_shape[:2] + out)
    dx = be.impl("pool").avg_pool2d_backward(dy.reshape(_as_2d(dy.shape)), _as_2d(x_shape),
                                             (1, k), (1, s), (0, p))
    return dx.reshape(x_shape)


# --------------------------------------------------------------------------------- global / stochastic

def _global_input(x, ndim):
    """The backend and ``x`` (N, C, H, W) or (N, C, L) as a checked float array with a
    non-empty plane, viewed as (N, C, H, W) (a 1-D signal as height 1)."""
    be = backend(x)
    layout = _LAYOUT_2D if ndim == 4 else _LAYOUT_1D
    x = be.float_array(x, "x", ndim=ndim, layout=layout)
    if min(x.shape[2:]) == 0:
        sizes = "H and W" if ndim == 4 else "L"
        raise ValueError(f"x must have positive {sizes}, got shape {tuple(x.shape)}")
    return be, (x if ndim == 4 else x.reshape(_as_2d(x.shape)))


def _global_backward_input(dy, x_shape, ndim, indices=None):
    """The backend, ``dy`` (N, C) viewed as (N, C, 1, 1), ``indices`` likewise (if given) and
    ``x_shape`` as a 4-tuple, checked against each other."""
    be = backend(dy) if indices is None else backend(dy, indices)
    dy = be.float_array(dy, "dy", ndim=2, layout="(N, C)")
    x_shape = _x_shape(x_shape, ndim, _LAYOUT_2D if ndim == 4 else _LAYOUT_1D)
    _expect(dy, "dy", x_shape[:2])
    if indices is not None:
        indices = be.int_array(indices, "indices", ndim=2)
        _expect(indices, "indices", dy.shape)
        indices = indices.reshape(dy.shape + (1, 1))
    return be, dy.reshape(dy.shape + (1, 1)), indices, (x_shape if ndim == 4 else _as_2d(x_shape))


def global_avg_pool2d(x):
    """Mean over H and W: ``x`` (N, C, H, W) -> (N, C)."""
    be, x = _global_input(x, 4)
    return be.impl("pool").global_avg_pool2d(x)


def global_avg_pool2d_backward(dy, x_shape):
    """Gradient of ``global_avg_pool2d``: ``dy`` (N, C) spread evenly over each H*W plane."""
    be, dy, _, shape = _global_backward_input(dy, x_shape, 4)
    return be.impl("pool").global_avg_pool2d_backward(dy.reshape(shape[:2]), shape)


def global_avg_pool1d(x):
    """Mean over L: ``x`` (N, C, L) -> (N, C), as ``F.adaptive_avg_pool1d(x, 1)`` squeezed."""
    be, x = _global_input(x, 3)
    return be.impl("pool").global_avg_pool2d(x)


def global_avg_pool1d_backward(dy, x_shape):
    """Gradient of ``global_avg_pool1d``: ``dy`` (N, C) spread evenly over each length-L row."""
    be, dy, _, shape = _global_backward_input(dy, x_shape, 3)
    dx = be.impl("pool").global_avg_pool2d_backward(dy.reshape(shape[:2]), shape)
    return dx.reshape(shape[0], shape[1], shape[3])


def global_max_pool2d(x):
    """Maximum over H and W, as ``F.adaptive_max_pool2d(x, 1, return_indices=True)`` with the
    unit axes dropped: ``(y, indices)``, both (N, C), from ``x`` (N, C, H, W).

    ``indices`` (int64) are flat positions in each H*W plane; ties take the first maximum in
    scan order (the gradient goes there alone, as PyTorch's), NaN propagates.
    """
    be, x = _global_input(x, 4)
    return be.impl("pool").global_max_pool2d(x)


def global_max_pool2d_backward(dy, indices, x_shape):
    """Gradient of ``global_max_pool2d``: each ``dy`` (N, C) goes to its plane's ``indices``."""
    be, dy, indices, shape = _global_backward_input(dy, x_shape, 4, indices)
    return be.impl("pool").max_pool2d_backward(dy, indices, shape)


def global_max_pool1d(x):
    """Maximum over L, as ``F.adaptive_max_pool1d(x, 1, return_indices=True)`` with the unit
    axis dropped: ``(y, indices)``, both (N, C), from ``x`` (N, C, L); ``indices`` are
    positions along L (int64), the first maximum on ties, NaN propagates."""
    be, x = _global_input(x, 3)
    return be.impl("pool").global_max_pool2d(x)


def global_max_pool1d_backward(dy, indices, x_shape):
    """Gradient of ``global_max_pool1d``: each ``dy`` (N, C) goes to its row's ``indices``."""
    be, dy, indices, shape = _global_backward_input(dy, x_shape, 3, indices)
    dx = be.impl("pool").max_pool2d_backward(dy, indices, shape)
    return dx.reshape(shape[0], shape[1], shape[3])


def _seed(seed):
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not 0 <= int(seed) < 2 ** 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed!r}")
    return int(seed)


def _training(training):
    if not isinstance(training, (bool, np.bool_, numbers.Integral)) or training not in (0, 1):
        raise TypeError(f"training must be a bool, got {training!r}")
    return bool(training)


def stochastic_pool2d(x, kernel_size, stride=None, seed=0, training=True):
    """Stochastic pooling (Zeiler & Fergus 2013) on ``x`` (N, C, H, W), no padding: ``(y, indices)``.

    Activations are expected non-negative (after ReLU); negative ones weigh 0. Training: each window
    yields one element sampled with probability a_i / sum(a) (counter-based RNG keyed by ``seed``
    and the flat output index, so results do not depend on the thread count); a window summing to 0
    yields 0 and its first element. Evaluation: y = sum(a_i^2) / sum(a_i) (0 for a zero window) and
    ``indices`` hold the window's first maximum. ``indices`` are flat positions in each H*W plane.
    """
    be = backend(x)
    x = be.float_array(x, "x", ndim=4, layout=_LAYOUT_2D)
    k, s, _ = _window(kernel_size, stride, 0, 2)
    _out_shape(x.shape[2:], k, s, (0, 0), ("input height", "input width"))
    return be.impl("pool").stochastic_pool2d(x, k, s, _seed(seed), _training(training))


def stochastic_pool2d_backward(dy, x, indices, kernel_size, stride=None, training=True):
    """Gradient of ``stochastic_pool2d``: training routes ``dy`` to the sampled elements
    (``indices``; none where the sample was 0), evaluation differentiates the weighted mean."""
    be = backend(dy, x, indices)
    x = be.float_array(x, "x", ndim=4, layout=_LAYOUT_2D)
    dy = be.float_array(dy, "dy", ndim=4, dtype=x.dtype, layout="(N, C, OH, OW)")
    indices = be.int_array(indices, "indices", ndim=4)
    k, s, _ = _window(kernel_size, stride, 0, 2)
    out = _out_shape(x.shape[2:], k, s, (0, 0), ("input height", "input width"))
    _expect(dy, "dy", tuple(x.shape[:2]) + out)
    _expect(indices, "indices", dy.shape)
    return be.impl("pool").stochastic_pool2d_backward(dy, x, indices, k, s, _training(training))
