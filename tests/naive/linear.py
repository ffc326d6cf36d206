"""Float64 references for the dense layer: explicit sums."""
import numpy as np


def linear(x, w, b=None):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    y = np.zeros((x2.shape[0], w.shape[0]))
    for i in range(x2.shape[0]):
        for o in range(w.shape[0]):
            y[i, o] = sum(x2[i, k] * w[o, k] for k in range(w.shape[1]))
            if b is not None:
                y[i, o] += float(b[o])
    return y.reshape(lead + (w.shape[0],))


def linear_backward(dy, x, w):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    x2 = x.reshape(-1, x.shape[-1])
    dy2 = dy.reshape(-1, w.shape[0])
    dx = np.zeros_like(x2)
    dw = np.zeros_like(w)
    db = np.zeros(w.shape[0])
    for i in range(x2.shape[0]):
        for o in range(w.shape[0]):
            db[o] += dy2[i, o]
            for k in range(w.shape[1]):
                dx[i, k] += dy2[i, o] * w[o, k]
                dw[o, k] += dy2[i, o] * x2[i, k]
    return dx.reshape(x.shape), dw, db
