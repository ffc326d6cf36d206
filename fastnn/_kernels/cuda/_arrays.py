"""The CUDA backend's array normalisation (device arrays in, device arrays out).

CUDA arrays (numba device arrays, or anything exposing ``__cuda_array_interface__``: CuPy, PyTorch
CUDA tensors) are wrapped without a copy when C-contiguous; non-contiguous ones are copied into a
contiguous device array on the device; integer labels of another integer type are cast to int64
on the device. Host (NumPy) inputs are copied to the device.
"""
import numpy as np

from .._device import is_cuda_array
from .._validate import check_float, check_ndim


def is_device_array(a):
    """A CUDA array: ``__cuda_array_interface__``, or a simulator device array."""
    return is_cuda_array(a) or bool(getattr(a, "__cuda_ndarray__", False))


def _as_device(a):
    from numba import cuda
    if getattr(a, "__cuda_ndarray__", False):   # numba device array (or the simulator's)
        return a
    return cuda.as_cuda_array(a)


def _simulator_array(d):
    """The simulator's device arrays refuse negative indices into ``shape`` (``x.shape[-1]``);
    give the wrappers one whose shape is a plain tuple, as on hardware."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    class SimulatedDeviceArray(FakeCUDAArray):
        @property
        def shape(self):
            return tuple(self._ary.shape)

    global _simulator_array
    _simulator_array = lambda a: a if type(a) is SimulatedDeviceArray else SimulatedDeviceArray(a._ary)  # noqa: E731
    return _simulator_array(d)


def contiguous(d):
    """``d`` itself when C-contiguous, else a C-contiguous device copy of it."""
    from ._config import SIMULATOR
    if SIMULATOR:
        if not d.is_c_contiguous():
            from ._util import to_device
            d = to_device(d.copy_to_host())
        return _simulator_array(d)
    if d.is_c_contiguous():
        return d
    from ._util import gather_strided
    return gather_strided(d)


class CUDABackend:
    """Made once per process by ``_dispatch``, after it checked that a usable GPU is there."""

    name = "cuda"

    @staticmethod
    def impl(family):
        import importlib
        return importlib.import_module(f"fastnn._kernels.cuda.{family}")

    @staticmethod
    def _device(a, name):
        """A C-contiguous device array for ``a`` (no copy when it already is one)."""
        from ._util import to_device
        if is_device_array(a):
            return contiguous(_as_device(a))
        return contiguous(to_device(np.asarray(a)))

    def float_array(self, a, name, ndim=None, dtype=None, layout=None):
        """A C-contiguous float32/float64 device array; dtype must match ``dtype`` if given."""
        if not is_device_array(a):
            a = np.asarray(a)
            check_float(a, name, dtype)
            if ndim is not None:
                check_ndim(a, name, ndim, layout)
            return self._device(a, name)
        d = _as_device(a)
        check_float(d, name, dtype)
        if ndim is not None:
            check_ndim(d, name, ndim, layout)
        return contiguous(d)

    def int_array(self, a, name, ndim=None):
        """A C-contiguous int64 device array of integer values (labels, indices)."""
        if not is_device_array(a):
            a = np.asarray(a)
            if a.dtype.kind not in "iu":
                raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
            if ndim is not None:
                check_ndim(a, name, ndim)
            return self._device(a.astype(np.int64, copy=False), name)
        d = _as_device(a)
        if np.dtype(d.dtype).kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {d.dtype}")
        if ndim is not None:
            check_ndim(d, name, ndim)
        d = contiguous(d)
        if np.dtype(d.dtype) != np.int64:
            from ._util import cast
            d = cast(d, np.int64)
        return d

    def inplace_array(self, a, name, dtype=None, shape=None):
        """An array updated in place: must already be a C-contiguous float CUDA array."""
        if not is_device_array(a):
            raise TypeError(f"{name} is updated in place on the GPU and must be a CUDA array, "
                            f"got {type(a).__name__}")
        d = _as_device(a)
        check_float(d, name, dtype)
        if shape is not None and tuple(d.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(d.shape)}")
        if not d.is_c_contiguous():
            raise ValueError(f"{name} must be C-contiguous to be updated in place")
        return contiguous(d)
