"""The fused MLP kernels of the estimators (kernel API): a whole epoch of mini-batch training, the
loss and gradient of one batch (L-BFGS's objective), the forward pass and, on the GPU, the
validation pass.

NumPy arrays run on the CPU (``cpu/mlp.py``), CUDA device arrays on the GPU (``cuda/mlp.py``);
both follow scikit-learn's ``MLPClassifier``/``MLPRegressor``, share the codes and the flat
parameter layout of ``_mlp_codes`` and offer the same functions with the same parameters, so
this module passes each call on without asking which device it has. A fit groups its arguments
in a few named structures, made once:

- ``model(units, hidden, output, loss_code)``: the layer sizes, the layout and the codes;
- ``hyper(alpha, solver, momentum, nesterov, beta1, beta2, epsilon)``: the solver's constants;
- ``epoch_data(X, y, sw, dtype, device)``: the training data as the backend reads it (the GPU gets
  a copy; sparse X stays CSR on the CPU and is densified once for the GPU);
- ``workspace(model, rows, dtype, purpose, device)``: every buffer of an epoch, a batch or a
  forward pass.

The sizes of the parameters, the gradient and the optimizer state are checked here, before any
kernel runs (a model file may come from a stranger).
"""
import functools
import threading

import numpy as np
import scipy.sparse as sp

from ._dispatch import backend, device_backend
from ._mlp_codes import (  # noqa: F401  (re-exported: the estimators name codes through here)
    ACTIVATION_CODES, ADAM, EPOCH_LOSS, LOSS_CODES, SGD, VAL_BAD, VAL_CORRECT, VAL_LOSS, VAL_SSE,
    Hyper, Model, layout)


def _impl(device):
    return device_backend(device).impl("mlp")


def model(units, hidden, output, loss_code):
    """The layer sizes (int64), the layout of the flat parameters and the codes of one model
    (made once per set of sizes and codes, and shared: a ``predict`` of one row should not pay
    for it; nothing writes to these arrays)."""
    return _model(tuple(int(u) for u in units), int(hidden), int(output), int(loss_code))


@functools.lru_cache(maxsize=64)
def _model(units, hidden, output, loss_code):
    units = np.asarray(units, dtype=np.int64)
    w_off, b_off, size = layout(units)
    macs = int(np.sum(units[:-1] * units[1:]))  # multiply-adds of one row's forward pass
    return Model(units, w_off, b_off, hidden, output, loss_code, size, int(units.sum()), macs)


def hyper(alpha, solver, momentum, nesterov, beta1, beta2, epsilon):
    """The solver's constants as plain Python scalars (``solver``: 'adam' or 'sgd')."""
    return Hyper(float(alpha), ADAM if solver == "adam" else SGD, float(momentum),
                 bool(nesterov), float(beta1), float(beta2), float(epsilon))


def check_sizes(m, params, grad=None, *moments):
    """Every buffer holds ``m.size`` values: else a ValueError, before any kernel reads them."""
    for name, a in (("parameters", params), ("gradient", grad)):
        if a is not None and tuple(a.shape) != (m.size,):
            raise ValueError(f"the {name} ({tuple(a.shape)}) do not match the {m.size} "
                             "parameters of the model (a corrupted or foreign file?)")
    for a in moments:
        if tuple(a.shape) != (m.size,):
            raise ValueError(f"the optimizer state does not match the {m.size} parameters of "
                             "the model (a corrupted or foreign file?)")


def dense(X, dtype):
    """A C-contiguous dense array of ``dtype`` (sparse X densified on the host)."""
    return np.ascontiguousarray(X.toarray() if sp.issparse(X) else X, dtype=dtype)


def epoch_data(X, y, sw, dtype, device):
    """The training data of ``train_epoch`` on ``device``: X (dense or CSR), y (n, n_outputs),
    sample weights or None."""
    return _impl(device).epoch_data(X, y, sw, np.dtype(dtype))


def workspace(m, rows, dtype, purpose, device):
    """Every buffer for batches of up to ``rows`` samples on ``device``: ``purpose`` 'epoch'
    (``train_epoch``), 'batch' (``loss_grad``, inputs passed whole) or 'forward' (``forward``;
    on the GPU also ``validation``)."""
    return _impl(device).workspace(m, max(1, int(rows)), np.dtype(dtype), purpose)


def train_epoch(data, order, batch_size, params, grad, m, h, lr, t, moments, ws):
    """One epoch of mini-batches over the samples ``order`` (int64), updating ``params`` and the
    optimizer state ``moments`` (Adam's two moments, or SGD's velocity) in place.

    Returns ``(t, loss_sum)``: Adam's step count and the sum of ``batch_loss * batch_rows``. On
    the GPU ``loss_sum`` is None: it stays in the workspace until ``read_stats`` (one copy per
    epoch), and ``params``, ``grad``, ``moments`` are device arrays.
    """
    moments = (moments[0], moments[1] if h.solver == ADAM else moments[0])
    check_sizes(m, params, grad, *moments)
    return backend(params).impl("mlp").train_epoch(data, order, int(batch_size), params, grad, m,
                                                   h, float(lr), int(t), moments, ws)


def loss_grad(x, y, sw, params, grad, m, alpha, ws):
    """Loss (with the L2 term) of the whole batch ``x`` and its gradient written into ``grad``.

    ``sw``: sample weights or None; ``ws``: a 'batch' workspace of ``len(x)`` rows. Arrays are
    NumPy arrays (CPU) or device arrays (GPU: the loss is copied back, ``grad`` stays).
    """
    check_sizes(m, params, grad)
    return backend(params).impl("mlp").loss_grad(x, y, sw, params, grad, m, float(alpha), ws)


_forward_buffers = threading.local()


def forward_rows(m, rows, dtype):
    """CPU buffers and row-block count of ``forward`` for chunks of up to ``rows`` samples.

    The buffers are kept for the next call of this thread with the same sizes (a ``predict``
    that allocated and freed megabytes each call spent more time in page faults and unmapping
    than in arithmetic), so copy ``forward``'s output before the thread calls it again."""
    kept = getattr(_forward_buffers, "kept", None)
    if kept is not None and kept[0] is m and kept[1] == rows and kept[2] == dtype:
        return kept[3]
    ws = workspace(m, rows, dtype, "forward", "cpu")
    _forward_buffers.kept = (m, rows, dtype, ws)
    return ws


def forward(x, params, m, ws, out=None):
    """Output activations of ``x`` (CPU: one chunk, ``ws`` from ``forward_rows``, a view of it
    unless ``out`` is given; GPU: all of ``x`` in chunks of the workspace's rows, into ``out`` or a
    new device array)."""
    check_sizes(m, params)
    if x.shape[1] != m.units[0]:
        raise ValueError(f"X has {x.shape[1]} features, but the model expects {m.units[0]}")
    return backend(params).impl("mlp").forward(x, params, m, ws, out)


def batch_loss(y, p, sw, loss_code):
    """scikit-learn's loss (no L2 term) of outputs ``p`` against ``y`` on the CPU, as float."""
    return _impl("cpu").batch_loss(np.ascontiguousarray(y, dtype=p.dtype), p, sw, loss_code)


def validation_data(X, y, sw, task, m, dtype):
    """A validation set on the GPU (``cuda/mlp.validation_data``)."""
    return _impl("cuda").validation_data(X, y, sw, task, m, np.dtype(dtype))


def validation(v, params, m, stats):
    """The GPU validation pass (``cuda/mlp.validation``) into the float64 device ``stats``."""
    _impl("cuda").validation(v, params, m, stats=stats)


def read_stats(ws):
    """The GPU workspace's float64 ``stats`` on the host (one copy); slots ``EPOCH_LOSS`` ..."""
    return _impl("cuda").read_stats(ws)
