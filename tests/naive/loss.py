"""Float64 references for the losses: per-sample losses, then a (weighted) mean."""
import math

import numpy as np


def _weights(n, sample_weight):
    return np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)


def softmax_cross_entropy(logits, target, sample_weight=None):
    x = np.asarray(logits, dtype=np.float64)
    n, c = x.shape
    w = _weights(n, sample_weight)
    loss = 0.0
    grad = np.zeros_like(x)
    for i in range(n):
        m = x[i].max()
        lse = m + math.log(sum(math.exp(v - m) for v in x[i]))
        loss += w[i] * (lse - x[i, target[i]])
        for k in range(c):
            grad[i, k] = w[i] * (math.exp(x[i, k] - lse) - (k == target[i]))
    return loss / w.sum(), grad / w.sum()


def _log1pexp(v):
    """log(1 + exp(v)) without overflow."""
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def binary_cross_entropy_with_logits(logits, target, sample_weight=None):
    x = np.asarray(logits, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    n = x.shape[0]
    k = x.size // n
    w = _weights(n, sample_weight)
    loss = 0.0
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        v, y = x[idx], t[idx]
        # -(y log s(v) + (1 - y) log(1 - s(v))) with log s(v) = -log1pexp(-v)
        loss += w[idx[0]] * (y * _log1pexp(-v) + (1 - y) * _log1pexp(v))
        sig = 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))
        grad[idx] = w[idx[0]] * (sig - y)
    return loss / (w.sum() * k), grad / (w.sum() * k)


def mse_loss(pred, target, sample_weight=None):
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    n = p.shape[0]
    k = p.size // n
    w = _weights(n, sample_weight)
    loss = 0.0
    grad = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        d = p[idx] - t[idx]
        loss += w[idx[0]] * d * d
        grad[idx] = 2 * w[idx[0]] * d
    return loss / (w.sum() * k), grad / (w.sum() * k)
