"""Slow float64 references for pooling: explicit loops over every window (scatter form)."""
import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _windows(h, w, kernel, stride, padding):
    """Yield (oh, ow, [(ih, iw) in-bounds positions of the window in scan order])."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh_n = (h + 2 * ph - kh) // sh + 1
    ow_n = (w + 2 * pw - kw) // sw + 1
    for oh in range(oh_n):
        for ow in range(ow_n):
            cells = [(ih, iw)
                     for ih in range(oh * sh - ph, oh * sh - ph + kh)
                     for iw in range(ow * sw - pw, ow * sw - pw + kw)
                     if 0 <= ih < h and 0 <= iw < w]
            yield oh, ow, cells


def out_shape(x_shape, kernel, stride, padding=(0, 0)):
    n, c, h, w = x_shape
    return (n, c, (h + 2 * padding[0] - kernel[0]) // stride[0] + 1,
            (w + 2 * padding[1] - kernel[1]) // stride[1] + 1)


def max_pool2d(x, kernel, stride, padding):
    """(y, indices): first maximum of each window in scan order, -inf padding."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    y = np.empty(out_shape(x.shape, kernel, stride, padding))
    idx = np.empty(y.shape, dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for oh, ow, cells in _windows(h, w, kernel, stride, padding):
                best = max(cells, key=lambda t: x[b, ch, t[0], t[1]])  # max() keeps the first
                y[b, ch, oh, ow] = x[b, ch, best[0], best[1]]
                idx[b, ch, oh, ow] = best[0] * w + best[1]
    return y, idx


def max_pool2d_backward(dy, indices, x_shape):
    dx = np.zeros(x_shape)
    n, c, h, w = x_shape
    for b, ch, oh, ow in np.ndindex(*dy.shape):
        i = indices[b, ch, oh, ow]
        dx[b, ch, i // w, i % w] += dy[b, ch, oh, ow]
    return dx


def avg_pool2d(x, kernel, stride, padding):
    """Window sums divided by kh*kw (zero padding counted)."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    y = np.empty(out_shape(x.shape, kernel, stride, padding))
    for b in range(n):
        for ch in range(c):
            for oh, ow, cells in _windows(h, w, kernel, stride, padding):
                y[b, ch, oh, ow] = sum(x[b, ch, i, j] for i, j in cells) / (kernel[0] * kernel[1])
    return y


def avg_pool2d_backward(dy, x_shape, kernel, stride, padding):
    dx = np.zeros(x_shape)
    n, c, h, w = x_shape
    for b in range(n):
        for ch in range(c):
            for oh, ow, cells in _windows(h, w, kernel, stride, padding):
                for i, j in cells:
                    dx[b, ch, i, j] += dy[b, ch, oh, ow] / (kernel[0] * kernel[1])
    return dx


def global_avg_pool2d(x):
    x = np.asarray(x, dtype=np.float64)
    return x.sum(axis=(2, 3)) / (x.shape[2] * x.shape[3])


def global_avg_pool2d_backward(dy, x_shape):
    n, c, h, w = x_shape
    return np.broadcast_to(np.asarray(dy, dtype=np.float64)[:, :, None, None] / (h * w),
                           x_shape).copy()


# ------------------------------------------------------------------------------ stochastic pool

def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def uniform(seed, counter, dtype):
    """SplitMix64 of (seed, counter): 24 random bits for float32, 53 for float64, in [0, 1)."""
    bits = _mix64((_mix64((seed * _GOLDEN + _GOLDEN) & _MASK) + counter * _GOLDEN) & _MASK)
    if np.dtype(dtype) == np.float32:
        return (bits >> 40) / 2.0 ** 24
    return (bits >> 11) / 2.0 ** 53


def stochastic_probabilities(x, kernel, stride):
    """Per window, the list of (flat index, probability) with weights max(a, 0)."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    out = {}
    for b in range(n):
        for ch in range(c):
            for oh, ow, cells in _windows(h, w, kernel, stride, (0, 0)):
                wts = np.array([max(x[b, ch, i, j], 0.0) for i, j in cells])
                total = wts.sum()
                probs = wts / total if total > 0 else np.zeros_like(wts)
                out[b, ch, oh, ow] = [(i * w + j, p) for (i, j), p in zip(cells, probs)]
    return out


def stochastic_pool2d_train(x, kernel, stride, seed):
    """(y, indices): u from the counter RNG (counter = flat output index), t = u * sum(weights),
    first element whose running weight sum exceeds t; zero windows give 0 and the first element."""
    dtype = np.asarray(x).dtype
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    y = np.empty(out_shape(x.shape, kernel, stride))
    idx = np.empty(y.shape, dtype=np.int64)
    counter = 0
    for b in range(n):
        for ch in range(c):
            for oh, ow, cells in _windows(h, w, kernel, stride, (0, 0)):
                wts = [max(x[b, ch, i, j], 0.0) for i, j in cells]
                t = uniform(seed, counter, dtype) * sum(wts)
                pick, run = 0, 0.0
                positive = [k for k, v in enumerate(wts) if v > 0]
                if positive:
                    pick = positive[-1]
                    for k in positive:
                        run += wts[k]
                        if run > t:
                            pick = k
                            break
                i, j = cells[pick]
                y[b, ch, oh, ow] = wts[pick]
                idx[b, ch, oh, ow] = i * w + j
                counter += 1
    return y, idx


def stochastic_pool2d_train_backward(dy, x, indices):
    """dy routed to the sampled element where that element is positive."""
    x = np.asarray(x, dtype=np.float64)
    dx = np.zeros(x.shape)
    w = x.shape[3]
    for b, ch, oh, ow in np.ndindex(*dy.shape):
        i = indices[b, ch, oh, ow]
        if x[b, ch, i // w, i % w] > 0:
            dx[b, ch, i // w, i % w] += dy[b, ch, oh, ow]
    return dx


def stochastic_pool2d_eval(x, kernel, stride):
    """sum(w^2) / sum(w) per window, w = max(a, 0); 0 where the sum is 0."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    y = np.empty(out_shape(x.shape, kernel, stride))
    for b in range(n):
        for ch in range(c):
            for oh, ow, cells in _windows(h, w, kernel, stride, (0, 0)):
                wts = np.array([max(x[b, ch, i, j], 0.0) for i, j in cells])
                y[b, ch, oh, ow] = (wts ** 2).sum() / wts.sum() if wts.sum() > 0 else 0.0
    return y


def stochastic_pool2d_eval_backward(dy, x, kernel, stride):
    """(2 a_j S - Q) / S^2 for positive a_j, accumulated over the windows covering j."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    dx = np.zeros(x.shape)
    for b in range(n):
        for ch in range(c):
            for oh, ow, cells in _windows(h, w, kernel, stride, (0, 0)):
                a = np.array([x[b, ch, i, j] for i, j in cells])
                wts = np.maximum(a, 0.0)
                s, q = wts.sum(), (wts ** 2).sum()
                if s <= 0:
                    continue
                for (i, j), aj in zip(cells, a):
                    if aj > 0:
                        dx[b, ch, i, j] += dy[b, ch, oh, ow] * (2 * aj * s - q) / s ** 2
    return dx


# ------------------------------------------------------------------------------ global max / avg

def global_max_pool2d(x):
    """(y, indices), both (N, C): each plane's first maximum in scan order and its flat index."""
    x = np.asarray(x, dtype=np.float64)
    n, c = x.shape[:2]
    planes = x.reshape(n, c, -1)
    y = np.empty((n, c))
    idx = np.empty((n, c), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            best = 0
            for i, v in enumerate(planes[b, ch]):
                if v > planes[b, ch, best]:
                    best = i
            y[b, ch], idx[b, ch] = planes[b, ch, best], best
    return y, idx


def global_max_pool2d_backward(dy, indices, x_shape):
    """dy routed to each plane's index (works for any number of spatial axes)."""
    n, c = x_shape[:2]
    dx = np.zeros((n, c, int(np.prod(x_shape[2:]))))
    for b, ch in np.ndindex(n, c):
        dx[b, ch, indices[b, ch]] += dy[b, ch]
    return dx.reshape(x_shape)


def global_avg_pool1d(x):
    x = np.asarray(x, dtype=np.float64)
    return x.sum(axis=2) / x.shape[2]


def global_avg_pool1d_backward(dy, x_shape):
    return np.broadcast_to(np.asarray(dy, dtype=np.float64)[:, :, None] / x_shape[2],
                           x_shape).copy()
