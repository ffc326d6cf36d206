"""Float64 references for batch normalisation, channel by channel, from the textbook formulas."""
import numpy as np


def _channel(x, c):
    """All values of channel c of x (N, C, ...) as a flat float64 array."""
    return np.asarray(x, dtype=np.float64)[:, c].reshape(-1)


def batch_norm(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    """Returns (y, new_running_mean, new_running_var); inputs are not modified."""
    x = np.asarray(x, dtype=np.float64)
    c_count = x.shape[1]
    y = np.empty_like(x)
    rm = None if running_mean is None else np.array(running_mean, dtype=np.float64)
    rv = None if running_var is None else np.array(running_var, dtype=np.float64)
    for c in range(c_count):
        v = _channel(x, c)
        if training:
            mean = v.mean()
            var = ((v - mean) ** 2).mean()
            if rm is not None:
                rm[c] = (1 - momentum) * rm[c] + momentum * mean
                rv[c] = (1 - momentum) * rv[c] + momentum * var * v.size / (v.size - 1)
        else:
            mean, var = rm[c], rv[c]
        g = 1.0 if gamma is None else float(gamma[c])
        b = 0.0 if beta is None else float(beta[c])
        y[:, c] = (x[:, c] - mean) / np.sqrt(var + eps) * g + b
    return y, rm, rv


def batch_norm_backward(dy, x, gamma, running_mean, running_var, training=True, eps=1e-5):
    """(dx, dgamma, dbeta) from the closed-form gradient (training) or the affine map (eval)."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    dx = np.empty_like(x)
    c_count = x.shape[1]
    dgamma = np.zeros(c_count)
    dbeta = np.zeros(c_count)
    for c in range(c_count):
        v = _channel(x, c)
        g_c = _channel(dy, c)
        if training:
            mean, var = v.mean(), ((v - v.mean()) ** 2).mean()
        else:
            mean, var = float(running_mean[c]), float(running_var[c])
        invstd = 1.0 / np.sqrt(var + eps)
        xhat = (v - mean) * invstd
        g = 1.0 if gamma is None else float(gamma[c])
        dbeta[c] = g_c.sum()
        dgamma[c] = (g_c * xhat).sum()
        if training:
            m = v.size
            d = g * invstd / m * (m * g_c - g_c.sum() - xhat * (g_c * xhat).sum())
        else:
            d = g * invstd * g_c
        dx[:, c] = d.reshape(dx[:, c].shape)
    return dx, dgamma, dbeta
