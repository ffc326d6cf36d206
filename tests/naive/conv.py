"""Slow, obviously correct float64 references for convolutions (explicit loops over kernel taps).

Each function follows the definition: output[n, o, oh, ow] sums
x[n, c, oh*s - p + i*d, ow*s - p + j*d] * w[o, c, i, j] over the taps that land inside x; the
transposed convolution scatters every input pixel into the output through the same index map.
"""
import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    Co, Cg, kh, kw = w.shape
    Cog = Co // groups
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((N, Co, Ho, Wo))
    for o in range(Co):
        g = o // Cog
        for oh in range(Ho):
            for ow in range(Wo):
                for i in range(kh):
                    ih = oh * sh - ph + i * dh
                    if not 0 <= ih < H:
                        continue
                    for j in range(kw):
                        iw = ow * sw - pw + j * dw
                        if not 0 <= iw < W:
                            continue
                        y[:, o, oh, ow] += x[:, g * Cg:(g + 1) * Cg, ih, iw] @ w[o, :, i, j]
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dw, db) of conv2d, by the chain rule applied tap by tap."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    (sh, sw), (ph, pw), (dh, dw_) = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    Co, Cg, kh, kw = w.shape
    Cog = Co // groups
    _, _, Ho, Wo = dy.shape
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for o in range(Co):
        g = o // Cog
        cs = slice(g * Cg, (g + 1) * Cg)
        for oh in range(Ho):
            for ow in range(Wo):
                for i in range(kh):
                    ih = oh * sh - ph + i * dh
                    if not 0 <= ih < H:
                        continue
                    for j in range(kw):
                        iw = ow * sw - pw + j * dw_
                        if not 0 <= iw < W:
                            continue
                        g_out = dy[:, o, oh, ow]                       # (N,)
                        dx[:, cs, ih, iw] += g_out[:, None] * w[o, :, i, j][None, :]
                        dw[o, :, i, j] += g_out @ x[:, cs, ih, iw]
    return dx, dw, dy.sum(axis=(0, 2, 3))


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Scatter: y[n, g*Cog + o, ih*s - p + i*d, ...] += x[n, c, ih, iw] * w[c, o, i, j]."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    oph, opw = _pair(output_padding)
    N, C, H, W = x.shape
    _, Cog, kh, kw = w.shape
    Cg = C // groups
    Ho = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y = np.zeros((N, Cog * groups, Ho, Wo))
    for c in range(C):
        g = c // Cg
        for ih in range(H):
            for iw in range(W):
                for i in range(kh):
                    oh = ih * sh - ph + i * dh
                    if not 0 <= oh < Ho:
                        continue
                    for j in range(kw):
                        ow = iw * sw - pw + j * dw
                        if not 0 <= ow < Wo:
                            continue
                        y[:, g * Cog:(g + 1) * Cog, oh, ow] += np.outer(x[:, c, ih, iw],
                                                                        w[c, :, i, j])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1):
    """(dx, dw, db) of conv_transpose2d: dx gathers dy through the scatter's index map."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    (sh, sw), (ph, pw), (dh, dw_) = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    _, Cog, kh, kw = w.shape
    Cg = C // groups
    _, _, Ho, Wo = dy.shape
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for c in range(C):
        g = c // Cg
        os_ = slice(g * Cog, (g + 1) * Cog)
        for ih in range(H):
            for iw in range(W):
                for i in range(kh):
                    oh = ih * sh - ph + i * dh
                    if not 0 <= oh < Ho:
                        continue
                    for j in range(kw):
                        ow = iw * sw - pw + j * dw_
                        if not 0 <= ow < Wo:
                            continue
                        g_out = dy[:, os_, oh, ow]                     # (N, Cog)
                        dx[:, c, ih, iw] += g_out @ w[c, :, i, j]
                        dw[c, :, i, j] += x[:, c, ih, iw] @ g_out
    return dx, dw, dy.sum(axis=(0, 2, 3))


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    y = conv2d(np.asarray(x)[:, :, None, :], np.asarray(w)[:, :, None, :], b, (1, stride),
               (0, padding), (1, dilation), groups)
    return y[:, :, 0, :]


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1):
    dx, dw, db = conv2d_backward(np.asarray(dy)[:, :, None, :], np.asarray(x)[:, :, None, :],
                                 np.asarray(w)[:, :, None, :], (1, stride), (0, padding),
                                 (1, dilation), groups)
    return dx[:, :, 0, :], dw[:, :, 0, :], db


def conv1d_padded(x, w, b=None, stride=1, pads=(0, 0), dilation=1, groups=1):
    """conv1d of x with ``pads`` = (zeros before, zeros after) added explicitly (causal:
    (dilation*(k-1), 0), PyTorch's 'same': the odd zero after)."""
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), pads))
    return conv1d(xp, w, b, stride, 0, dilation, groups)


def conv1d_padded_backward(dy, x, w, stride=1, pads=(0, 0), dilation=1, groups=1):
    """(dx, dw, db) of ``conv1d_padded``: the padded input's gradient, cropped."""
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), pads))
    dx, dw, db = conv1d_backward(dy, xp, w, stride, 0, dilation, groups)
    return dx[:, :, pads[0]:pads[0] + np.shape(x)[2]], dw, db
