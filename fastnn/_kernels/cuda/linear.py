"""Dense layer (CUDA): the tiled register-blocked GEMM of ``_gemm``, bias fused into the store.

Host functions mirror ``fastnn._kernels.cpu.linear``; arrays are C-contiguous device arrays of one
float dtype:

- ``linear(x, w, b)`` -> ``y``: ``x`` (M, in), ``w`` (out, in), ``b`` (out,) or None; ``y`` (M, out)
- ``linear_backward(dy, x, w)`` -> ``(dx, dw, db)``: ``dy`` (M, out); ``dx`` (M, in), ``dw``
  (out, in), ``db`` (out,) (column sums accumulated in float64)
"""
import numpy as np
from numba import cuda

from . import _config as cfg
from ._gemm import matmul
from ._reduce import finish_splits
from .activation import relu_inplace
from ._util import empty, flat


def linear(x, w, b, relu=False):
    y = matmul(x, w, trans_b=True, bias=b, bias_axis=1)
    return relu_inplace(y) if relu else y


@cuda.jit
def _column_sum_partial(a, part, M, N, nsplit):
    """part[s, j] = sum of a[i, j] over rows i of split s (float64); coalesced along j."""
    s = cuda.blockIdx.y
    for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, N,
                   cuda.gridDim.x * cuda.blockDim.x):
        acc = np.float64(0)
        for i in range(s, M, nsplit):
            acc += np.float64(a[i * N + j])
        part[s * N + j] = acc


def column_sum(a):
    """Sum over the rows of the 2-D device array ``a`` (float64 accumulation, ``a``'s dtype)."""
    M, N = a.shape
    out = empty(N, a.dtype)
    if N == 0:
        return out
    gx = max(1, min((N + cfg.TPB - 1) // cfg.TPB, cfg.max_blocks()))
    nsplit = max(1, min(M, cfg.max_blocks() // gx, 64))
    part = empty(nsplit * N, np.float64)
    _column_sum_partial[(gx, nsplit), cfg.TPB](flat(a), part, M, N, nsplit)
    finish_splits[cfg.grid(N), cfg.TPB](part, out, N, nsplit, 1, N)
    return out


def linear_backward(dy, x, w, input_grad=True):
    dx = matmul(dy, w) if input_grad else None
    dw = matmul(dy, x, trans_a=True)
    return dx, dw, column_sum(dy)
