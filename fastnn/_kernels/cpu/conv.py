"""Convolution kernels (CPU), parallel over blocks of the batch.

Forward: each image is copied once into a zero-padded channels-last buffer, from which blocks of
output positions are unrolled into rows (``im2row``, long contiguous copies), then multiplied with
the weights by ``_gemm_nt``: a register-tiled product (8x3 outputs, reduction vectorised over k) that
uses the full SIMD width, where the BLAS Numba links may not.
Weight gradient: im2col of segments of the flattened (image, position) axis, multiplied with the
matching segment of dy; each thread sums into its own partial dW, reduced afterwards.
Input gradient: for unit stride it is a forward convolution of dy with the flipped, transposed
kernel; for larger strides ``w.T @ dy`` per image (BLAS) scattered back by col2im into that image's
slice of dx (race-free). Transposed convolution is the input gradient; its backward uses the forward
and weight-gradient kernels.
"""
import numba
import numpy as np
from numba import prange

from ._jit import blas_single_thread, jit, pjit

_SIMD = 16            # reduction lengths are zero-padded to a multiple of this (16 float32 lanes)
_BLOCK_BYTES = 1 << 18  # target size of one im2row / im2col block (stays in L2)
_SMALL_K = 48          # shorter reductions use the position-vectorised product


# --------------------------------------------------------------------------------------------
# register-tiled product
# --------------------------------------------------------------------------------------------

@jit
def _put(out, o, s, acc):
    if acc:
        out[o] += s
    else:
        out[o] = s


@jit
def _put3(out, o, sb, s0, s1, s2, acc):
    _put(out, o, s0, acc)
    _put(out, o + sb, s1, acc)
    _put(out, o + 2 * sb, s2, acc)


@jit
def _gemm_nt(A, ma, B, nb, kk, out, off, sa, sb, acc):
    """out[off + m*sa + n*sb] (+)= dot(A[m, :kk], B[n, :kk]) for m < ma, n < nb; ``acc`` adds.

    An 8x3 tile keeps 24 accumulators, each vectorised over k (kk a multiple of the SIMD width).
    Put the operand with more rows in A.
    """
    z = A.dtype.type(0)
    m = 0
    while m + 8 <= ma:
        a0 = A[m]; a1 = A[m + 1]; a2 = A[m + 2]; a3 = A[m + 3]  # noqa: E702
        a4 = A[m + 4]; a5 = A[m + 5]; a6 = A[m + 6]; a7 = A[m + 7]  # noqa: E702
        n = 0
        while n + 3 <= nb:
            b0 = B[n]; b1 = B[n + 1]; b2 = B[n + 2]  # noqa: E702
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = z
            s22 = s30 = s31 = s32 = s40 = s41 = s42 = s50 = z
            s51 = s52 = s60 = s61 = s62 = s70 = s71 = s72 = z
            for k in range(kk):
                y0 = b0[k]; y1 = b1[k]; y2 = b2[k]  # noqa: E702
                x0 = a0[k]; s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2  # noqa: E702
                x1 = a1[k]; s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2  # noqa: E702
                x2 = a2[k]; s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2  # noqa: E702
                x3 = a3[k]; s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2  # noqa: E702
                x4 = a4[k]; s40 += x4 * y0; s41 += x4 * y1; s42 += x4 * y2  # noqa: E702
                x5 = a5[k]; s50 += x5 * y0; s51 += x5 * y1; s52 += x5 * y2  # noqa: E702
                x6 = a6[k]; s60 += x6 * y0; s61 += x6 * y1; s62 += x6 * y2  # noqa: E702
                x7 = a7[k]; s70 += x7 * y0; s71 += x7 * y1; s72 += x7 * y2  # noqa: E702
            o = off + m * sa + n * sb
            _put3(out, o, sb, s00, s01, s02, acc)
            _put3(out, o + sa, sb, s10, s11, s12, acc)
            _put3(out, o + 2 * sa, sb, s20, s21, s22, acc)
            _put3(out, o + 3 * sa, sb, s30, s31, s32, acc)
            _put3(out, o + 4 * sa, sb, s40, s41, s42, acc)
            _put3(out, o + 5 * sa, sb, s50, s51, s52, acc)
            _put3(out, o + 6 * sa, sb, s60, s61, s62, acc)
            _put3(out, o + 7 * sa, sb, s70, s71, s72, acc)
            n += 3
        while n < nb:
            b0 = B[n]
            s00 = s10 = s20 = s30 = s40 = s50 = s60 = s70 = z
            for k in range(kk):
                y0 = b0[k]
                s00 += a0[k] * y0; s10 += a1[k] * y0; s20 += a2[k] * y0; s30 += a3[k] * y0  # noqa: E702
                s40 += a4[k] * y0; s50 += a5[k] * y0; s60 += a6[k] * y0; s70 += a7[k] * y0  # noqa: E702
            o = off + m * sa + n * sb
            _put(out, o, s00, acc)
            _put(out, o + sa, s10, acc)
            _put(out, o + 2 * sa, s20, acc)
            _put(out, o + 3 * sa, s30, acc)
            _put(out, o + 4 * sa, s40, acc)
            _put(out, o + 5 * sa, s50, acc)
            _put(out, o + 6 * sa, s60, acc)
            _put(out, o + 7 * sa, s70, acc)
            n += 1
        m += 8
    while m < ma:
        a0 = A[m]
        n = 0
        while n + 3 <= nb:
            b0 = B[n]; b1 = B[n + 1]; b2 = B[n + 2]  # noqa: E702
            s00 = s01 = s02 = z
            for k in range(kk):
                x0 = a0[k]
                s00 += x0 * b0[k]; s01 += x0 * b1[k]; s02 += x0 * b2[k]  # noqa: E702
            _put3(out, off + m * sa + n * sb, sb, s00, s01, s02, acc)
            n += 3
        while n < nb:
            b0 = B[n]
            s00 = z
            for k in range(kk):
                s00 += a0[k] * b0[k]
            _put(out, off + m * sa + n * sb, s00, acc)
            n += 1
        m += 1


@jit
def _gemm_rows(A, col, kk, npos, out, off, so):
    """out[off + m*so + p] = sum_k A[m, k] * col[k, p] for p < npos: vectorised over positions,
    for short reductions (kk) where ``_gemm_nt``'s horizontal sums would dominate."""
    for m in range(A.shape[0]):
        y = out[off + m * so:off + m * so + npos]
        y[:] = 0
        a = A[m]
        k = 0
        while k + 4 <= kk:
            w0 = a[k]; w1 = a[k + 1]; w2 = a[k + 2]; w3 = a[k + 3]  # noqa: E702
            c0 = col[k, :npos]; c1 = col[k + 1, :npos]; c2 = col[k + 2, :npos]; c3 = col[k + 3, :npos]  # noqa: E702,E501
            for p in range(npos):
                y[p] += w0 * c0[p] + w1 * c1[p] + w2 * c2[p] + w3 * c3[p]
            k += 4
        while k < kk:
            w0 = a[k]
            c0 = col[k, :npos]
            for p in range(npos):
                y[p] += w0 * c0[p]
            k += 1


# --------------------------------------------------------------------------------------------
# unrolling helpers (one image, one channel group)
# --------------------------------------------------------------------------------------------

@jit
def _pack(x, n, ph, pw, xp):
    """xp[g, r, s, c] = x[n, g*Cg + c, r - ph, s - pw], 0 outside x (ph, pw may be negative)."""
    G, Hp, Wp, Cg = xp.shape
    H = x.shape[2]
    W = x.shape[3]
    s_lo = min(max(pw, 0), Wp)
    s_hi = max(min(W + pw, Wp), s_lo)
    width = s_hi - s_lo
    for g in range(G):
        for r in range(Hp):
            h = r - ph
            dst = xp[g, r]
            if h < 0 or h >= H:
                dst[:, :] = 0
                continue
            dst[:s_lo, :] = 0
            dst[s_hi:, :] = 0
            inner = dst[s_lo:s_hi]
            for c in range(Cg):
                src = x[n, g * Cg + c, h, s_lo - pw:s_hi - pw]
                for q in range(width):
                    inner[q, c] = src[q]


@jit
def _im2row(xp, g, p0, pb, Wo, kh, kw, sh, sw, dh, dw, rows):
    """rows[r, (i*kw + j)*Cg + c] = xp[g, oh*sh + i*dh, ow*sw + j*dw, c] for position p0 + r."""
    _, Hp, Wp, Cg = xp.shape
    xf = xp[g].reshape(Hp * Wp * Cg)
    run = kw * Cg if dw == 1 else Cg
    taps = kh if dw == 1 else kh * kw
    for r in range(pb):
        p = p0 + r
        oh = p // Wo
        ow = p - oh * Wo
        row = rows[r]
        for tap in range(taps):
            i = tap if dw == 1 else tap // kw
            j = 0 if dw == 1 else tap - i * kw
            start = ((oh * sh + i * dh) * Wp + ow * sw + j * dw) * Cg
            src = xf[start:start + run]
            dst = row[tap * run:(tap + 1) * run]
            for q in range(run):
                dst[q] = src[q]


@jit
def _valid_range(j, sw, pw, dw, W, Wo):
    """Output columns ``[lo, hi)`` whose input column ``ow*sw - pw + j*dw`` lies inside ``[0, W)``."""
    off = j * dw - pw
    lo = min(max(0, -(off // sw)), Wo)
    hi = min(Wo, (W - 1 - off) // sw + 1)
    return off, lo, max(lo, hi)


@jit
def _im2col(x, n, c0, p0, p1, kh, kw, sh, sw, ph, pw, dh, dw, Wo, col, q0):
    """col[(c*kh + i)*kw + j, q0 + p - p0] = x[n, c0 + c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
    (0 outside x) for positions p = oh*Wo + ow in [p0, p1)."""
    H = x.shape[2]
    W = x.shape[3]
    Cg = col.shape[0] // (kh * kw)
    for c in range(Cg):
        for i in range(kh):
            for j in range(kw):
                row = col[(c * kh + i) * kw + j]
                off, lo, hi = _valid_range(j, sw, pw, dw, W, Wo)
                oh = p0 // Wo
                while oh * Wo < p1:
                    a = max(p0 - oh * Wo, 0)
                    b = min(p1 - oh * Wo, Wo)
                    seg = row[q0 + oh * Wo - p0 + a:q0 + oh * Wo - p0 + b]
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= H:
                        seg[:] = 0
                    else:
                        va = min(max(lo, a), b)
                        vb = max(min(hi, b), va)
                        seg[:va - a] = 0
                        seg[vb - a:] = 0
                        src = x[n, c0 + c, ih, va * sw + off:(vb - 1) * sw + off + 1:sw]
                        inner = seg[va - a:vb - a]
                        for q in range(vb - va):
                            inner[q] = src[q]
                    oh += 1


@jit
def _col2im(col, n, c0, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, dx):
    """The adjoint of a whole-image ``_im2col``: dx[n, c0 + c, ih, iw] += each col entry that read it."""
    H = dx.shape[2]
    W = dx.shape[3]
    Cg = col.shape[0] // (kh * kw)
    for c in range(Cg):
        for i in range(kh):
            for j in range(kw):
                row = col[(c * kh + i) * kw + j]
                off, lo, hi = _valid_range(j, sw, pw, dw, W, Wo)
                if hi <= lo:
                    continue
                for oh in range(Ho):
                    ih = oh * sh - ph + i * dh
                    if ih >= 0 and ih < H:
                        dst = dx[n, c0 + c, ih, lo * sw + off:(hi - 1) * sw + off + 1:sw]
                        src = row[oh * Wo + lo:oh * Wo + hi]
                        for q in range(hi - lo):
                            dst[q] += src[q]


# --------------------------------------------------------------------------------------------
# parallel kernels
# --------------------------------------------------------------------------------------------

@pjit
def _forward(x, wr, b, has_bias, y, groups, kh, kw, sh, sw, ph, pw, dh, dw, pblock, w_rows, small,
             nchunks):
    """y = conv2d(x, w) (+ b) for y's spatial size; ph, pw may be negative (crop).

    Work items are (image, block of pblock output positions). Default path: wr is w as (C_out, kp)
    in (i, j, c) order, zero-padded to kp (a multiple of the SIMD width); im2row + ``_gemm_nt``, with
    the weights in A if w_rows. ``small`` (short reductions): wr is w as (C_out, Cg*kh*kw) in
    (c, i, j) order; im2col + ``_gemm_rows``.
    """
    N, C, H, W = x.shape
    Co, kp = wr.shape
    Ho = y.shape[2]
    Wo = y.shape[3]
    P = Ho * Wo
    Cg = C // groups
    Cog = Co // groups
    K = Cg * kh * kw
    Hp = 0 if small else (Ho - 1) * sh + (kh - 1) * dh + 1
    Wp = 0 if small else (Wo - 1) * sw + (kw - 1) * dw + 1
    nblk = (P + pblock - 1) // pblock
    items = N * nblk
    yf = y.reshape(N * Co * P)
    for t in prange(nchunks):
        i0 = (np.int64(t) * items) // nchunks
        i1 = ((np.int64(t) + 1) * items) // nchunks
        xp = np.empty((groups, Hp, Wp, Cg), dtype=x.dtype)
        buf = np.zeros((K, pblock) if small else (pblock, kp), dtype=x.dtype)
        cur = -1
        for it in range(i0, i1):
            n = it // nblk
            p0 = (it - n * nblk) * pblock
            pb = min(pblock, P - p0)
            if n != cur and not small:
                _pack(x, n, ph, pw, xp)
                cur = n
            for g in range(groups):
                wg = wr[g * Cog:(g + 1) * Cog]
                off = (n * Co + g * Cog) * P + p0
                if small:
                    _im2col(x, n, g * Cg, p0, p0 + pb, kh, kw, sh, sw, ph, pw, dh, dw, Wo, buf, 0)
                    _gemm_rows(wg, buf, K, pb, yf, off, P)
                else:
                    _im2row(xp, g, p0, pb, Wo, kh, kw, sh, sw, dh, dw, buf)
                    if w_rows:
                        _gemm_nt(wg, Cog, buf, pb, kp, yf, off, P, 1, False)
                    else:
                        _gemm_nt(buf, pb, wg, Cog, kp, yf, off, 1, P, False)
            if has_bias:
                for co in range(Co):
                    bc = b[co]
                    yb = yf[(n * Co + co) * P + p0:(n * Co + co) * P + p0 + pb]
                    for p in range(pb):
                        yb[p] += bc


@pjit
def _weight_grad(x, dy, part, groups, kh, kw, sh, sw, ph, pw, dh, dw, seg, col_rows, nchunks):
    """part[t] = sum over chunk t of the flattened (image, position) axis of dy (x) im2col(x).

    part: (nchunks, C_out, Cg*kh*kw) in (c, i, j) order; seg: positions per product (a multiple of
    the SIMD width); col_rows puts the unrolled input in A.
    """
    N, C, H, W = x.shape
    Co = dy.shape[1]
    Ho = dy.shape[2]
    Wo = dy.shape[3]
    P = Ho * Wo
    Cg = C // groups
    Cog = Co // groups
    K = Cg * kh * kw
    total = N * P
    for t in prange(nchunks):
        q0 = (np.int64(t) * total) // nchunks
        q1 = ((np.int64(t) + 1) * total) // nchunks
        col = np.empty((K, seg), dtype=x.dtype)
        dyc = np.empty((Cog, seg), dtype=x.dtype)
        acc = part[t].reshape(Co * K)
        acc[:] = 0
        q = q0
        while q < q1:
            ln = min(seg, q1 - q)
            kk = ((ln + _SIMD - 1) // _SIMD) * _SIMD
            for g in range(groups):
                done = 0
                while done < ln:
                    n = (q + done) // P
                    p = q + done - n * P
                    pe = min(P, p + ln - done)
                    _im2col(x, n, g * Cg, p, pe, kh, kw, sh, sw, ph, pw, dh, dw, Wo, col, done)
                    for co in range(Cog):
                        src = dy[n, g * Cog + co].reshape(P)[p:pe]
                        dst = dyc[co, done:done + pe - p]
                        for r in range(pe - p):
                            dst[r] = src[r]
                    done += pe - p
                col[:, ln:kk] = 0
                dyc[:, ln:kk] = 0
                if col_rows:
                    _gemm_nt(col, K, dyc, Cog, kk, acc, g * Cog * K, 1, K, True)
                else:
                    _gemm_nt(dyc, Cog, col, K, kk, acc, g * Cog * K, K, 1, True)
            q += ln


@pjit
def _data_grad_strided(dy, w2, dx, b, has_bias, groups, kh, kw, sh, sw, ph, pw, dh, dw, nchunks):
    """dx[n] = conv's input gradient of dy[n] (+ b per channel of dx): BLAS ``w.T @ dy`` + col2im."""
    N, C, H, W = dx.shape
    Co, K = w2.shape
    Ho = dy.shape[2]
    Wo = dy.shape[3]
    P = Ho * Wo
    Cg = C // groups
    Cog = Co // groups
    for t in prange(nchunks):
        lo = (np.int64(t) * N) // nchunks
        hi = ((np.int64(t) + 1) * N) // nchunks
        col = np.empty((K, P), dtype=dx.dtype)
        for n in range(lo, hi):
            dyn = dy[n].reshape(Co, P)
            dxn = dx[n]
            dxn[:] = 0
            for g in range(groups):
                np.dot(w2[g * Cog:(g + 1) * Cog].T, dyn[g * Cog:(g + 1) * Cog], col)
                _col2im(col, n, g * Cg, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, dx)
            if has_bias:
                for c in range(C):
                    bc = b[c]
                    for ih in range(H):
                        for iw in range(W):
                            dxn[c, ih, iw] += bc


@pjit
def _channel_sum(a, out):
    """out[c] = sum of a[:, c] (a is (N, C, P)); each row summed in a's dtype, rows in float64."""
    N, C, _ = a.shape
    for c in prange(C):
        s = 0.0
        for n in range(N):
            s += np.float64(np.sum(a[n, c]))
        out[c] = s


# --------------------------------------------------------------------------------------------
# host side
# --------------------------------------------------------------------------------------------

def _round_up(v, m):
    return -(-v // m) * m


def _nchunks(items):
    return min(items, numba.get_num_threads())


def _conv_forward(x, w, b, y, stride, padding, dilation, groups):
    """Fill ``y`` (N, C_out, Ho, Wo) with conv2d(x, w, b); Ho, Wo may be below the natural size and
    padding may be negative (used by the input gradient)."""
    N = x.shape[0]
    Co, Cg, kh, kw = w.shape
    P = y.shape[2] * y.shape[3]
    if N == 0 or P == 0 or Co == 0:
        return y
    K = kh * kw * Cg
    small = K < _SMALL_K
    if small:
        kp = K
        wr = w.reshape(Co, K)
    else:
        kp = _round_up(K, _SIMD)
        wr = np.zeros((Co, kp), x.dtype)
        wr[:, :K] = w.transpose(0, 2, 3, 1).reshape(Co, K)
    pblock = max(24, min(1024, _BLOCK_BYTES // (kp * x.itemsize)) // 24 * 24)
    pblock = min(pblock, _round_up(P, 8))
    w_rows = (Co // groups) % 8 == 0
    nblk = -(-P // pblock)
    bias = b if b is not None else np.zeros(0, x.dtype)
    _forward(x, wr, bias, b is not None, y, groups, kh, kw, *stride, *padding, *dilation,
             pblock, w_rows, small, _nchunks(N * nblk))
    return y


def _conv_data_grad(dy, w, b, dx, stride, padding, dilation, groups):
    """Fill ``dx`` (N, C_in, H, W) with conv2d's input gradient of ``dy`` (+ b per channel)."""
    N, C = dx.shape[0], dx.shape[1]
    Co, Cg, kh, kw = w.shape
    if N == 0:
        return dx
    if stride == (1, 1):
        # a convolution of dy with the kernel flipped and its channel axes swapped per group
        wf = (w.reshape(groups, Co // groups, Cg, kh, kw).transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]
              .reshape(C, Co // groups, kh, kw))
        pad = (dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1])
        return _conv_forward(dy, wf, b, dx, (1, 1), pad, dilation, groups)
    w2 = w.reshape(Co, -1)
    bias = b if b is not None else np.zeros(0, dx.dtype)
    nchunks = _nchunks(N)
    args = (dy, w2, dx, bias, b is not None, groups, kh, kw, *stride, *padding, *dilation, nchunks)
    if nchunks > 1:
        with blas_single_thread():
            _data_grad_strided(*args)
    else:
        _data_grad_strided(*args)
    return dx


def _conv_weight_grad(dy, x, w_shape, stride, padding, dilation, groups):
    """conv2d's weight gradient (shape ``w_shape``) for output gradient dy and input x."""
    Co, Cg, kh, kw = w_shape
    N = x.shape[0]
    P = dy.shape[2] * dy.shape[3]
    K = Cg * kh * kw
    nchunks = _nchunks(N * P)
    if nchunks == 0 or Co == 0 or K == 0:
        return np.zeros(w_shape, x.dtype)
    seg = max(_SIMD, min(1024, _BLOCK_BYTES // (K * x.itemsize)) // _SIMD * _SIMD)
    seg = min(seg, _round_up(N * P, _SIMD))
    part = np.empty((nchunks, Co, K), x.dtype)
    col_rows = K >= Co // groups
    _weight_grad(x, dy, part, groups, kh, kw, *stride, *padding, *dilation, seg, col_rows, nchunks)
    dw = part[0]
    for t in range(1, nchunks):
        dw += part[t]
    return dw.reshape(w_shape)


def _bias_grad(dy):
    """Sum of dy (N, C, ...) over every axis but 1, in dy's dtype."""
    out = np.zeros(dy.shape[1], np.float64)
    if dy.shape[0] and dy.shape[1]:
        _channel_sum(dy.reshape(dy.shape[0], dy.shape[1], -1), out)
    return out.astype(dy.dtype)


def _out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _transposed_size(size, k, s, p, op, d):
    return (size - 1) * s - 2 * p + d * (k - 1) + op + 1


def conv2d(x, w, b, stride, padding, dilation, groups):
    """y = conv2d(x, w, b).

    x (N, C_in, H, W), w (C_out, C_in/groups, kh, kw), b (C_out,) or None, all C-contiguous of one
    float dtype; stride, padding, dilation: (h, w) int pairs; groups: int. Returns y (N, C_out, Ho, Wo).
    """
    N, _, H, W = x.shape
    Co, _, kh, kw = w.shape
    Ho = _out_size(H, kh, stride[0], padding[0], dilation[0])
    Wo = _out_size(W, kw, stride[1], padding[1], dilation[1])
    y = np.empty((N, Co, Ho, Wo), x.dtype)
    return _conv_forward(x, w, b, y, stride, padding, dilation, groups)


def conv2d_backward(dy, x, w, stride, padding, dilation, groups):
    """Gradients of conv2d: returns (dx, dw, db) shaped like x, w and (C_out,).

    dy (N, C_out, Ho, Wo), x (N, C_in, H, W), w (C_out, C_in/groups, kh, kw): C-contiguous, one float
    dtype; stride, padding, dilation: (h, w) int pairs; groups: int.
    """
    dx = np.empty(x.shape, x.dtype)
    _conv_data_grad(dy, w, None, dx, stride, padding, dilation, groups)
    dw = _conv_weight_grad(dy, x, w.shape, stride, padding, dilation, groups)
    return dx, dw, _bias_grad(dy)


def conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation):
    """y = conv_transpose2d(x, w, b), computed as conv2d's input gradient.

    x (N, C_in, H, W), w (C_in, C_out/groups, kh, kw), b (C_out,) or None: C-contiguous, one float
    dtype; stride, padding, output_padding, dilation: (h, w) int pairs; groups: int.
    Returns y (N, C_out, Ho, Wo) with Ho = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1.
    """
    N, _, H, W = x.shape
    _, Cog, kh, kw = w.shape
    Ho = _transposed_size(H, kh, stride[0], padding[0], output_padding[0], dilation[0])
    Wo = _transposed_size(W, kw, stride[1], padding[1], output_padding[1], dilation[1])
    y = np.empty((N, Cog * groups, Ho, Wo), x.dtype)
    return _conv_data_grad(x, w, b, y, stride, padding, dilation, groups)


def conv_transpose2d_backward(dy, x, w, stride, padding, output_padding, groups, dilation):
    """Gradients of conv_transpose2d: returns (dx, dw, db) shaped like x, w and (C_out,).

    dy (N, C_out, Ho, Wo), x (N, C_in, H, W), w (C_in, C_out/groups, kh, kw): C-contiguous, one float
    dtype; stride, padding, output_padding, dilation: (h, w) int pairs; groups: int.
    """
    dx = np.empty(x.shape, x.dtype)
    _conv_forward(dy, w, None, dx, stride, padding, dilation, groups)
    dw = _conv_weight_grad(x, dy, w.shape, stride, padding, dilation, groups)
    return dx, dw, _bias_grad(dy)
