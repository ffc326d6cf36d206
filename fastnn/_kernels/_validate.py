"""Argument checks shared by the kernel wrappers; each error names the argument at fault."""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_int(v):
    """An integer (Python or NumPy), not a bool: the one integer check of fastnn."""
    return type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool))


def is_real(v):
    """A real number (Python or NumPy, integers included), not a bool."""
    return type(v) is float or (isinstance(v, numbers.Real) and not isinstance(v, bool))


def int_tuple(value, name, n, minimum):
    """An int or a sequence of ``n`` ints, each ``>= minimum``, as an n-tuple."""
    if type(value) is tuple and len(value) == n and all(type(v) is int and v >= minimum
                                                         for v in value):
        return value  # the common case, already in shape (layers pass validated tuples)
    if is_int(value):
        out = (int(value),) * n
    else:
        try:
            out = tuple(value)
        except TypeError:
            out = None
        if out is None or len(out) != n or not all(is_int(v) for v in out):
            raise TypeError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
        out = tuple(int(v) for v in out)
    if any(v < minimum for v in out):
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return out


def size_tuple(value, name, hint=""):
    """An int or a non-empty sequence of positive ints (sizes of trailing axes) as a tuple;
    ``hint`` ends the TypeError's message."""
    if is_int(value):
        shape = (int(value),)
    else:
        try:
            shape = tuple(value)
        except TypeError:
            shape = None
        if not shape or not all(is_int(s) for s in shape):
            raise TypeError(f"{name} must be an int or a non-empty sequence of ints, got "
                            f"{value!r}{hint}")
        shape = tuple(int(s) for s in shape)
    if any(s < 1 for s in shape):
        raise ValueError(f"{name} must hold positive sizes, got {value!r}")
    return shape


def pair(value, name, minimum=1):
    return int_tuple(value, name, 2, minimum)


def single(value, name, minimum=1):
    return int_tuple(value, name, 1, minimum)[0]


def check_ndim(a, name, ndim, layout=None):
    ndims = (ndim,) if is_int(ndim) else tuple(ndim)
    if a.ndim not in ndims:
        want = " or ".join(str(d) for d in ndims)
        extra = f" {layout}" if layout else ""
        raise ValueError(f"{name} must be {want}-D{extra}, got shape {tuple(a.shape)}")


def check_shape(a, name, shape):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(a.shape)}")


def check_float(a, name, dtype=None):
    dt = a.dtype if isinstance(a, np.ndarray) else np.dtype(a.dtype)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {dt}")
    if dtype is not None and dt != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)} (like the other inputs), got {dt}")


def check_scalar(value, name, low=None, high=None, low_open=False, high_open=False):
    """A real number within [low, high] (open ends where asked), returned as float."""
    if not is_real(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}, "
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        rng = f"in {lo}{hi}" if low is not None and high is not None else (
            f">{'' if low_open else '='} {low}" if low is not None else f"<{'' if high_open else '='} {high}")
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    return value


def conv_output_size(size, kernel, stride, padding, dilation, name="input", padding_after=None):
    """Output length of a convolution or pooling window along one axis; errors if empty.

    ``padding`` zeros before the input and ``padding_after`` (default: ``padding``) after it.
    """
    if kernel < 1:
        raise ValueError(f"the kernel must be at least 1 wide along every spatial axis, got "
                         f"size {kernel}")
    after = padding if padding_after is None else padding_after
    span = dilation * (kernel - 1) + 1
    if size + padding + after < span:
        pads = f"2*{padding}" if after == padding else f"{padding} + {after}"
        raise ValueError(
            f"kernel (extent {span} with dilation {dilation}) is larger than the padded {name} "
            f"(size {size} + {pads} padding)")
    return (size + padding + after - span) // stride + 1


PADDING_MODES = ("valid", "same", "causal")


def conv_padding(padding, kernel, stride, dilation, name="padding"):
    """``(before, after)``: the zeros a convolution adds on each side of every spatial axis.

    ``padding``: an int or one int per axis (both sides), or a mode: ``"valid"`` (none),
    ``"same"`` (PyTorch's: ``dilation*(k-1)`` in all, the odd one after, so the output keeps
    the input's size; stride 1 only) or ``"causal"`` (1-D only, Keras': ``dilation*(k-1)``
    before and none after, so output t sees inputs <= t). ``kernel``, ``stride`` and
    ``dilation`` are tuples of one int per spatial axis.
    """
    n = len(kernel)
    if type(padding) is str:
        if padding not in PADDING_MODES:
            raise ValueError(f"{name} must be an int, a tuple of ints or one of "
                             f"{', '.join(map(repr, PADDING_MODES))}, got {padding!r}")
        if padding == "valid":
            return (0,) * n, (0,) * n
        if padding == "causal" and n != 1:
            raise ValueError(f"{name}='causal' is for 1-D convolutions (Conv1D, conv1d) only")
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError(f"{name}='same' needs stride 1 (as PyTorch), got stride={stride}")
        total = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
        before = total if padding == "causal" else tuple(t // 2 for t in total)
        return before, tuple(t - b for t, b in zip(total, before))
    both = int_tuple(padding, name, n, 0)
    return both, both


def fused_relu(activation):
    """``activation`` of a kernel with a fused epilogue (None or "relu"), as "apply ReLU"."""
    if activation is None or (type(activation) is str and activation == "relu"):
        return activation is not None
    raise ValueError(f"activation must be None or 'relu' (the fused activations), "
                     f"got {activation!r}")
