"""The inputs of ``fit``, ``evaluate`` and ``predict``: checks and dtypes, the validation split, the
device the data lives on, and the scope in which batches reuse their buffers."""
import functools
import math

import numpy as np

from .. import kernels as K
from . import _array
from . import losses as _losses
from .._kernels._validate import is_int


def _all_finite(flat):
    return flat is None or math.isfinite(_array.sum_squares(flat.data))


def _reusing_buffers(fn):
    """Run ``fn`` inside ``fastnn.kernels.reuse_buffers()``: each batch reuses the arrays of the
    batch before it that nobody holds any more, so the steady state allocates nothing."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with K.reuse_buffers():
            return fn(*args, **kwargs)
    return run


def _float_dtype(model, x):
    dtype = getattr(model, "dtype", None) if getattr(model, "built", False) else None
    if dtype is None:
        given = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
        dtype = np.float64 if given == np.float64 else np.float32
    return np.dtype(dtype)


def _input_dtype(model, dtype):
    """The dtype ``x`` is given to ``model`` in: the float ``dtype``, or int64 when the model's
    first layer takes integer codes (an Embedding: ``Layer._input_kinds``)."""
    return dtype if "f" in getattr(model, "_input_kinds", "f") else np.dtype(np.int64)


def _codes(x, name):
    """``x`` as int64 codes: integers, or floats that all hold whole numbers."""
    return codes(x, f"{name} (the model starts with an Embedding)")


def codes(x, what):
    """The host array ``x`` as int64 codes: integers, or floats that all hold whole numbers
    (what a ``ColumnTransformer``'s ``OrdinalEncoder`` columns are); else a TypeError."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not (np.isfinite(x).all() and (np.floor(x) == x).all()):
            raise TypeError(f"{what} must hold integer codes; got floats that are not whole "
                            "numbers (encode the categories first, e.g. with OrdinalEncoder)")
        return np.ascontiguousarray(x, dtype=np.int64)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{what} must hold integer codes, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.int64)


def _prepare(x, y, loss_fn, dtype, sample_weight, name="x", x_dtype=None):
    """Host arrays, checked: x (N, ...) of ``x_dtype`` (default ``dtype``; int64: codes, see
    ``_codes``), targets, float64 sample weights."""
    if x_dtype is not None and np.dtype(x_dtype).kind in "iu":
        x = _codes(_array.to_host(x), name)
    else:
        x = np.ascontiguousarray(_array.to_host(x), dtype=dtype)
    y = _array.to_host(y)
    if x.ndim < 2:
        raise ValueError(f"{name} must be at least 2-D (N, features...), got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"{name} has no samples")
    prepare = getattr(loss_fn, "prepare_target", None)
    y = prepare(y, dtype) if prepare is not None else np.ascontiguousarray(y)
    if len(y) != n:
        raise ValueError(f"{name} has {n} samples but its targets have {len(y)}")
    if sample_weight is not None:
        sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {sample_weight.shape}")
        if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
            raise ValueError("sample_weight must hold finite, non-negative values")
    return x, y, sample_weight


def _check_int(value, name, minimum):
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _loss_of(loss):
    return _losses.get(loss) if isinstance(loss, (str, type)) else loss


# --- devices -------------------------------------------------------------------------------------

def _model_device(model):
    return getattr(model, "device", "cpu")


def _fits_on_device(nbytes):
    """Whether ``nbytes`` of data may stay on the GPU: at most half of its free memory."""
    try:
        from numba import cuda
        free, _ = cuda.current_context().get_memory_info()
    except Exception:  # the simulator, or a driver without the query
        return True
    return nbytes <= free // 2


def _on_device(device, *arrays):
    """``arrays`` (host, or None) moved to ``device`` once, and whether they now live there.

    On 'cuda' they move only when they fit (``_fits_on_device``); otherwise they stay on the
    host and batches move one at a time (``_batch_to``).
    """
    if device == "cpu":
        return arrays, True
    nbytes = sum(a.nbytes for a in arrays if a is not None and not _array.is_cuda_array(a))
    if not _fits_on_device(nbytes):
        return arrays, False
    return _batch_to(device, *arrays), True


def _batch_to(device, *arrays):
    """Host batches moved to ``device`` (no copy when they are there already)."""
    if device == "cpu":
        return arrays
    return tuple(None if a is None else _array.move(a, device) for a in arrays)


def _split_validation(x, y, sample_weight, loss_fn, dtype, validation_data, validation_split,
                      split_seed, x_dtype=None):
    """The training arrays and the validation set ``(x, y, weights)`` or None."""
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, "
                             "sample_weight_val)")
        sw_val = validation_data[2] if len(validation_data) == 3 else None
        val = _prepare(validation_data[0], validation_data[1], loss_fn, dtype, sw_val, "x_val",
                       x_dtype)
    elif validation_split:
        n_val = int(math.ceil(len(x) * float(validation_split)))
        if n_val >= len(x):
            raise ValueError("validation_split leaves no training samples")
        perm = np.random.default_rng(split_seed).permutation(len(x))
        vi, ti = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        val = (x[vi], y[vi], None if sample_weight is None else sample_weight[vi])
        x, y = x[ti], y[ti]
        sample_weight = None if sample_weight is None else sample_weight[ti]
    return x, y, sample_weight, val
