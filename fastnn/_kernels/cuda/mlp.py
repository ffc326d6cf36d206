"""Fused multi-layer-perceptron training on the GPU: the numba.cuda twin of ``cpu/mlp.py``.

Same algorithm, parameter layout, activation/loss codes and semantics (scikit-learn's
``MLPClassifier``/``MLPRegressor``): the flat parameter buffer holds every ``coefs_[i]``
(``(fan_in, fan_out)``, C order) and then every ``intercepts_[i]``; ``units`` is
``[n_features, *hidden, n_outputs]``; the loss of a batch is scikit-learn's plus
``0.5 * alpha * sum(W**2) / sum(batch weights)``, the gradient of ``W`` gets ``alpha * W`` before
the division by the batch weight; Adam and SGD update as scikit-learn does.

Everything stays on the device during an epoch: mini-batches are gathered from X and y kept on the
device (``arrayops.take_rows``), the products run on the tiled GEMM of ``_gemm`` (bias fused into
the store), and fused elementwise kernels do the rest in few passes: hidden activation in place;
output activation + loss + output delta (one thread per row); activation derivative + bias
gradient (column sums, float64 partials); the L2 term on the coefficients + the ``1/weight``
scaling of their gradient + their sum of squares. Losses and sums are accumulated in float64,
per block, then combined in a fixed order by one-block kernels, so results do not depend on the
launch configuration. The epoch's loss stays on the device (``Workspace.stats``); the caller reads
it back once per epoch.

A ``Workspace`` holds every buffer a fit needs (allocated once: device allocation is slow) and
caches the array views of its batches. Host functions take device arrays of one float dtype
(C-contiguous), int64 device index arrays and plain Python scalars.
"""
import collections
import functools
import math

import numpy as np
import scipy.sparse as sp
from numba import cuda

from . import _config as cfg
from . import optim as _optim
from ._gemm import matmul
from ._reduce import block_sum, block_sum_partials
from ._util import dummy, empty, zeros
from .arrayops import take_rows
from .._mlp_codes import (  # noqa: F401  (codes and layout shared with the CPU kernels)
    ACTIVATION_CODES, ADAM, BINARY_LOG_LOSS, EPOCH_LOSS, EXP, IDENTITY, LOG_LOSS, LOGISTIC,
    LOSS_CODES, POISSON, RELU, SGD, SOFTMAX, SQUARED, TANH, VAL_BAD, VAL_CORRECT, VAL_LOSS,
    VAL_SSE, check_purpose, layout)

_RT = cfg.REDUCE_TPB
NO_LOSS = -1


# ------------------------------------------------------------------------------------ kernels

@functools.lru_cache(maxsize=None)
def _kernels(dtype):
    """The dtype-specific kernels (constants of that dtype, so float32 computes in float32)."""
    sc = np.dtype(dtype).type
    ZERO, ONE, HALF = sc(0), sc(1), sc(0.5)
    D0, D1 = np.float64(0), np.float64(1)

    @cuda.jit(device=True)
    def activate(v, code):
        if code == RELU:
            return ZERO if v < ZERO else v
        if code == TANH:
            return math.tanh(v)
        if code == LOGISTIC:
            if v >= ZERO:
                return ONE / (ONE + math.exp(-v))
            e = math.exp(v)
            return e / (ONE + e)
        if code == EXP:
            return math.exp(v)
        return v

    @cuda.jit
    def hidden_activation(z, code):
        """z = f(z) in place (flat)."""
        for i in range(cuda.grid(1), z.size, cuda.gridsize(1)):
            z[i] = activate(z[i], code)

    @cuda.jit
    def output(z, y, sw, has_sw, delta, want_delta, part, bad, rows, k, code, loss_code, eps):
        """One thread per row of ``z`` (rows, k): output activation in place; with a loss, the
        block's float64 sums of ``w * loss(row)`` and of non-finite outputs go to ``part`` and
        ``bad``, and with ``want_delta`` the output delta ``(p - y) * w`` to ``delta``."""
        buf = cuda.shared.array(_RT, np.float64)
        acc = D0
        nbad = D0
        for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
            base = r * k
            if code == SOFTMAX:
                m = z[base]
                for j in range(1, k):
                    if z[base + j] > m:
                        m = z[base + j]
                s = ZERO
                for j in range(k):
                    e = math.exp(z[base + j] - m)
                    z[base + j] = e
                    s += e
                inv = ONE / s
                for j in range(k):
                    z[base + j] *= inv
            elif code != IDENTITY:
                for j in range(k):
                    z[base + j] = activate(z[base + j], code)
            if loss_code != NO_LOSS:
                w = sw[r] if has_sw else ONE
                racc = D0
                for j in range(k):
                    yv = np.float64(y[base + j])
                    pv = np.float64(z[base + j])
                    if not math.isfinite(pv):
                        nbad += D1
                    if loss_code == SQUARED:
                        racc += (yv - pv) * (yv - pv)
                    elif loss_code == POISSON:
                        if yv > D0:
                            racc += yv * math.log(yv / pv)
                        racc += pv - yv
                    else:
                        pc = min(max(pv, eps), D1 - eps)
                        if yv != D0:
                            racc -= yv * math.log(pc)
                        if loss_code == BINARY_LOG_LOSS and yv != D1:
                            racc -= (D1 - yv) * math.log(D1 - pc)
                    if want_delta:
                        delta[base + j] = (z[base + j] - y[base + j]) * w
                acc += np.float64(w) * racc
        if loss_code != NO_LOSS:        # uniform over the block: every thread reduces
            acc = block_sum(buf, acc, cuda.blockDim.x)
            nbad = block_sum(buf, nbad, cuda.blockDim.x)
            if cuda.threadIdx.x == 0:
                part[cuda.blockIdx.x] = acc
                bad[cuda.blockIdx.x] = nbad

    @cuda.jit
    def delta_colsum(d, a, code, part, M, N, nsplit):
        """d (M, N) *= f'(a) in place (``code`` of the activation whose output is ``a``), and
        part[s, j] = float64 sum of d[i, j] over the rows i of split s."""
        s = cuda.blockIdx.y
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, N,
                       cuda.gridDim.x * cuda.blockDim.x):
            acc = D0
            for i in range(s, M, nsplit):
                q = i * N + j
                v = d[q]
                if code == RELU:
                    if a[q] == ZERO:
                        v = ZERO
                        d[q] = v
                elif code == TANH:
                    v = v * (ONE - a[q] * a[q])
                    d[q] = v
                elif code == LOGISTIC:
                    v = v * (a[q] * (ONE - a[q]))
                    d[q] = v
                acc += np.float64(v)
            part[s * N + j] = acc

    @cuda.jit
    def penalty(params, grad, n_w, alpha, inv, part):
        """Over the coefficients (the first ``n_w`` entries): grad = (grad + alpha*W) * inv;
        part[block] = float64 sum of W**2."""
        buf = cuda.shared.array(_RT, np.float64)
        acc = D0
        for q in range(cuda.grid(1), n_w, cuda.gridsize(1)):
            w = params[q]
            acc += np.float64(w) * np.float64(w)
            grad[q] = (grad[q] + alpha * w) * inv
        acc = block_sum(buf, acc, cuda.blockDim.x)
        if cuda.threadIdx.x == 0:
            part[cuda.blockIdx.x] = acc

    @cuda.jit
    def correct_rows(out, y, sw, has_sw, rows, k, multiclass, part):
        """part[block] = float64 weight of the rows whose predicted labels all equal the targets
        (first argmax for ``multiclass``, else ``> 0.5`` per column, as LabelBinarizer)."""
        buf = cuda.shared.array(_RT, np.float64)
        acc = D0
        for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
            base = r * k
            ok = True
            if multiclass:
                bp = 0
                by = 0
                for j in range(1, k):
                    if out[base + j] > out[base + bp]:
                        bp = j
                    if y[base + j] > y[base + by]:
                        by = j
                ok = bp == by
            else:
                for j in range(k):
                    if (out[base + j] > HALF) != (y[base + j] > HALF):
                        ok = False
            if ok:
                acc += sw[r] if has_sw else D1
        acc = block_sum(buf, acc, cuda.blockDim.x)
        if cuda.threadIdx.x == 0:
            part[cuda.blockIdx.x] = acc

    @cuda.jit
    def sse_colsum(out, y, sw, has_sw, part, M, N, nsplit):
        """part[s, j] = float64 sum of w * (y - out)**2 over the rows of split s."""
        s = cuda.blockIdx.y
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, N,
                       cuda.gridDim.x * cuda.blockDim.x):
            acc = D0
            for i in range(s, M, nsplit):
                e = np.float64(y[i * N + j]) - np.float64(out[i * N + j])
                acc += (sw[i] if has_sw else D1) * e * e
            part[s * N + j] = acc

    return dict(hidden_activation=hidden_activation, output=output, delta_colsum=delta_colsum,
                penalty=penalty, correct_rows=correct_rows, sse_colsum=sse_colsum)


@cuda.jit
def _colsum_finish(part, out, off, N, nsplit, scale):
    """out[off + j] = scale * sum over s of part[s, j] (cast to out's dtype)."""
    for j in range(cuda.grid(1), N, cuda.gridsize(1)):
        acc = np.float64(0)
        for s in range(nsplit):
            acc += part[s * N + j]
        out[off + j] = acc * scale


@cuda.jit
def _batch_loss(lpart, nl, spart, ns, c0, wsum, kdiv, half_alpha, weight, stats, accumulate):
    """One block: stats[EPOCH_LOSS] (+)= weight * (c0 * sum(lpart) / wsum / kdiv
    + half_alpha * sum(spart) / wsum), the batch loss as the CPU kernel computes it."""
    buf = cuda.shared.array(_RT, np.float64)
    a = block_sum_partials(lpart, nl, buf)
    b = block_sum_partials(spart, ns, buf)
    if cuda.threadIdx.x == 0:
        loss = c0 * a / wsum / kdiv
        loss += half_alpha * b / wsum
        prev = stats[EPOCH_LOSS] if accumulate else np.float64(0)
        stats[EPOCH_LOSS] = prev + loss * weight


@cuda.jit
def _reduce_into(part, n, out, idx, c0, wsum, kdiv):
    """One block: out[idx] = c0 * sum(part[:n]) / wsum / kdiv."""
    buf = cuda.shared.array(_RT, np.float64)
    a = block_sum_partials(part, n, buf)
    if cuda.threadIdx.x == 0:
        out[idx] = c0 * a / wsum / kdiv


@cuda.jit
def _sgd_kernel(params, grad, velocity, lr, momentum, nesterov):
    """scikit-learn's SGD over every element (``_optim_rules``' ``sklearn_sgd_at``)."""
    for q in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        _optim._sklearn_sgd_at(q, params, grad, velocity, lr, momentum, nesterov)


# --------------------------------------------------------------------------------- workspace

_Batch = collections.namedtuple("_Batch", "acts deltas acts_flat deltas_flat y sw")


def _split(M, N):
    """Launch shape (column blocks, row splits) of the column-sum kernels."""
    gx = max(1, min((N + cfg.TPB - 1) // cfg.TPB, cfg.max_blocks()))
    return gx, max(1, min(M, cfg.max_blocks() // gx, 64))


class Workspace:
    """Device buffers for batches of up to ``rows`` samples of a network with ``units``.

    ``acts``: a region of ``rows * units[i]`` per layer i, layer 0 (the batch inputs) only with
    ``gather``; ``deltas``: the same for layers 1..L, only with ``train``; ``y``/``sw``: the
    gathered batch targets and weights (``gather``); float64 partial sums of the reductions;
    ``stats`` (float64, ``4 + n_outputs``): the epoch's loss sum and the validation sums (slots
    ``EPOCH_LOSS`` ... ``VAL_SSE``).
    """

    def __init__(self, units, rows, dtype, gather=True, train=True):
        self.units = u = [int(v) for v in units]
        self.rows = rows = max(1, int(rows))
        self.dtype = dtype = np.dtype(dtype)
        self._acts = self._regions(u if gather else [0] + u[1:], dtype)
        self._deltas = self._regions([0] + u[1:], dtype) if train else None
        self.y = empty(rows * u[-1], dtype) if gather else None
        self.sw = empty(rows, dtype) if gather else None
        self.n_w = sum(a * b for a, b in zip(u[:-1], u[1:]))
        self.lpart = empty(cfg.grid(rows, _RT), np.float64)
        self.bpart = empty(cfg.grid(rows, _RT), np.float64)
        self.spart = empty(cfg.grid(max(self.n_w, 1), _RT), np.float64)
        self.cpart = empty(max(_split(rows, n)[1] * n for n in u[1:]), np.float64)
        self.stats = zeros(VAL_SSE + u[-1], np.float64)
        self._rows = {}
        self._params = {}
        self._batches = None
        self._weight_sum = None

    def _regions(self, sizes, dtype):
        """(flat buffer, per-layer (offset, units) or None where a layer has no region)."""
        buf = empty(self.rows * sum(sizes), dtype)
        offs = [self.rows * sum(sizes[:i]) for i in range(len(sizes))]
        return buf, [(o, n) if n else None for o, n in zip(offs, sizes)]

    def layers(self, rows):
        """Views for a batch of ``rows`` rows (cached): ``acts``/``deltas`` (2-D per layer, None
        where absent), ``acts_flat``/``deltas_flat`` (the same, 1-D), ``y`` (rows, n_outputs)
        and ``sw`` (rows,) (None without ``gather``)."""
        v = self._rows.get(rows)
        if v is None:
            def views(regions):
                if regions is None:
                    return None, None
                buf, spans = regions
                fl = [None if sp is None else buf[sp[0]:sp[0] + rows * sp[1]] for sp in spans]
                return fl, [None if f is None else f.reshape((rows, sp[1]))
                            for f, sp in zip(fl, spans)]
            af, am = views(self._acts)
            df, dm = views(self._deltas)
            k = self.units[-1]
            v = _Batch(acts=am, deltas=dm, acts_flat=af, deltas_flat=df,
                       y=None if self.y is None else self.y[:rows * k].reshape((rows, k)),
                       sw=None if self.sw is None else self.sw[:rows])
            self._rows[rows] = v
        return v

    def matrices(self, flat_params, w_off, b_off):
        """2-D coefficient views and 1-D intercept views of a flat parameter (or gradient)
        buffer (cached per buffer)."""
        key = id(flat_params)
        hit = self._params.get(key)
        if hit is None or hit[0] is not flat_params:
            u = self.units
            ws = [flat_params[w_off[i]:w_off[i] + u[i] * u[i + 1]].reshape((u[i], u[i + 1]))
                  for i in range(len(u) - 1)]
            bs = [flat_params[b_off[i]:b_off[i] + u[i + 1]] for i in range(len(u) - 1)]
            hit = (flat_params, ws, bs)
            self._params[key] = hit
        return hit[1], hit[2]

    def batches(self, order, batch_size):
        """[(start, rows, index view)] of the mini-batches over the device index array ``order``."""
        if self._batches is None or self._batches[0] is not order or self._batches[1] != batch_size:
            n = int(order.shape[0])
            plan = [(s, min(batch_size, n - s), order[s:s + min(batch_size, n - s)])
                    for s in range(0, n, batch_size)]
            self._batches = (order, batch_size, plan)
        return self._batches[2]


    def weight_sum(self, sw, rows):
        """The float64 sum of the device weights ``sw`` (``rows`` without): read back once per
        array (``loss_grad`` runs many times on the same weights)."""
        if sw is None:
            return float(rows)
        if self._weight_sum is None or self._weight_sum[0] is not sw:
            self._weight_sum = (sw, float(np.sum(sw.copy_to_host(), dtype=np.float64)))
        return self._weight_sum[1]


# The training data of ``train_epoch`` on the device: x (n, n_features; sparse X densified once),
# y (n, n_outputs), the weights ``sw`` of the model dtype or None, the same weights in float64 on
# the host (``sw64``: each batch's weight sum) and the device buffer of the sample order.
EpochData = collections.namedtuple("EpochData", "x y sw sw64 order")


def epoch_data(X, y, sw, dtype):
    """``EpochData`` of a fit (one copy of each array to the device)."""
    host_sw = None if sw is None else sw.astype(dtype)
    x = np.ascontiguousarray(X.toarray() if sp.issparse(X) else X, dtype=dtype)
    return EpochData(x=cuda.to_device(x), y=cuda.to_device(np.ascontiguousarray(y, dtype=dtype)),
                     sw=None if sw is None else cuda.to_device(host_sw),
                     # each batch's weight sum: float64 of the model-dtype weights, as on the CPU
                     sw64=None if sw is None else host_sw.astype(np.float64),
                     order=cuda.device_array(X.shape[0], np.int64))


def workspace(model, rows, dtype, purpose):
    """Every device buffer for batches of up to ``rows`` samples of ``purpose`` ('epoch',
    'batch' or 'forward'; ``validation`` takes a 'forward' one), allocated once per fit."""
    check_purpose(purpose)
    return Workspace(model.units, rows, dtype, gather=purpose == "epoch",
                     train=purpose != "forward")


def read_stats(ws):
    """The float64 ``stats`` of the workspace on the host (one copy)."""
    return ws.stats.copy_to_host()


# ------------------------------------------------------------------------------- host passes

def _hidden_forward(a0, params, m, ws, views, out=None):
    """Every layer's product (bias fused) and the hidden activations in ``views.acts``; returns
    the output layer's pre-activation (``out`` if given, else its view of ``acts``)."""
    W, b = ws.matrices(params, m.w_off, m.b_off)
    n_layers = len(m.units) - 1
    hidden = m.hidden
    a = a0
    for i in range(n_layers):
        last = i == n_layers - 1
        z = out if (out is not None and last) else views.acts[i + 1]
        matmul(a, W[i], out=z, bias=b[i])
        if not last and hidden != IDENTITY:
            zf = views.acts_flat[i + 1]
            _kernels(ws.dtype)["hidden_activation"][cfg.grid(zf.size), cfg.TPB](zf, hidden)
        a = z
    return a


def _output(ws, z, y, sw, delta, output, loss_code):
    """Output activation of the 2-D ``z`` in place; with a loss, its block sums in
    ``ws.lpart``/``ws.bpart`` (returns their count); with ``delta`` (flat), the output delta."""
    rows, n_out = z.shape
    blocks = cfg.grid(rows, _RT)
    dmy = dummy(ws.dtype)
    _kernels(ws.dtype)["output"][blocks, _RT](
        z.reshape(rows * n_out), dmy if y is None else y.reshape(rows * n_out),
        dmy if sw is None else sw, sw is not None, dmy if delta is None else delta,
        delta is not None, ws.lpart, ws.bpart, rows, n_out, output, loss_code,
        float(np.finfo(ws.dtype).eps))
    return blocks


def _loss_scale(loss_code, n_out):
    """(c0, kdiv) of ``c0 * sum / wsum / kdiv`` (scikit-learn halves the squared error and
    averages it over the outputs)."""
    return (0.5, float(n_out)) if loss_code == SQUARED else (1.0, 1.0)


def _batch(a0, y, sw, sw_sum, weight, accumulate, params, grad, m, alpha, ws):
    """Loss and gradient of one batch (``a0`` its inputs): ``grad`` filled, and
    ``stats[EPOCH_LOSS]`` set to (or, with ``accumulate``, increased by) ``weight * loss``."""
    k = _kernels(ws.dtype)
    sc = ws.dtype.type
    units = m.units
    rows = a0.shape[0]
    n_layers = len(units) - 1
    views = ws.layers(rows)
    z = _hidden_forward(a0, params, m, ws, views)
    blocks = _output(ws, z, y, sw, views.deltas_flat[n_layers], m.output, m.loss_code)

    W, _ = ws.matrices(params, m.w_off, m.b_off)
    GW, _ = ws.matrices(grad, m.w_off, m.b_off)
    inv = 1.0 / sw_sum
    for i in range(n_layers - 1, -1, -1):
        fan_out = units[i + 1]
        gx, nsplit = _split(rows, fan_out)
        code = IDENTITY if i == n_layers - 1 else m.hidden   # the derivative of layer i's output
        k["delta_colsum"][(gx, nsplit), cfg.TPB](views.deltas_flat[i + 1],
                                                 views.acts_flat[i + 1], code, ws.cpart, rows,
                                                 fan_out, nsplit)
        _colsum_finish[cfg.grid(fan_out), cfg.TPB](ws.cpart, grad, int(m.b_off[i]), fan_out,
                                                   nsplit, inv)
        delta = views.deltas[i + 1]
        matmul(a0 if i == 0 else views.acts[i], delta, trans_a=True, out=GW[i])
        if i > 0:
            matmul(delta, W[i], trans_b=True, out=views.deltas[i])

    sblocks = cfg.grid(max(ws.n_w, 1), _RT)
    k["penalty"][sblocks, _RT](params, grad, ws.n_w, sc(alpha), sc(inv), ws.spart)
    c0, kdiv = _loss_scale(m.loss_code, units[-1])
    _batch_loss[1, _RT](ws.lpart, blocks, ws.spart, sblocks, c0, float(sw_sum), kdiv,
                        0.5 * alpha, float(weight), ws.stats, bool(accumulate))


def loss_grad(x, y, sw, params, grad, model, alpha, ws):
    """Loss (with L2 penalty) of the whole batch ``x`` and its gradient written into ``grad``.

    ``sw``: device sample weights or None (their sum read back once per workspace and array);
    ``ws``: a 'batch' workspace. Returns the loss (a Python float: one small copy to the host);
    ``grad`` stays on the device.
    """
    _batch(x, y, sw, ws.weight_sum(sw, x.shape[0]), 1.0, False, params, grad, model,
           float(alpha), ws)
    return float(ws.stats[EPOCH_LOSS:EPOCH_LOSS + 1].copy_to_host()[0])


def train_epoch(data, order, batch_size, params, grad, model, hyper, lr, t, moments, ws):
    """One epoch of mini-batch training over the samples ``order`` (int64, uploaded to
    ``data.order``), updating the device ``params`` and ``moments`` (Adam's two moments, or
    SGD's velocity twice) in place.

    Returns ``(t, None)``: the sum of ``batch_loss * batch_rows`` stays in
    ``ws.stats[EPOCH_LOSS]`` until ``read_stats`` (one copy per epoch).
    """
    order = np.ascontiguousarray(order, dtype=np.int64)
    data.order.copy_to_device(order)
    sums = (None if data.sw is None
            else np.add.reduceat(data.sw64[order], np.arange(0, order.size, batch_size)))
    sc = ws.dtype.type
    h = hyper
    for b, (start, rows, idx) in enumerate(ws.batches(data.order, batch_size)):
        views = ws.layers(rows)
        take_rows(data.x, idx, views.acts[0])
        take_rows(data.y, idx, views.y)
        if data.sw is not None:
            take_rows(data.sw, idx, views.sw)
        sw_sum = float(rows) if sums is None else float(sums[b])
        _batch(views.acts[0], views.y, None if data.sw is None else views.sw, sw_sum, rows, b > 0,
               params, grad, model, h.alpha, ws)
        if h.solver == ADAM:
            t += 1
            _optim.adam_step(params, grad, moments[0], moments[1], t, lr, h.beta1, h.beta2,
                             h.epsilon, 0.0, False, True)
        else:
            _sgd_kernel[cfg.grid(params.size), cfg.TPB](params, grad, moments[0], sc(lr),
                                                        sc(h.momentum), bool(h.nesterov))
    return t, None


def forward(x, params, model, ws, out=None):
    """Output activations of ``x`` (n, n_features), in chunks of ``ws.rows`` rows, written to
    ``out`` (n, n_outputs; allocated when None) and returned (a device array)."""
    n = x.shape[0]
    if out is None:
        out = empty((n, model.units[-1]), ws.dtype)
    for start in range(0, n, ws.rows):
        stop = min(n, start + ws.rows)
        z = _hidden_forward(x[start:stop], params, model, ws, ws.layers(stop - start),
                            out=out[start:stop])
        _output(ws, z, None, None, None, model.output, NO_LOSS)
    return out


# A validation set on the device (``validation_data``).
ValidationData = collections.namedtuple("ValidationData", "x y sw sw_sum sw64 task ws")


def validation_data(X, y, sw, task, model, dtype):
    """The validation set of a fit on the device: X densified, y and the weights of ``dtype``,
    the float64 weights and their sums, and a 'forward' workspace of its rows. ``task``:
    'multiclass', 'labels' or 'regression'."""
    n = X.shape[0]
    x = np.ascontiguousarray(X.toarray() if sp.issparse(X) else X, dtype=dtype)
    w = None if sw is None else np.asarray(sw, dtype=dtype)
    w64 = None if sw is None else np.asarray(sw, dtype=np.float64)
    return ValidationData(
        x=cuda.to_device(x), y=cuda.to_device(np.ascontiguousarray(y, dtype=dtype)),
        sw=None if w is None else cuda.to_device(w),
        sw_sum=float(n) if w is None else float(np.sum(w, dtype=np.float64)),
        sw64=None if w64 is None else cuda.to_device(w64), task=task,
        ws=workspace(model, n, dtype, "forward"))


def validation(v, params, model, stats=None):
    """Validation pass over all of ``v.x`` (``v.ws``: a 'forward' workspace of ``len(x)`` rows).

    Float64 sums land in ``stats`` (default ``ws.stats``; pass the training workspace's to read
    both back at once): ``VAL_LOSS`` (scikit-learn's loss, no L2 term), ``VAL_BAD`` (non-finite
    outputs), then ``VAL_CORRECT`` (``task`` 'multiclass' or 'labels': weight of the rows whose
    labels are all predicted right) or ``VAL_SSE + j`` (``task`` 'regression': weighted squared
    residuals of output j).

    ``v``: a ``ValidationData``: device ``x``, ``y``, weights ``sw`` of the model dtype (for the
    loss) or None, ``sw_sum`` their float64 sum (``len(x)`` without weights), ``sw64`` the same
    weights in float64 (for the score), the ``task`` and the workspace ``ws``.
    """
    x, y, sw, sw_sum, sw64, task, ws = v.x, v.y, v.sw, v.sw_sum, v.sw64, v.task, v.ws
    k = _kernels(ws.dtype)
    stats = ws.stats if stats is None else stats
    rows, n_out = x.shape[0], model.units[-1]
    z = _hidden_forward(x, params, model, ws, ws.layers(rows))
    blocks = _output(ws, z, y, sw, None, model.output, model.loss_code)
    c0, kdiv = _loss_scale(model.loss_code, n_out)
    _reduce_into[1, _RT](ws.lpart, blocks, stats, VAL_LOSS, c0, float(sw_sum), kdiv)
    _reduce_into[1, _RT](ws.bpart, blocks, stats, VAL_BAD, 1.0, 1.0, 1.0)
    has_sw = sw is not None
    w64 = sw64 if has_sw else dummy(np.float64)
    zf, yf = z.reshape(rows * n_out), y.reshape(rows * n_out)
    if task == "regression":
        gx, nsplit = _split(rows, n_out)
        k["sse_colsum"][(gx, nsplit), cfg.TPB](zf, yf, w64, has_sw, ws.cpart, rows, n_out, nsplit)
        _colsum_finish[cfg.grid(n_out), cfg.TPB](ws.cpart, stats, VAL_SSE, n_out, nsplit, 1.0)
    else:
        k["correct_rows"][blocks, _RT](zf, yf, w64, has_sw, rows, n_out, task == "multiclass",
                                       ws.lpart)
        _reduce_into[1, _RT](ws.lpart, blocks, stats, VAL_CORRECT, 1.0, 1.0, 1.0)
