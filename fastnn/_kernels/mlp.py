"""The fused MLP kernels of the estimators (kernel API): a whole epoch of mini-batch training, the
loss and gradient of one batch (L-BFGS's objective), the forward pass and, on the GPU, the
validation pass.

NumPy arrays run on the CPU (``cpu/mlp.py``), CUDA device arrays on the GPU (``cuda/mlp.py``);
both follow scikit-learn's ``MLPClassifier``/``MLPRegressor`` and share the codes and the flat
parameter layout of ``_mlp_codes``. A fit groups its arguments once:

- ``model(units, hidden, output, loss_code)``: the layer sizes, the layout and the codes;
- ``hyper(alpha, solver, momentum, nesterov, beta1, beta2, epsilon)``: the solver's constants;
- ``epoch_data(X, y, sw, device)``: the training data as the backend reads it (the GPU gets a
  copy; sparse X stays CSR on the CPU and is densified once for the GPU);
- ``epoch_workspace(units, batch_size, dtype, device)``: every buffer of a step, made once.

The sizes of the parameters, the gradient and the optimizer state are checked here, before any
kernel runs (a model file may come from a stranger).
"""
import collections
import functools
import threading

import numpy as np
import scipy.sparse as sp

from ._dispatch import backend, device_backend
from ._mlp_codes import (  # noqa: F401  (re-exported: the estimators name codes through here)
    ACTIVATION_CODES, ADAM, EPOCH_LOSS, LOSS_CODES, SGD, VAL_BAD, VAL_CORRECT, VAL_LOSS, VAL_SSE,
    layout)

Model = collections.namedtuple("Model",
                               "units w_off b_off hidden output loss_code size n_units macs")
Hyper = collections.namedtuple("Hyper", "alpha solver momentum nesterov beta1 beta2 epsilon")


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
    """The training data of ``train_epoch``: X (dense or CSR), y (n, n_outputs), weights or None."""
    if device == "cuda":
        from numba import cuda
        host_sw = None if sw is None else sw.astype(dtype)
        return dict(x=cuda.to_device(dense(X, dtype)),
                    y=cuda.to_device(np.ascontiguousarray(y, dtype=dtype)),
                    sw=None if sw is None else cuda.to_device(host_sw),
                    # each batch's weight sum: float64 of the model-dtype weights, as on the CPU
                    sw64=None if sw is None else host_sw.astype(np.float64),
                    order=cuda.device_array(X.shape[0], np.int64))
    if sp.issparse(X):
        args = (np.zeros((1, 1), dtype), X.data, X.indices.astype(np.int64),
                X.indptr.astype(np.int64), True)
    else:
        args = (X, np.zeros(0, dtype), np.zeros(0, np.int64), np.zeros(1, np.int64), False)
    has_sw = sw is not None
    return args + (y, sw.astype(dtype) if has_sw else np.ones(1, dtype), has_sw)


def epoch_workspace(m, batch_size, dtype, device):
    """Every buffer a training step needs, for batches of up to ``batch_size`` rows."""
    impl = _impl(device)
    if device == "cuda":
        return impl.workspace(tuple(int(u) for u in m.units), batch_size, np.dtype(dtype))
    acts, deltas = impl.workspace(m.units, batch_size, dtype)
    return (np.empty((batch_size, m.units[0]), dtype), np.empty((batch_size, m.units[-1]), dtype),
            np.empty(batch_size, dtype), acts, deltas, impl.grad_blocks(m.units, batch_size, dtype))


def train_epoch(data, order, batch_size, params, grad, m, h, lr, t, moments, ws):
    """One epoch of mini-batches over the samples ``order`` (int64), updating ``params`` and the
    optimizer state ``moments`` (Adam's two moments, or SGD's velocity) in place.

    Returns ``(t, loss_sum)``: Adam's step count and the sum of ``batch_loss * batch_rows``. On
    the GPU ``loss_sum`` is None: it stays in the workspace until ``read_stats`` (one copy per
    epoch), and ``params``, ``grad``, ``moments`` are device arrays.
    """
    state2 = moments[1] if h.solver == ADAM else moments[0]
    check_sizes(m, params, grad, moments[0], state2)
    core = (batch_size, params, grad, m.units, m.w_off, m.b_off, m.hidden, m.output,
            m.loss_code, h.alpha, h.solver, float(lr), h.momentum, h.nesterov, h.beta1, h.beta2,
            h.epsilon, int(t), moments[0], state2)
    if isinstance(data, dict):
        order = np.ascontiguousarray(order, dtype=np.int64)
        data["order"].copy_to_device(order)
        sums = (None if data["sw"] is None
                else np.add.reduceat(data["sw64"][order], np.arange(0, order.size, batch_size)))
        t = _impl("cuda").train_epoch(data["x"], data["y"], data["sw"], sums, data["order"],
                                      *core, ws)
        return t, None
    total, t = _impl("cpu").train_epoch(*data[:-3], *data[-3:], order, *core, *ws)
    return t, total


def loss_grad(x, y, sw, params, grad, m, alpha, ws, sw_sum=None):
    """Loss (with the L2 term) of the whole batch ``x`` and its gradient written into ``grad``.

    ``sw``: sample weights or None. CPU: NumPy arrays, ``ws`` from ``batch_workspace``; GPU:
    device arrays, ``ws`` from ``device_workspace(..., gather=False)``, ``sw_sum`` the float64
    sum of the weights (read back from the device when not given).
    """
    check_sizes(m, params, grad)
    be = backend(params)
    impl = be.impl("mlp")
    if be.name == "cpu":
        has_sw = sw is not None
        sw = sw if has_sw else np.ones(1, params.dtype)
        return impl.loss_grad(x, y, sw, has_sw, params, grad, m.units, m.w_off, m.b_off,
                              m.hidden, m.output, m.loss_code, float(alpha), *ws)
    if sw is None:
        sw_sum = float(x.shape[0])
    elif sw_sum is None:
        sw_sum = float(np.sum(sw.copy_to_host(), dtype=np.float64))
    return impl.loss_grad(x, y, sw, sw_sum, params, grad, m.units, m.w_off, m.b_off, m.hidden,
                          m.output, m.loss_code, float(alpha), ws)


def batch_workspace(m, rows, dtype):
    """CPU buffers of ``loss_grad`` for ``rows`` samples passed whole."""
    impl = _impl("cpu")
    acts, deltas = impl.workspace(m.units, rows, dtype)
    return acts, deltas, impl.grad_blocks(m.units, rows, dtype)


def device_workspace(m, rows, dtype, gather=True, train=True):
    """GPU buffers for batches of up to ``rows`` samples (``cuda/mlp.workspace``)."""
    return _impl("cuda").workspace(tuple(int(u) for u in m.units), rows, np.dtype(dtype),
                                   gather, train)


_forward_buffers = threading.local()


def forward_rows(m, rows, dtype):
    """CPU buffers and row-block count of ``forward`` for chunks of up to ``rows`` samples.

    The buffers are kept for the next call of this thread with the same sizes (a ``predict``
    that allocated and freed megabytes each call spent more time in page faults and unmapping
    than in arithmetic), so copy ``forward``'s output before the thread calls it again."""
    kept = getattr(_forward_buffers, "kept", None)
    if kept is not None and kept[0] is m and kept[1] == rows and kept[2] == dtype:
        return kept[3]
    impl = _impl("cpu")
    acts, _ = impl.workspace(m.units, rows, dtype)
    ws = (acts, impl.row_blocks(rows, m.units, passes=1))
    _forward_buffers.kept = (m, rows, dtype, ws)
    return ws


def forward(x, params, m, ws):
    """Output activations of ``x`` (CPU: one chunk, ``ws`` from ``forward_rows``; GPU: all of
    ``x`` in chunks of the workspace's rows, returned as a device array)."""
    check_sizes(m, params)
    if x.shape[1] != m.units[0]:
        raise ValueError(f"X has {x.shape[1]} features, but the model expects {m.units[0]}")
    be = backend(params)
    impl = be.impl("mlp")
    if be.name == "cpu":
        return impl.forward(x, params, m.units, m.w_off, m.b_off, m.hidden, m.output, *ws)
    return impl.forward(x, params, m.units, m.w_off, m.b_off, m.hidden, m.output, ws)


def batch_loss(y, p, sw, loss_code):
    """scikit-learn's loss (no L2 term) of outputs ``p`` against ``y`` on the CPU, as float."""
    has_sw = sw is not None
    sw = sw.astype(p.dtype) if has_sw else np.ones(1, p.dtype)
    return float(_impl("cpu")._loss(np.ascontiguousarray(y, dtype=p.dtype), p, sw, has_sw,
                                    int(loss_code)))


def validation(v, params, m, stats):
    """The GPU validation pass (``cuda/mlp.validation``) into the float64 device ``stats``."""
    _impl("cuda").validation(v["x"], v["y"], v["sw"], v["sw_sum"], v["sw64"], params, m.units,
                             m.w_off, m.b_off, m.hidden, m.output, m.loss_code, v["task"],
                             v["ws"], stats=stats)


def read_stats(ws):
    """The GPU workspace's float64 ``stats`` on the host (one copy); slots ``EPOCH_LOSS`` ..."""
    return _impl("cuda").read_stats(ws)
