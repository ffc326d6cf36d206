"""Dense (fully connected) layer on the CPU: BLAS matrix products through NumPy.

Host functions (the CUDA twin has the same names and signatures); arrays are validated,
C-contiguous and of one float dtype:

- ``linear(x, w, b)`` -> ``y``: ``x`` (M, in), ``w`` (out, in), ``b`` (out,) or None; ``y`` (M, out)
- ``linear_backward(dy, x, w)`` -> ``(dx, dw, db)``: ``dy`` (M, out); ``dx`` (M, in), ``dw``
  (out, in), ``db`` (out,)
"""
import numpy as np


def linear(x, w, b):
    y = np.matmul(x, w.T)
    if b is not None:
        y += b
    return y


def linear_backward(dy, x, w):
    dx = np.matmul(dy, w)
    dw = np.matmul(dy.T, x)
    # float64 accumulation: a float32 column sum over a large batch would lose digits.
    db = dy.sum(axis=0, dtype=np.float64).astype(dy.dtype)
    return dx, dw, db
