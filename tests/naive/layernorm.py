"""Float64 references for layer normalisation, row by row, from the textbook formulas."""
import numpy as np


def _rows(a, k):
    """``a`` (..., *normalised axes) as float64 rows of the last ``k`` axes' values."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(-1, int(np.prod(a.shape[a.ndim - k:])))


def layer_norm(x, k, gamma=None, beta=None, eps=1e-5):
    """(y, mean, invstd) normalising over the last ``k`` axes (biased variance)."""
    x = np.asarray(x, dtype=np.float64)
    rows = _rows(x, k)
    lead = x.shape[:x.ndim - k]
    y = np.empty_like(rows)
    mean = np.empty(len(rows))
    invstd = np.empty(len(rows))
    g = np.ones(rows.shape[1]) if gamma is None else np.asarray(gamma, np.float64).reshape(-1)
    b = np.zeros(rows.shape[1]) if beta is None else np.asarray(beta, np.float64).reshape(-1)
    for i, v in enumerate(rows):
        mu = v.mean()
        var = ((v - mu) ** 2).mean()
        mean[i], invstd[i] = mu, 1.0 / np.sqrt(var + eps)
        y[i] = (v - mu) * invstd[i] * g + b
    return y.reshape(x.shape), mean.reshape(lead), invstd.reshape(lead)


def layer_norm_backward(dy, x, k, gamma=None, eps=1e-5):
    """(dx, dgamma, dbeta) from the closed-form gradient; dgamma, dbeta have the normalised
    axes' shape."""
    x = np.asarray(x, dtype=np.float64)
    rows, grows = _rows(x, k), _rows(dy, k)
    d = rows.shape[1]
    g = np.ones(d) if gamma is None else np.asarray(gamma, np.float64).reshape(-1)
    dx = np.empty_like(rows)
    dgamma = np.zeros(d)
    dbeta = np.zeros(d)
    for i, (v, gy) in enumerate(zip(rows, grows)):
        mu = v.mean()
        invstd = 1.0 / np.sqrt(((v - mu) ** 2).mean() + eps)
        xhat = (v - mu) * invstd
        dgamma += gy * xhat
        dbeta += gy
        gg = gy * g
        dx[i] = invstd * (gg - gg.mean() - xhat * (gg * xhat).mean())
    shape = x.shape[x.ndim - k:]
    return dx.reshape(x.shape), dgamma.reshape(shape), dbeta.reshape(shape)
