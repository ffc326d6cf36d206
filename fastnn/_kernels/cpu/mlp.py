"""Fused multi-layer-perceptron training: a whole epoch of mini-batch steps in one Numba call.

A small MLP step is a handful of tiny matrix products; calling them from Python costs more than
the arithmetic. These kernels run forward pass, loss, backward pass, L2 penalty and the optimizer
update for every mini-batch of an epoch without returning to Python, with the semantics of
scikit-learn's ``MLPClassifier``/``MLPRegressor`` (weights ``(fan_in, fan_out)``, L2 term
``0.5 * alpha * ||W||^2 / n_batch``, scikit-learn's Adam and Nesterov-SGD updates).

Parameters live in one flat buffer in scikit-learn's packing order: every ``coefs_[i]`` (C order)
and then every ``intercepts_[i]``. ``units`` is ``[n_features, *hidden, n_outputs]``.

Threads: a step cuts its batch into ``row_blocks`` blocks that run forward and backward in one
parallel region, each block's matrix products a single-threaded BLAS call, each block's gradient
in its own buffer; the buffers are summed in block order. The block count follows from the batch
and layer sizes alone, so the result is the same on any machine and with any thread count. The
loops use ``vecmath.vexp``/``vtanh``/``max1d`` (an edit there makes these kernels' cache
entries stale too: ``_cache.sources_digest``).
"""
import collections
import functools

import numpy as np
import scipy.sparse as sp
from numba import prange

from ._jit import jit, specialise
from .vecmath import max1d, vexp, vtanh
from .linear import BLOCK_ROWS
from .optim import adam_serial
from .._optim_rules import adam_constants, build

# A step below this many multiply-adds runs on one thread: measured on 2 cores, a 64-100-10 step
# at batch 200 (4.4M) ran 12 % faster serial, a 64-256-256-10 step (50M) 10 % faster on 2 blocks.
PARALLEL_STEP_MACS = 1 << 24
MAX_ROW_BLOCKS = 8  # a power of two: blocks split evenly over 2, 4 or 8 threads

from .._mlp_codes import (  # noqa: F401  (the codes and layout both backends share)
    ACTIVATION_CODES, ADAM, BINARY_LOG_LOSS, EXP, IDENTITY, LOG_LOSS, LOGISTIC, LOSS_CODES,
    POISSON, RELU, SGD, SOFTMAX, SQUARED, TANH, check_purpose, layout)

# The training data of ``train_epoch``: dense ``x`` (an empty 1x1 array when sparse) or the CSR
# arrays, targets ``y`` (n, n_outputs), weights ``sw`` (a 1-element dummy without weights).
EpochData = collections.namedtuple("EpochData",
                                   "x csr_data csr_indices csr_indptr sparse y sw has_sw")
# Buffers: the gathered batch (``xb``, ``yb``, ``swb``; epochs only), every layer's activations
# and deltas (flat), the per-row-block gradients ``part``; a forward pass needs ``acts`` only
# and runs ``nblocks`` row blocks.
EpochWorkspace = collections.namedtuple("EpochWorkspace", "xb yb swb acts deltas part")
BatchWorkspace = collections.namedtuple("BatchWorkspace", "acts deltas part")
ForwardWorkspace = collections.namedtuple("ForwardWorkspace", "acts nblocks")


@jit
def _view(buf, units, layer, rows):
    off = 0
    for i in range(layer):
        off += rows * units[i]
    return buf[off:off + rows * units[layer]].reshape((rows, units[layer]))


# Names that each compiled copy of a body below binds to its own function or constant
# (``_jit.bind`` / ``specialise``); declared here so that a reader finds them.
HIDDEN = OUTPUT = LOSS = SOLVER = SPARSE = PARALLEL = LOSS_GRAD = None


@jit
def _apply_activation(a, code):
    """In place on a 2-D array ``a`` (rows, units); every loop vectorises (``vexp``, ``vtanh``)."""
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    flat = a.reshape(a.size)
    if code == RELU:
        for i in range(flat.size):
            v = flat[i]
            flat[i] = zero if v < zero else v  # NaN stays NaN, as np.maximum(x, 0)
    elif code == TANH:
        for i in range(flat.size):
            flat[i] = vtanh(flat[i])
    elif code == LOGISTIC:
        for i in range(flat.size):
            v = flat[i]
            e = vexp(-abs(v))  # never overflows
            flat[i] = (one if v >= zero else e) / (one + e)
    elif code == EXP:
        for i in range(flat.size):
            flat[i] = vexp(flat[i])
    elif code == SOFTMAX:
        for r in range(a.shape[0]):
            row = a[r]
            m = max1d(row)
            s = zero
            for j in range(row.size):
                e = vexp(row[j] - m)
                row[j] = e
                s += e
            inv = one / s
            for j in range(row.size):
                row[j] *= inv


@jit
def _apply_derivative(a, delta, code):
    """delta *= f'(z), written in terms of the activation output ``a`` (as scikit-learn does)."""
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    fa = a.reshape(a.size)
    fd = delta.reshape(delta.size)
    if code == RELU:
        for i in range(fd.size):
            fd[i] = zero if fa[i] == zero else fd[i]
    elif code == TANH:
        for i in range(fd.size):
            fd[i] *= one - fa[i] * fa[i]
    elif code == LOGISTIC:
        for i in range(fd.size):
            fd[i] *= fa[i] * (one - fa[i])


@jit
def _forward_rows(x, lo, hi, params, units, w_off, b_off, hidden, output, acts):
    """Forward pass of rows ``lo:hi`` of ``x``; activations go to the same rows of ``acts``."""
    rows = x.shape[0]
    n_layers = units.size - 1
    a = x[lo:hi]
    for i in range(n_layers):
        fan_in, fan_out = units[i], units[i + 1]
        w = params[w_off[i]:w_off[i] + fan_in * fan_out].reshape((fan_in, fan_out))
        b = params[b_off[i]:b_off[i] + fan_out]
        z = _view(acts, units, i + 1, rows)[lo:hi]
        np.dot(a, w, z)
        for r in range(hi - lo):
            for j in range(fan_out):
                z[r, j] += b[j]
        if i < n_layers - 1:  # two calls: a literal code reaches each (see ``specialise``)
            _apply_activation(z, hidden)
        else:
            _apply_activation(z, output)
        a = z
    return a


def _forward_blocks(x, params, units, w_off, b_off, acts, nblocks):
    """Forward pass of ``x`` (rows, n_features) in ``nblocks`` row blocks run in parallel;
    returns the output activations (a view of ``acts``). Specialised on HIDDEN, OUTPUT."""
    rows = x.shape[0]
    for t in prange(nblocks):
        lo = (t * rows) // nblocks
        hi = ((t + 1) * rows) // nblocks
        if hi > lo:
            _forward_rows(x, lo, hi, params, units, w_off, b_off, HIDDEN, OUTPUT, acts)
    return _view(acts, units, units.size - 1, rows)


@jit
def _loss_sum(y, p, sw, has_sw, loss_code, lo):
    """Sum of sample weight times scikit-learn's per-sample loss (float64) for the outputs ``p``
    of rows ``lo:lo + len(p)`` of ``y`` and ``sw``."""
    k = p.shape[1]
    eps = np.finfo(p.dtype).eps
    total = 0.0
    for r in range(p.shape[0]):
        w = float(sw[lo + r]) if has_sw else 1.0
        acc = 0.0
        for j in range(k):
            yv = float(y[lo + r, j])
            pv = float(p[r, j])
            if loss_code == SQUARED:
                acc += (yv - pv) * (yv - pv)
            elif loss_code == POISSON:
                if yv > 0.0:
                    acc += yv * np.log(yv / pv)
                acc += pv - yv
            else:
                pc = min(max(pv, eps), 1.0 - eps)
                if yv != 0.0:
                    acc -= yv * np.log(pc)
                if loss_code == BINARY_LOG_LOSS and yv != 1.0:
                    acc -= (1.0 - yv) * np.log(1.0 - pc)
        total += w * acc
    return total


@jit
def _weight_sum(sw, has_sw, rows):
    if not has_sw:
        return float(rows)
    s = 0.0
    for r in range(rows):
        s += float(sw[r])
    return s


@jit
def _normalise(total, wsum, k, loss_code):
    """scikit-learn's batch loss from the weighted sum of per-sample losses."""
    if loss_code == SQUARED:
        return 0.5 * total / wsum / k
    return total / wsum


@jit
def _loss(y, p, sw, has_sw, loss_code):
    """scikit-learn's loss of one batch (float64)."""
    rows = p.shape[0]
    total = _loss_sum(y, p, sw, has_sw, loss_code, 0)
    return _normalise(total, _weight_sum(sw, has_sw, rows), p.shape[1], loss_code)


@jit
def _backward_rows(x, y, sw, has_sw, lo, hi, params, part, units, w_off, b_off, hidden, acts,
                   deltas):
    """Backward pass of rows ``lo:hi``: unscaled weight and bias gradients of these rows into
    ``part`` (one flat parameter-sized buffer), deltas into the same rows of ``deltas``."""
    rows = x.shape[0]
    n_layers = units.size - 1
    last = n_layers - 1
    p = _view(acts, units, last + 1, rows)[lo:hi]
    delta = _view(deltas, units, last + 1, rows)[lo:hi]
    one = params.dtype.type(1)
    for r in range(hi - lo):
        w = sw[lo + r] if has_sw else one
        for j in range(units[last + 1]):
            delta[r, j] = (p[r, j] - y[lo + r, j]) * w
    for i in range(last, -1, -1):
        fan_in, fan_out = units[i], units[i + 1]
        a_in = x[lo:hi] if i == 0 else _view(acts, units, i, rows)[lo:hi]
        gw = part[w_off[i]:w_off[i] + fan_in * fan_out].reshape((fan_in, fan_out))
        gb = part[b_off[i]:b_off[i] + fan_out]
        np.dot(a_in.T, delta, gw)
        for j in range(fan_out):
            gb[j] = 0
        for r in range(hi - lo):
            for j in range(fan_out):
                gb[j] += delta[r, j]
        if i > 0:
            w = params[w_off[i]:w_off[i] + fan_in * fan_out].reshape((fan_in, fan_out))
            prev = _view(deltas, units, i, rows)[lo:hi]
            np.dot(delta, w.T, prev)
            _apply_derivative(a_in, prev, hidden)
            delta = prev


def _loss_grad_blocks(x, y, sw, has_sw, params, grad, units, w_off, b_off, alpha, acts, deltas,
                      part):
    """Loss (with the L2 term) of a batch and its gradient written into ``grad``; returns the
    loss. Specialised on HIDDEN, OUTPUT, LOSS (see ``loss_grad``)."""
    rows = x.shape[0]
    n_layers = units.size - 1
    nblocks = part.shape[0]
    sums = np.zeros(nblocks)
    for t in prange(nblocks):
        lo = (t * rows) // nblocks
        hi = ((t + 1) * rows) // nblocks
        pt = part[t]
        if hi > lo:
            p = _forward_rows(x, lo, hi, params, units, w_off, b_off, HIDDEN, OUTPUT, acts)
            sums[t] = _loss_sum(y, p, sw, has_sw, LOSS, lo)
            _backward_rows(x, y, sw, has_sw, lo, hi, params, pt, units, w_off, b_off, HIDDEN,
                           acts, deltas)
        else:
            pt[:] = 0
    total = 0.0
    for t in range(nblocks):
        total += sums[t]
    sw_sum = _weight_sum(sw, has_sw, rows)
    loss = _normalise(total, sw_sum, units[n_layers], LOSS)
    dt = params.dtype.type
    inv = dt(1.0 / sw_sum)
    alpha_t = dt(alpha)
    sq = 0.0
    n_weights = b_off[0]  # every coefficient comes before the first intercept
    for q in range(params.size):
        g = part[0, q]
        for t in range(1, nblocks):
            g += part[t, q]
        if q < n_weights:
            wq = params[q]
            sq += float(wq) * float(wq)
            g += alpha_t * wq
        grad[q] = g * inv
    return loss + 0.5 * alpha * sq / sw_sum


@functools.lru_cache(maxsize=None)
def _kernel(body, name, parallel, **codes):
    """``body`` compiled for these codes only (``specialise``): serially, or with its ``prange``
    loop on Numba's threads. With one row block the serial copy runs, so no thread is woken."""
    return specialise(body, name, parallel=parallel, **codes)


def loss_grad(x, y, sw, params, grad, model, alpha, ws):
    """Loss (with L2 penalty) of the whole batch ``x`` and its gradient written into ``grad``;
    returns the loss. ``sw``: sample weights or None; ``ws``: a 'batch' workspace.

    The batch is cut into ``ws.part.shape[0]`` row blocks (a number fixed by the sizes, so results
    do not depend on the thread count) that run forward and backward in parallel, each into its
    own gradient buffer ``part[t]``; the buffers are summed in block order.
    """
    kernel = _kernel(_loss_grad_blocks, "loss_grad", ws.part.shape[0] > 1, HIDDEN=model.hidden,
                     OUTPUT=model.output, LOSS=model.loss_code)
    has_sw = sw is not None
    return kernel(x, y, sw if has_sw else np.ones(1, params.dtype), has_sw, params, grad,
                  model.units, model.w_off, model.b_off, float(alpha), *ws)


def forward(x, params, model, ws, out=None):
    """Output activations of ``x`` in ``ws.nblocks`` row blocks (parallel when more than one):
    a view of the workspace, or ``out`` when given (filled and returned)."""
    kernel = _kernel(_forward_blocks, "forward", ws.nblocks > 1, HIDDEN=model.hidden,
                     OUTPUT=model.output)
    p = kernel(x, params, model.units, model.w_off, model.b_off, ws.acts, ws.nblocks)
    if out is None:
        return p
    out[...] = p
    return out


def batch_loss(y, p, sw, loss_code):
    """scikit-learn's loss (no L2 term) of outputs ``p`` against ``y`` (float; ``sw`` or None)."""
    has_sw = sw is not None
    return float(_loss(y, p, sw.astype(p.dtype) if has_sw else np.ones(1, p.dtype), has_sw,
                       int(loss_code)))


def row_blocks(rows, units, passes=3):
    """Row blocks for ``rows`` samples: 1 when the work is too small to pay for waking threads,
    else the largest power of two up to ``MAX_ROW_BLOCKS`` that leaves each block ``BLOCK_ROWS``
    rows. Sizes alone decide it (never the cores or threads), so the sums' order is fixed.
    ``passes``: matrix products per layer (a training step makes 3, a forward pass 1)."""
    sizes = [int(u) for u in units]
    macs = passes * int(rows) * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if macs < PARALLEL_STEP_MACS:
        return 1
    n = max(1, min(int(rows) // BLOCK_ROWS, MAX_ROW_BLOCKS))
    return 1 << (n.bit_length() - 1)


@jit
def _gather_csr(data, indices, indptr, order, start, rows, out):
    zero = out.dtype.type(0)
    for r in range(rows):
        for j in range(out.shape[1]):
            out[r, j] = zero
        src = order[start + r]
        for q in range(indptr[src], indptr[src + 1]):
            out[r, indices[q]] += data[q]


@jit
def _gather_rows(a, order, start, rows, out):
    """out[r] = a[order[start + r]] for r < rows (dense inputs, targets)."""
    for r in range(rows):
        src = order[start + r]
        for j in range(a.shape[1]):
            out[r, j] = a[src, j]


# scikit-learn's SGD element update (``_optim_rules.build``), inlined into ``_sgd_update``
_sklearn_sgd_at = build(lambda f: jit(f, inline="always"), np.sqrt)[-1]


@jit
def _sgd_update(params, grad, velocity, lr, momentum, nesterov):
    """scikit-learn's SGD over every element (``_optim_rules``' ``sklearn_sgd_at``)."""
    for q in range(params.size):
        _sklearn_sgd_at(q, params, grad, velocity, lr, momentum, nesterov)


_sklearn_adam_constants = jit(adam_constants, inline="always")


@jit
def _adam_update(params, grad, m, v, t, lr, h):
    """scikit-learn's Adam (``adam_constants`` with its epsilon) for step ``t``."""
    dt = params.dtype.type
    coupled, wd, decay, b1, omb1, b2, omb2, bc2_sqrt, step_size, eps = _sklearn_adam_constants(
        t, lr, h.beta1, h.beta2, h.epsilon, 0.0, False, True)
    adam_serial(params, grad, m, v, (coupled, dt(wd), dt(decay), dt(b1), dt(omb1), dt(b2),
                                     dt(omb2), dt(bc2_sqrt), dt(step_size), dt(eps)))


def _train_epoch(data, order, batch_size, params, grad, shape, h, lr, t, moments, ws):
    """One epoch; specialised on SPARSE, SOLVER and the LOSS_GRAD kernel of its codes.
    ``shape``: the model's ``(units, w_off, b_off)``."""
    units, w_off, b_off = shape
    n = order.size
    total = 0.0
    for start in range(0, n, batch_size):
        rows = min(batch_size, n - start)
        xr = ws.xb[:rows]
        if SPARSE:
            _gather_csr(data.csr_data, data.csr_indices, data.csr_indptr, order, start, rows, xr)
        else:
            _gather_rows(data.x, order, start, rows, xr)
        yr = ws.yb[:rows]
        _gather_rows(data.y, order, start, rows, yr)
        swr = ws.swb[:rows]
        if data.has_sw:
            for r in range(rows):
                swr[r] = data.sw[order[start + r]]
        loss = LOSS_GRAD(xr, yr, swr, data.has_sw, params, grad, units, w_off, b_off, h.alpha,
                         ws.acts, ws.deltas, ws.part)
        total += loss * rows
        if SOLVER == ADAM:
            t += 1
            _adam_update(params, grad, moments[0], moments[1], t, lr, h)
        else:
            _sgd_update(params, grad, moments[0], params.dtype.type(lr),
                        params.dtype.type(h.momentum), h.nesterov)
    return total, t


def epoch_data(X, y, sw, dtype):
    """``EpochData`` of a fit: X as it is (dense, or CSR with int64 indices), y and the weights of
    the model dtype."""
    if sp.issparse(X):
        x, csr = np.zeros((1, 1), dtype), (X.data, X.indices.astype(np.int64),
                                          X.indptr.astype(np.int64), True)
    else:
        x, csr = X, (np.zeros(0, dtype), np.zeros(0, np.int64), np.zeros(1, np.int64), False)
    has_sw = sw is not None
    return EpochData(x, *csr, y, sw.astype(dtype) if has_sw else np.ones(1, dtype), has_sw)


def workspace(model, rows, dtype, purpose):
    """Every buffer for batches of up to ``rows`` samples of ``purpose`` ('epoch', 'batch' or
    'forward'), allocated once."""
    check_purpose(purpose)
    rows = int(rows)
    acts = np.empty(rows * model.n_units, dtype)
    if purpose == "forward":
        return ForwardWorkspace(acts, row_blocks(rows, model.units, passes=1))
    deltas = np.empty(rows * model.n_units, dtype)
    part = np.empty((row_blocks(rows, model.units), model.size), dtype)
    if purpose == "batch":
        return BatchWorkspace(acts, deltas, part)
    units = model.units
    return EpochWorkspace(np.empty((rows, units[0]), dtype), np.empty((rows, units[-1]), dtype),
                          np.empty(rows, dtype), acts, deltas, part)


def train_epoch(data, order, batch_size, params, grad, model, hyper, lr, t, moments, ws):
    """One epoch of mini-batch training over the samples ``order`` (int64), updating ``params``
    and ``moments`` (Adam's two moments, or SGD's velocity twice) in place.

    Returns ``(t, sum of batch_loss * batch_rows)``. Compiles only the paths these codes run (one
    activation pair, loss, solver, serial or parallel, dense or sparse).
    """
    codes = dict(HIDDEN=int(model.hidden), OUTPUT=int(model.output), LOSS=int(model.loss_code))
    parallel = ws.part.shape[0] > 1
    # the serial step is inlined into the epoch: one compiled module less on a first call
    step = specialise(_loss_grad_blocks, "loss_grad" if parallel else "loss_grad_inline",
                      parallel=parallel, inline="never" if parallel else "always", **codes)
    kernel = specialise(_train_epoch, "train_epoch", calls={"LOSS_GRAD": step},
                        PARALLEL=parallel, SPARSE=bool(data.sparse), SOLVER=int(hyper.solver),
                        **codes)
    total, t = kernel(data, order, int(batch_size), params, grad,
                      (model.units, model.w_off, model.b_off), hyper, float(lr), int(t),
                      moments, ws)
    return t, total
