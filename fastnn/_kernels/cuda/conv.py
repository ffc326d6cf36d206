"""Convolution kernels (CUDA): implicit GEMM on the tiled GEMM of ``_gemm``, no im2col buffer.

Three products cover every op, each one GEMM per channel group with the image gather done while
loading tiles (index tables, built once per geometry and cached on the device, give the offsets):

* forward: ``y[g] = w[g] (Cout/g x Cin/g*kh*kw) @ im2col(x)[g]``;
* data gradient: ``dx[g] = w[g].T @ dy`` gathered back (the transposed convolution's forward);
* weight gradient: ``dw[g] = dy[g] @ im2col(x)[g].T``, split along the long N*Ho*Wo axis and
  summed in a fixed order.

Transposed convolution is the data gradient; its backward uses the forward and weight gradient.
Host functions mirror ``fastnn._kernels.cpu.conv`` (same names, signatures, shapes).
"""
import numpy as np
from numba import cuda

from . import _config as cfg
from . import _gemm
from ._reduce import block_sum, channel_index
from ._util import empty, flat, table, zeros
from .activation import relu_inplace


def _grid_n(N, H, W, Cstride):
    """Per-column table (N*H*W, 3): (n*Cstride, h, w) for every (n, h, w)."""
    n, h, w = np.meshgrid(np.arange(N), np.arange(H), np.arange(W), indexing="ij")
    return np.stack([n.ravel() * Cstride, h.ravel(), w.ravel()], axis=1)


# Each ``*_tables`` function takes the shapes of the GEMM operands A, B and C and the geometry,
# and returns ((M, N, K), the launch keywords of ``_gemm.launch``), index table included.

def _forward_tables(ws, xs, ys, stride, padding, dilation, groups):
    """y[g] (Cout/g, N*Ho*Wo) = w[g] (Cout/g, Cin/g*kh*kw) @ im2col(x)[g]."""
    N, C, H, W = xs
    Co, Cg, kh, kw = ws
    Ho, Wo = ys[2], ys[3]
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    Cog = Co // groups

    def build():
        nt = _grid_n(N, Ho, Wo, C * H * W)
        nt[:, 1] = nt[:, 1] * sh - ph
        nt[:, 2] = nt[:, 2] * sw - pw
        c, i, j = np.meshgrid(np.arange(Cg), np.arange(kh), np.arange(kw), indexing="ij")
        kt = np.stack([c.ravel() * H * W, i.ravel() * dh, j.ravel() * dw], axis=1)
        cm = np.arange(Cog) * Ho * Wo
        n, oh, ow = np.meshgrid(np.arange(N), np.arange(Ho), np.arange(Wo), indexing="ij")
        cn = (n * Co * Ho * Wo + oh * Wo + ow).ravel()
        return np.concatenate([nt.ravel(), kt.ravel(), cm, cn])

    key = ("fwd", xs, ws, ys, stride, padding, dilation, groups)
    nN, nK = N * Ho * Wo, Cg * kh * kw
    bn, bk, cm, cn = 0, 3 * nN, 3 * nN + 3 * nK, 3 * nN + 3 * nK + Cog
    return (Cog, nN, nK), dict(
        amode=_gemm.A_ROW, bmode=_gemm.B_GATHER, cmode=_gemm.C_TAB, tab=table(key, build),
        pa=(Cog * nK, nK, 0, 0), pb=(Cg * H * W, 0, bn, bk, H, W, 1, 1),
        pc=(Cog * Ho * Wo, 0, 0, cm, cn, Cog))


def _data_tables(ws, dys, dxs, stride, padding, dilation, groups):
    """dx[g] (Cin/g, N*H*W) = w[g].T @ dy[g], dy gathered back through the windows."""
    N, Co, Ho, Wo = dys
    _, Cg, kh, kw = ws
    H, W = dxs[2], dxs[3]
    C = dxs[1]
    ph, pw = padding
    dh, dw = dilation
    Cog = Co // groups

    def build():
        nt = _grid_n(N, H, W, Co * Ho * Wo)
        nt[:, 1] += ph
        nt[:, 2] += pw
        co, i, j = np.meshgrid(np.arange(Cog), np.arange(kh), np.arange(kw), indexing="ij")
        kt = np.stack([co.ravel() * Ho * Wo, -i.ravel() * dh, -j.ravel() * dw], axis=1)
        am = np.arange(Cg) * kh * kw
        ak = (co * Cg * kh * kw + i * kw + j).ravel()
        cm = np.arange(Cg) * H * W
        n, h, w_ = np.meshgrid(np.arange(N), np.arange(H), np.arange(W), indexing="ij")
        cn = (n * C * H * W + h * W + w_).ravel()
        return np.concatenate([nt.ravel(), kt.ravel(), am, ak, cm, cn])

    key = ("data", dys, ws, dxs, stride, padding, dilation, groups)
    nN, nK = N * H * W, Cog * kh * kw
    bn, bk, am, ak, cm, cn = (int(v) for v in np.cumsum([0, 3 * nN, 3 * nK, Cg, nK, Cg]))
    strided = stride[0] > 1 or stride[1] > 1
    return (Cg, nN, nK), dict(
        amode=_gemm.A_TAB, bmode=_gemm.B_GATHER_STRIDED if strided else _gemm.B_GATHER,
        cmode=_gemm.C_TAB, tab=table(key, build), pa=(Cog * Cg * kh * kw, 0, am, ak),
        pb=(Cog * Ho * Wo, 0, bn, bk, Ho, Wo, stride[0], stride[1]),
        pc=(Cg * H * W, 0, 0, cm, cn, Cg))


def _weight_tables(dys, xs, ws, stride, padding, dilation, groups):
    """dw[g] (Cout/g, Cin/g*kh*kw) = dy[g] (Cout/g, N*Ho*Wo) @ im2col(x)[g].T."""
    N, Co, Ho, Wo = dys
    _, C, H, W = xs
    _, Cg, kh, kw = ws
    ph, pw = padding
    dh, dw = dilation
    Cog = Co // groups

    def build():
        c, i, j = np.meshgrid(np.arange(Cg), np.arange(kh), np.arange(kw), indexing="ij")
        nt = np.stack([c.ravel() * H * W, i.ravel() * dh, j.ravel() * dw], axis=1)
        kt = _grid_n(N, Ho, Wo, C * H * W)
        kt[:, 1] = kt[:, 1] * stride[0] - ph
        kt[:, 2] = kt[:, 2] * stride[1] - pw
        am = np.arange(Cog) * Ho * Wo
        n, p = np.meshgrid(np.arange(N), np.arange(Ho * Wo), indexing="ij")
        ak = (n * Co * Ho * Wo + p).ravel()
        return np.concatenate([nt.ravel(), kt.ravel(), am, ak])

    key = ("weight", dys, xs, ws, stride, padding, dilation, groups)
    nN, nK = Cg * kh * kw, N * Ho * Wo
    bn, bk, am, ak = (int(v) for v in np.cumsum([0, 3 * nN, 3 * nK, Cog]))
    return (Cog, nN, nK), dict(
        amode=_gemm.A_TAB, bmode=_gemm.B_GATHER, cmode=_gemm.C_ROW, tab=table(key, build),
        pa=(Cog * Ho * Wo, 0, am, ak), pb=(Cg * H * W, 0, bn, bk, H, W, 1, 1),
        pc=(Cog * nN, nN, 0, 0, 0, 0))


def _gather_gemm(tables, a, b, c, stride, padding, dilation, groups, bias=None):
    """Fill ``c`` with the grouped product ``a @ b`` (plus ``bias`` per output channel) in the
    geometry that ``tables`` (one of the ``*_tables`` functions) lays out; returns ``c``."""
    if c.size:
        mnk, modes = tables(tuple(a.shape), tuple(b.shape), tuple(c.shape), tuple(stride),
                            tuple(padding), tuple(dilation), groups)
        _gemm.launch(flat(a), flat(b), flat(c), *mnk, groups, bias=bias,
                     bias_mode=_gemm.BIAS_NONE if bias is None else _gemm.BIAS_M, **modes)
    return c


def conv_forward(x, w, b, y, stride, padding, dilation, groups, relu=False):
    """Fill ``y`` (N, C_out, Ho, Wo) with conv2d(x, w, b), then ReLU if ``relu`` (a second pass
    over y); Ho, Wo may be below the natural size."""
    y = _gather_gemm(_forward_tables, w, x, y, stride, padding, dilation, groups, b)
    return relu_inplace(y) if relu else y


def conv_data_grad(dy, w, b, dx, stride, padding, dilation, groups):
    """Fill ``dx`` (N, C_in, H, W) with conv2d's input gradient of ``dy`` (+ b per channel)."""
    return _gather_gemm(_data_tables, w, dy, dx, stride, padding, dilation, groups, b)


def conv_weight_grad(dy, x, w_shape, stride, padding, dilation, groups):
    """conv2d's weight gradient, shape ``w_shape``: sum over the batch of dy[n] (x) im2col(x[n])."""
    if dy.shape[0] * dy.shape[2] * dy.shape[3] == 0:    # K = 0: nothing to sum
        return zeros(tuple(w_shape), x.dtype)
    dw = empty(tuple(w_shape), x.dtype)
    return _gather_gemm(_weight_tables, dy, x, dw, stride, padding, dilation, groups)


_RT = cfg.REDUCE_TPB


@cuda.jit
def _channel_sum_kernel(a, out, N, C, P):
    """out[c] = sum of a[n, c, p] over n and p; one block per channel, float64 accumulation."""
    buf = cuda.shared.array(_RT, np.float64)
    t = cuda.threadIdx.x
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        s = np.float64(0)
        for idx in range(t, N * P, _RT):
            s += np.float64(a[channel_index(idx, c, C, P)])
        s = block_sum(buf, s, _RT)
        if t == 0:
            out[c] = s


def bias_grad(dy):
    """Sum of dy (N, C, ...) over every axis but 1, in dy's dtype."""
    C = dy.shape[1]
    out = empty(C, dy.dtype)
    if C:
        P = int(np.prod(dy.shape[2:], dtype=np.int64))
        _channel_sum_kernel[min(C, cfg.max_blocks()), _RT](flat(dy), out, dy.shape[0], C, P)
    return out
