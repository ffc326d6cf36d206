"""Compile every CPU kernel ahead of use (or load it from Numba's on-disk cache).

The first call of a kernel compiles it, once per dtype and code path, which can take seconds; a
later process loads the compiled code from the cache in milliseconds. ``warmup()`` pays that cost
up front (in a build step, a container image, or before timing anything) by calling every public
kernel of ``fastnn.kernels`` on tiny inputs: forward and backward, and each variant that compiles
separately (with and without bias or sample weights, serial and parallel element loops, softmax
over the last and over an inner axis, training and evaluation, ...).
"""
import time

import numpy as np

from ._validate import FLOAT_DTYPES

# Elements in the "large" inputs: above every element-count threshold under which a kernel runs
# its serial loop, so that the parallel loops compile too (512 KiB in float32).
_BIG = 1 << 17


def _conv(k, r):
    x, w, b = r(2, 2, 5, 5), r(3, 2, 3, 3), r(3)
    y = k.conv2d(x, w, b, padding=1)
    k.conv2d(x, w, stride=2, dilation=2)
    k.conv2d_backward(y, x, w, padding=1)
    w11 = r(3, 2, 1, 1)  # 1x1, unit stride: no im2col
    k.conv2d_backward(k.conv2d(x, w11, b), x, w11)
    x1, w1 = r(2, 2, 7), r(3, 2, 3)
    y1 = k.conv1d(x1, w1, r(3), padding=1)
    k.conv1d(x1, w1)
    k.conv1d_backward(y1, x1, w1, padding=1)
    xl, wl = r(1, 64, 5, 5), r(32, 64, 3, 3)  # long reductions, many outputs: the im2row path
    k.conv2d(xl, wl, padding=1)
    k.conv2d(xl, wl, stride=2)
    wt = r(2, 3, 3, 3)
    yt = k.conv_transpose2d(x, wt, b, stride=2, padding=1, output_padding=1)
    k.conv_transpose2d(x, wt)
    k.conv_transpose2d_backward(yt, x, wt, stride=2, padding=1, output_padding=1)


def _pool(k, r):
    x = r(2, 2, 6, 6)
    for window in ({"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1}):
        y, idx = k.max_pool2d(x, **window)  # 2x2 windows of stride 2 have their own kernels
        k.max_pool2d_backward(y, idx, x.shape)
        y = k.avg_pool2d(x, **window)
        k.avg_pool2d_backward(y, x.shape, **window)
    x1 = r(2, 2, 8)
    y, idx = k.max_pool1d(x1, 3, stride=2, padding=1)
    k.max_pool1d_backward(y, idx, x1.shape)
    y = k.avg_pool1d(x1, 2)
    k.avg_pool1d_backward(y, x1.shape, 2)
    y = k.global_avg_pool2d(x)
    k.global_avg_pool2d_backward(y, x.shape)
    k.global_avg_pool1d_backward(k.global_avg_pool1d(x1), x1.shape)
    y, idx = k.global_max_pool2d(x)
    k.global_max_pool2d_backward(y, idx, x.shape)
    y, idx = k.global_max_pool1d(x1)
    k.global_max_pool1d_backward(y, idx, x1.shape)
    xp = np.abs(x)
    for training in (True, False):
        y, idx = k.stochastic_pool2d(xp, 2, seed=1, training=training)
        k.stochastic_pool2d_backward(y, xp, idx, 2, training=training)


def _activation(k, r):
    for shape in ((2, 3, 4, 5), (2, 4, _BIG // 8)):  # serial and parallel element loops
        x, dy = r(*shape), r(*shape)
        for name in ("relu", "sigmoid", "tanh", "gelu"):
            getattr(k, name)(x)
            getattr(k, name + "_backward")(dy, x)
        k.leaky_relu(x, 0.1)
        k.leaky_relu_backward(dy, x, 0.1)
        k.elu(x, 1.0)
        k.elu_backward(dy, x, 1.0)
        for weight in (np.full(1, 0.25, x.dtype), np.full(shape[1], 0.25, x.dtype)):
            k.prelu(x, weight)
            k.prelu_backward(dy, x, weight)
        x2 = x.reshape(shape[0] * shape[1], -1)  # (N, C): one value per channel
        w2 = np.full(x2.shape[1], 0.25, x.dtype)
        k.prelu_backward(k.prelu(x2, w2), x2, w2)
        for axis in (-1, 1):  # rows, and an inner axis
            for name in ("softmax", "log_softmax"):
                getattr(k, name)(x, axis=axis)
                getattr(k, name + "_backward")(dy, x, axis=axis)


def _linear(k, r):
    x, w, b = r(4, 3), r(2, 3), r(2)
    y = k.linear(x, w, b)
    k.linear(x, w)
    k.linear_backward(y, x, w)
    x3 = r(2, 4, 3)
    k.linear_backward(k.linear(x3, w, b), x3, w)
    xb, wb = r(128, 128), r(64, 128)  # 2**20 multiply-adds: the row-block (parallel) products,
    from fastnn.kernels import cpu_work
    with cpu_work():  # which run inside fastnn's work (a fit, a predict) only
        k.linear_backward(k.linear(xb, wb, activation="relu"), xb, wb)


def _loss(k, r):
    for n in (4, _BIG // 8):  # serial and parallel
        logits = r(n, 8)
        target = np.arange(n, dtype=np.int64) % 8
        weight = np.abs(r(n)) + 0.5
        probs = 1 / (1 + np.exp(-r(n, 8)))
        for sw in (None, weight):
            k.softmax_cross_entropy(logits, target, sw)
            k.binary_cross_entropy_with_logits(logits, probs, sw)
            k.mse_loss(logits, probs, sw)


def _norm(k, r):
    for shape in ((6, 3), (2, 3, 4, 4)):
        c = shape[1]
        x, dy = r(*shape), r(*shape)
        gamma, beta = r(c), r(c)
        mean, var = np.zeros(c, x.dtype), np.ones(c, x.dtype)
        for training in (True, False):
            _, cache = k.batch_norm(x, gamma, beta, mean, var, training=training)
            k.batch_norm_backward(dy, cache)


def _layernorm(k, r):
    for shape in ((4, 6), (2, 3, _BIG // 6)):  # serial and parallel
        x, dy = r(*shape), r(*shape)
        d = shape[-1]
        y, mean, invstd = k.layer_norm(x, d, r(d), r(d))
        k.layer_norm_backward(dy, x, mean, invstd, r(d))
        k.layer_norm_backward(dy, x, *k.layer_norm(x, d)[1:])


def _embedding(k, r):
    for n, dim in ((6, 3), (_BIG // 16, 16)):  # serial and parallel
        weight = r(10, dim)
        idx = np.arange(n, dtype=np.int64) % 10
        y = k.embedding(idx.reshape(2, -1), weight)
        k.embedding_backward(y, idx.reshape(2, -1), 10, padding_idx=0)


def _dropout(k, r):
    for shape in ((3, 5), (4, _BIG // 4)):
        y, mask = k.dropout(r(*shape), 0.5, 7)
        k.dropout_backward(y, mask, 0.5)


def _optim(k, r):
    for n in (7, _BIG):
        p, g = r(n), r(n)
        z = [np.zeros(n, p.dtype) for _ in range(2)]
        k.adam_step(p, g, z[0], z[1], 1, weight_decay=0.01)
        k.sgd_step(p, g, None, 0.1)
        k.sgd_step(p, g, z[0], 0.1, momentum=0.9, dampening=0.1)  # first step found by a scan
        k.rmsprop_step(p, g, z[1])
        k.adagrad_step(p, g, z[1], 1)


def _rnn(k, r):
    # a small batch runs the serial gate kernels, N*H >= 2**14 the parallel ones
    for n, h in ((3, 4), (512, 32)):
        x = r(n, 3, 2)
        for sequences in (False, True):
            for relu in (False, True):
                y, cache = k.rnn_forward(x, r(h, 2), r(h, h), r(h), relu, sequences)
                k.rnn_backward(y, cache)
            y, cache = k.lstm_forward(x, r(4 * h, 2), r(4 * h, h), r(4 * h), sequences)
            k.lstm_backward(y, cache)
            y, cache = k.gru_forward(x, r(3 * h, 2), r(3 * h, h), r(3 * h), r(3 * h), sequences)
            k.gru_backward(y, cache)


# family -> function(kernels, random(*shape)) that calls each of the family's kernels
FAMILY_CALLS = {"conv": _conv, "pool": _pool, "activation": _activation, "linear": _linear,
                "loss": _loss, "norm": _norm, "layernorm": _layernorm, "embedding": _embedding,
                "dropout": _dropout, "optim": _optim, "rnn": _rnn}


def _dtypes(dtypes):
    if isinstance(dtypes, (str, type, np.dtype)):
        dtypes = (dtypes,)
    out = []
    for d in dtypes:
        try:
            dt = np.dtype(d)
        except TypeError:
            raise TypeError(f"dtypes must name float32 and/or float64, got {d!r}") from None
        if dt not in FLOAT_DTYPES:
            raise ValueError(f"dtypes must be float32 and/or float64, got {dt}")
        if dt not in out:
            out.append(dt)
    if not out:
        raise ValueError("dtypes must name at least one of float32, float64")
    return out


def warmup(dtypes=("float32",), verbose=True, families=None):
    """Compile (or load from Numba's cache) every CPU kernel for each dtype in ``dtypes``.

    ``families``: names from ``fastnn.kernels`` (``"conv"``, ``"pool"``, ``"activation"``,
    ``"linear"``, ``"loss"``, ``"norm"``, ``"layernorm"``, ``"embedding"``, ``"dropout"``,
    ``"optim"``, ``"rnn"``); None for all. Returns the
    seconds spent per family (summed over dtypes) and ``"total"``; ``verbose`` prints them.
    Compiled code is cached on disk, so a later process pays only the (short) loading time.
    """
    from fastnn import kernels

    dts = _dtypes(dtypes)
    if families is None:
        families = list(kernels._FAMILIES)
    elif isinstance(families, str):
        families = [families]
    unknown = [f for f in families if f not in kernels._FAMILIES]
    if unknown:
        raise ValueError(f"unknown kernel families {unknown}; choose from "
                         f"{list(kernels._FAMILIES)}")
    missing = [f for f in families if f not in FAMILY_CALLS]
    if missing:
        raise RuntimeError(f"fastnn.warmup has no calls for the kernel families {missing}")
    cpu = kernels.cpu
    timings = {}
    start = time.perf_counter()
    for family in families:
        t0 = time.perf_counter()
        for dt in dts:
            rng = np.random.default_rng(0)
            FAMILY_CALLS[family](cpu, lambda *shape: rng.standard_normal(shape).astype(dt))
        timings[family] = time.perf_counter() - t0
        if verbose:
            print(f"fastnn.warmup: {family:<10} {timings[family]:7.2f} s", flush=True)
    timings["total"] = time.perf_counter() - start
    if verbose:
        print(f"fastnn.warmup: {'total':<10} {timings['total']:7.2f} s "
              f"({', '.join(str(d) for d in dts)})", flush=True)
    return timings
