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
import functools

import numpy as np
from numba import prange

from ._jit import jit, specialise
from .vecmath import max1d, vexp, vtanh
from .linear import BLOCK_ROWS

# A step below this many multiply-adds runs on one thread: measured on 2 cores, a 64-100-10 step
# at batch 200 (4.4M) ran 12 % faster serial, a 64-256-256-10 step (50M) 10 % faster on 2 blocks.
PARALLEL_STEP_MACS = 1 << 24
MAX_ROW_BLOCKS = 8  # a power of two: blocks split evenly over 2, 4 or 8 threads
from .optim import _adam_serial

from .._mlp_codes import (  # noqa: F401  (the codes and layout both backends share)
    ACTIVATION_CODES, ADAM, BINARY_LOG_LOSS, EXP, IDENTITY, LOG_LOSS, LOGISTIC, LOSS_CODES,
    POISSON, RELU, SGD, SOFTMAX, SQUARED, TANH, layout)


def workspace(units, rows, dtype):
    """Activation and delta buffers for ``rows`` samples (one flat array each)."""
    total = int(rows) * sum(int(u) for u in units)
    return np.empty(total, dtype), np.empty(total, dtype)


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


def loss_grad(x, y, sw, has_sw, params, grad, units, w_off, b_off, hidden, output, loss_code,
              alpha, acts, deltas, part):
    """Loss (with L2 penalty) of a batch and its gradient written into ``grad``; returns the loss.

    The batch is cut into ``part.shape[0]`` row blocks (a number fixed by the caller, so results
    do not depend on the thread count) that run forward and backward in parallel, each into its
    own gradient buffer ``part[t]``; the buffers are summed in block order.
    """
    kernel = _kernel(_loss_grad_blocks, "loss_grad", part.shape[0] > 1, HIDDEN=hidden,
                     OUTPUT=output, LOSS=loss_code)
    return kernel(x, y, sw, has_sw, params, grad, units, w_off, b_off, alpha, acts, deltas, part)


def forward(x, params, units, w_off, b_off, hidden, output, acts, nblocks):
    """Forward pass of ``x`` in ``nblocks`` row blocks (parallel when more than one)."""
    kernel = _kernel(_forward_blocks, "forward", nblocks > 1, HIDDEN=hidden, OUTPUT=output)
    return kernel(x, params, units, w_off, b_off, acts, nblocks)


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


def grad_blocks(units, rows, dtype):
    """Per-block gradient buffers for ``loss_grad`` on batches of up to ``rows`` samples."""
    _, _, size = layout(units)
    return np.empty((row_blocks(rows, units), size), dtype)


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


@jit
def _sgd_update(params, grad, velocity, lr, momentum, nesterov):
    """scikit-learn's SGD: v = m*v - lr*g; p += m*v - lr*g (Nesterov) or p += v."""
    for q in range(params.size):
        v = momentum * velocity[q] - lr * grad[q]
        velocity[q] = v
        if nesterov:
            params[q] += momentum * v - lr * grad[q]
        else:
            params[q] += v


@jit
def _adam_update(params, grad, m, v, t, lr, beta1, beta2, eps):
    """scikit-learn's Adam (bias correction folded into the step size, then m / (sqrt(v) + eps)),
    run by the PyTorch-form Adam kernel with ``eps / sqrt(1 - beta2**t)``."""
    dt = params.dtype.type
    bc2_sqrt = np.sqrt(1.0 - beta2 ** t)
    _adam_serial(params, grad, m, v, False, dt(0), dt(1), dt(beta1), dt(1.0 - beta1), dt(beta2),
                 dt(1.0 - beta2), dt(bc2_sqrt), dt(lr / (1.0 - beta1 ** t)), dt(eps / bc2_sqrt))


def _train_epoch(x, csr_data, csr_indices, csr_indptr, y, sw, has_sw, order, batch_size,
                 params, grad, units, w_off, b_off, alpha, lr, momentum, nesterov, beta1, beta2,
                 eps, t, state1, state2, xb, yb, swb, acts, deltas, part):
    """One epoch; specialised on SPARSE, SOLVER and the LOSS_GRAD kernel of its codes."""
    n = order.size
    total = 0.0
    for start in range(0, n, batch_size):
        rows = min(batch_size, n - start)
        xr = xb[:rows]
        if SPARSE:
            _gather_csr(csr_data, csr_indices, csr_indptr, order, start, rows, xr)
        else:
            _gather_rows(x, order, start, rows, xr)
        yr = yb[:rows]
        _gather_rows(y, order, start, rows, yr)
        swr = swb[:rows]
        if has_sw:
            for r in range(rows):
                swr[r] = sw[order[start + r]]
        loss = LOSS_GRAD(xr, yr, swr, has_sw, params, grad, units, w_off, b_off, alpha, acts,
                         deltas, part)
        total += loss * rows
        if SOLVER == ADAM:
            t += 1
            _adam_update(params, grad, state1, state2, t, lr, beta1, beta2, eps)
        else:
            _sgd_update(params, grad, state1, params.dtype.type(lr),
                        params.dtype.type(momentum), nesterov)
    return total, t


def train_epoch(x, csr_data, csr_indices, csr_indptr, is_sparse, y, sw, has_sw, order,
                batch_size, params, grad, units, w_off, b_off, hidden, output, loss_code, alpha,
                solver, lr, momentum, nesterov, beta1, beta2, eps, t, state1, state2,
                xb, yb, swb, acts, deltas, part):
    """One epoch of mini-batch training over the samples in ``order``.

    Returns ``(sum of batch_loss * batch_rows, adam step count t)``. ``x`` is dense
    (rows, n_features) unless ``is_sparse``, when the CSR arrays hold the data instead. Compiles
    only the paths these codes run (one activation pair, loss, solver, serial or parallel).
    """
    codes = dict(HIDDEN=int(hidden), OUTPUT=int(output), LOSS=int(loss_code))
    parallel = part.shape[0] > 1
    # the serial step is inlined into the epoch: one compiled module less on a first call
    step = specialise(_loss_grad_blocks, "loss_grad" if parallel else "loss_grad_inline",
                      parallel=parallel, inline="never" if parallel else "always", **codes)
    kernel = specialise(_train_epoch, "train_epoch", calls={"LOSS_GRAD": step},
                        PARALLEL=parallel, SPARSE=bool(is_sparse), SOLVER=int(solver),
                        **codes)
    return kernel(x, csr_data, csr_indices, csr_indptr, y, sw, has_sw, order, batch_size, params,
                  grad, units, w_off, b_off, alpha, lr, momentum, nesterov, beta1, beta2, eps, t,
                  state1, state2, xb, yb, swb, acts, deltas, part)
