"""The CUDA backend's array normalisation (device arrays in, device arrays out)."""
import numpy as np

from .._dispatch import is_cuda_array, resolve_device
from .._validate import check_float, check_ndim


class CUDABackend:
    name = "cuda"

    def __init__(self):
        resolve_device("cuda")

    @staticmethod
    def impl(family):
        import importlib
        return importlib.import_module(f"fastnn._kernels.cuda.{family}")

    @staticmethod
    def _device(a, name):
        from numba import cuda
        if is_cuda_array(a):
            d = cuda.as_cuda_array(a)
        else:
            d = cuda.to_device(np.ascontiguousarray(np.asarray(a)))
        if not d.is_c_contiguous():
            raise ValueError(f"{name} must be a C-contiguous device array")
        return d

    def float_array(self, a, name, ndim=None, dtype=None, layout=None):
        d = self._device(a, name)
        check_float(d, name, dtype)
        if ndim is not None:
            check_ndim(d, name, ndim, layout)
        return d

    def int_array(self, a, name, ndim=None):
        if not is_cuda_array(a):
            a = np.asarray(a)
            if a.dtype.kind not in "iu":
                raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
            a = a.astype(np.int64)
        d = self._device(a, name)
        if np.dtype(d.dtype).kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {d.dtype}")
        if ndim is not None:
            check_ndim(d, name, ndim)
        return d

    def inplace_array(self, a, name, dtype=None, shape=None):
        if not is_cuda_array(a):
            raise TypeError(f"{name} is updated in place on the GPU and must be a CUDA array, "
                            f"got {type(a).__name__}")
        d = self._device(a, name)
        check_float(d, name, dtype)
        if shape is not None and tuple(d.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(d.shape)}")
        return d
