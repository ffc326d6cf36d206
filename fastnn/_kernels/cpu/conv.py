"""Convolution kernels (CPU), parallel over blocks of the batch.

Forward, by blocks of output rows of one image (``conv_forward`` picks the path):
- long reductions: the image is copied once into a zero-padded channels-last buffer, each block is
  unrolled into rows (``_im2row``, long contiguous copies) and multiplied with the weights by
  ``_gemm_nt``, a register-tiled product (8x3 or 4x3 outputs, by the CPU's vector registers;
  reduction vectorised over k) that uses the full SIMD width, where the BLAS Numba links may not;
- unit stride with short reductions or few output channels: ``_gemm_shift`` reads shifted rows of a
  zero-padded copy of the image directly (no unrolled copy), vectorised over positions;
- other short reductions: im2col from the padded copy, then ``_gemm_rows`` (vectorised over
  positions).
Weight gradient: im2col of segments of whole output rows (possibly spanning images) times the same
segment of dy, by ``_gemm_nt``; each chunk sums into its own partial dW, reduced afterwards in
order (one chunk per thread fastnn may use, whatever the threads in use: deterministic).
Input gradient: for unit stride a forward convolution of dy with the flipped kernel (channel axes
swapped per group); otherwise ``w.T @ dy`` per image (BLAS) scattered back by col2im into a padded
copy of that image, which the image owns (race-free). Transposed convolution is the input gradient;
its backward uses the forward and weight-gradient kernels.
"""
import numba
import numpy as np
from numba import prange

from ._isa import tile_rows
from ._jit import bind, jit, pjit
from ._threads import cpu_work
from ._workspace import empty
from .vecmath import relu1

_SIMD = 16              # reductions are zero-padded to a multiple of this (16 float32 lanes)
_BLOCK_BYTES = 1 << 19  # target size of one im2row / im2col block (stays in L2)
_KBLOCK = 640           # longest reduction block of _gemm_nt
_SMALL_K = 48           # shorter reductions use the position-vectorised products
_SEGMENT = 512          # positions per weight-gradient product (its reduction length)
# The weight gradient is summed in chunks of output rows, each into its own partial dW; the
# chunk count follows from the problem's size alone, so the sum's order is the same on every
# machine and with any thread count.
_CHUNK_MACS = 1 << 20   # multiply-adds per chunk at least (a chunk pays for padding its images)
_MAX_CHUNKS = 16        # enough to keep 16 threads busy; a power of two splits evenly on 2^k
_PART_BYTES = 32 << 20  # the partial dWs together stay below this
_FEW_OUT = 4            # fewer output channels per group: unit stride uses the shift path


# Rows of A per register tile of _gemm_nt, chosen by the target's vector registers (``_isa``):
# 8x3 tiles keep 24 vector accumulators, which fit the 32 registers of AVX-512 and NEON; with 16
# registers (AVX2) they spill and 4x3 tiles run 1.8x faster (measured on Zen 2). Fixed at compile
# time, like the instruction set: Numba's cache is keyed on the target CPU and its features, so a
# kernel cached on one kind of CPU is never loaded on another.
_TILE_M = tile_rows()


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
def _put4(out, o, s, s0, s1, s2, s3, acc):
    _put3(out, o, s, s0, s1, s2, acc)
    _put(out, o + 3 * s, s3, acc)


@jit
def _gemm_nt(A, ma, B, nb, kk, out, off, sa, sb, acc):
    """out[off + m*sa + n*sb] (+)= dot(A[m, :kk], B[n, :kk]) for m < ma, n < nb; ``acc`` adds.

    An 8x3 tile keeps 24 accumulators, each vectorised over k (kk a multiple of the SIMD width).
    Put the operand with more rows in A. Long reductions are split into equal blocks of at most
    _KBLOCK so that the 11 rows of a tile stay in L1.
    """
    nkb = (kk + _KBLOCK - 1) // _KBLOCK
    kb = ((kk + nkb - 1) // nkb + _SIMD - 1) // _SIMD * _SIMD
    for k0 in range(0, kk, kb):
        if _TILE_M == 8:
            _gemm_nt_block(A, ma, B, nb, k0, min(kb, kk - k0), out, off, sa, sb, acc or k0 > 0)
        else:
            _gemm_nt_block4(A, ma, B, nb, k0, min(kb, kk - k0), out, off, sa, sb, acc or k0 > 0)


@jit
def _gemm_nt_rest(A, m0, ma, B, nb, k0, kk, out, off, sa, sb, acc):
    """The rows ``m0 <= m < ma`` left over by a tiled block, one row of A at a time."""
    z = A.dtype.type(0)
    for m in range(m0, ma):
        a0 = A[m, k0:]
        n = 0
        while n + 3 <= nb:
            b0 = B[n, k0:]; b1 = B[n + 1, k0:]; b2 = B[n + 2, k0:]  # noqa: E702
            s00 = s01 = s02 = z
            for k in range(kk):
                x0 = a0[k]
                s00 += x0 * b0[k]; s01 += x0 * b1[k]; s02 += x0 * b2[k]  # noqa: E702
            _put3(out, off + m * sa + n * sb, sb, s00, s01, s02, acc)
            n += 3
        while n < nb:
            b0 = B[n, k0:]
            s00 = z
            for k in range(kk):
                s00 += a0[k] * b0[k]
            _put(out, off + m * sa + n * sb, s00, acc)
            n += 1


# Names that each compiled copy of a body below binds to its own function or constant
# (``_jit.bind`` / ``specialise``); declared here so that a reader finds them.
TILE = scratch = prepare = block = None


def _gemm_nt_tiles(A, ma, B, nb, k0, kk, out, off, sa, sb, acc):
    """``_gemm_nt`` over reduction indices [k0, k0 + kk), by tiles of TILE rows of A (bound per
    kernel: 8 or 4) and 3 rows of B. Rows 4-7 of a tile exist only where TILE is 8: Numba drops
    the ``if TILE == 8`` blocks of the 4-row kernel when it compiles."""
    z = A.dtype.type(0)
    m = 0
    while m + TILE <= ma:
        a0 = A[m, k0:]; a1 = A[m + 1, k0:]; a2 = A[m + 2, k0:]; a3 = A[m + 3, k0:]  # noqa: E702
        if TILE == 8:
            a4 = A[m + 4, k0:]; a5 = A[m + 5, k0:]; a6 = A[m + 6, k0:]  # noqa: E702
            a7 = A[m + 7, k0:]
        n = 0
        while n + 3 <= nb:
            b0 = B[n, k0:]; b1 = B[n + 1, k0:]; b2 = B[n + 2, k0:]  # noqa: E702
            s00 = s01 = s02 = s10 = s11 = s12 = z
            s20 = s21 = s22 = s30 = s31 = s32 = z
            if TILE == 8:
                s40 = s41 = s42 = s50 = s51 = s52 = s60 = s61 = s62 = s70 = s71 = s72 = z
            for k in range(kk):
                y0 = b0[k]; y1 = b1[k]; y2 = b2[k]  # noqa: E702
                x0 = a0[k]; s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2  # noqa: E702
                x1 = a1[k]; s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2  # noqa: E702
                x2 = a2[k]; s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2  # noqa: E702
                x3 = a3[k]; s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2  # noqa: E702
                if TILE == 8:
                    x4 = a4[k]; s40 += x4 * y0; s41 += x4 * y1; s42 += x4 * y2  # noqa: E702
                    x5 = a5[k]; s50 += x5 * y0; s51 += x5 * y1; s52 += x5 * y2  # noqa: E702
                    x6 = a6[k]; s60 += x6 * y0; s61 += x6 * y1; s62 += x6 * y2  # noqa: E702
                    x7 = a7[k]; s70 += x7 * y0; s71 += x7 * y1; s72 += x7 * y2  # noqa: E702
            o = off + m * sa + n * sb
            _put3(out, o, sb, s00, s01, s02, acc)
            _put3(out, o + sa, sb, s10, s11, s12, acc)
            _put3(out, o + 2 * sa, sb, s20, s21, s22, acc)
            _put3(out, o + 3 * sa, sb, s30, s31, s32, acc)
            if TILE == 8:
                _put3(out, o + 4 * sa, sb, s40, s41, s42, acc)
                _put3(out, o + 5 * sa, sb, s50, s51, s52, acc)
                _put3(out, o + 6 * sa, sb, s60, s61, s62, acc)
                _put3(out, o + 7 * sa, sb, s70, s71, s72, acc)
            n += 3
        while n < nb:
            b0 = B[n, k0:]
            s00 = s10 = s20 = s30 = z
            if TILE == 8:
                s40 = s50 = s60 = s70 = z
            for k in range(kk):
                y0 = b0[k]
                s00 += a0[k] * y0; s10 += a1[k] * y0; s20 += a2[k] * y0; s30 += a3[k] * y0  # noqa: E702
                if TILE == 8:
                    s40 += a4[k] * y0; s50 += a5[k] * y0; s60 += a6[k] * y0  # noqa: E702
                    s70 += a7[k] * y0
            o = off + m * sa + n * sb
            _put4(out, o, sa, s00, s10, s20, s30, acc)
            if TILE == 8:
                _put4(out, o + 4 * sa, sa, s40, s50, s60, s70, acc)
            n += 1
        m += TILE
    _gemm_nt_rest(A, m, ma, B, nb, k0, kk, out, off, sa, sb, acc)


_gemm_nt_block = jit(bind(_gemm_nt_tiles, "_gemm_nt_block", TILE=8))
_gemm_nt_block4 = jit(bind(_gemm_nt_tiles, "_gemm_nt_block4", TILE=4))  # fits 16 registers


def _a_first(r1, r2):
    """Whether an r1-row operand should be ``_gemm_nt``'s A (``_TILE_M``-row tiles) against an
    r2-row B (3-row tiles): fewer partial tiles first, then the larger operand in A. Plain Python
    for the host; ``_first_in_a`` is the same rule compiled for the kernels."""
    waste_first = (r1 % _TILE_M != 0) + (r2 % 3 != 0)
    waste_second = (r2 % _TILE_M != 0) + (r1 % 3 != 0)
    if waste_first != waste_second:
        return waste_first < waste_second
    return r1 >= r2


_first_in_a = jit(_a_first)


@jit
def _gemm_rows(A, col, kk, npos, out, off, so):
    """out[off + m*so + p] = sum_k A[m, k] * col[k, p] for p < npos: vectorised over positions,
    for short reductions where ``_gemm_nt``'s horizontal sums would dominate.

    Two output rows share each loaded col row; three k per pass keeps LLVM's runtime alias checks
    under its limit (with more pointers it stops vectorising).
    """
    M = A.shape[0]
    for m in range(0, M - 1, 2):
        y0 = out[off + m * so:off + m * so + npos]
        y1 = out[off + (m + 1) * so:off + (m + 1) * so + npos]
        a = A[m]
        b = A[m + 1]
        for p in range(npos):
            y0[p] = 0
            y1[p] = 0
        k = 0
        while k + 3 <= kk:
            c0 = col[k]; c1 = col[k + 1]; c2 = col[k + 2]  # noqa: E702
            a0 = a[k]; a1 = a[k + 1]; a2 = a[k + 2]  # noqa: E702
            b0 = b[k]; b1 = b[k + 1]; b2 = b[k + 2]  # noqa: E702
            for p in range(npos):
                x0 = c0[p]; x1 = c1[p]; x2 = c2[p]  # noqa: E702
                y0[p] += a0 * x0 + a1 * x1 + a2 * x2
                y1[p] += b0 * x0 + b1 * x1 + b2 * x2
            k += 3
        while k < kk:
            c0 = col[k]
            a0 = a[k]
            b0 = b[k]
            for p in range(npos):
                x0 = c0[p]
                y0[p] += a0 * x0
                y1[p] += b0 * x0
            k += 1
    if M % 2:
        y0 = out[off + (M - 1) * so:off + (M - 1) * so + npos]
        a = A[M - 1]
        for p in range(npos):
            y0[p] = 0
        k = 0
        while k + 4 <= kk:
            a0 = a[k]; a1 = a[k + 1]; a2 = a[k + 2]; a3 = a[k + 3]  # noqa: E702
            c0 = col[k]; c1 = col[k + 1]; c2 = col[k + 2]; c3 = col[k + 3]  # noqa: E702
            for p in range(npos):
                y0[p] += a0 * c0[p] + a1 * c1[p] + a2 * c2[p] + a3 * c3[p]
            k += 4
        while k < kk:
            a0 = a[k]
            c0 = col[k]
            for p in range(npos):
                y0[p] += a0 * c0[p]
            k += 1


@jit
def _tap(k, c0, r0, kh, kw, dh, dw, Hp, Wp):
    """Flat offset in a padded (C, Hp, Wp) image of reduction index k = (c*kh + i)*kw + j."""
    c = k // (kh * kw)
    i = (k - c * kh * kw) // kw
    j = k - (c * kh + i) * kw
    return max(((c0 + c) * Hp + r0 + i * dh) * Wp + j * dw, 0)


@jit
def _gemm_shift(A, xpad, c0, r0, kh, kw, dh, dw, npos, wide):
    """wide[m, p] = sum_k A[m, k] * xpad.flat[tap(k) + p] for p < npos, k = (c*kh + i)*kw + j.

    A unit-stride convolution of rows r0.. of the padded image with no unrolled copy: output rows
    are Wp apart in ``wide`` (the caller crops the Wp - Wo junk columns of each). Vectorised over
    positions; two output rows share the loads, as in ``_gemm_rows``.
    """
    C, Hp, Wp = xpad.shape
    xf = xpad.reshape(C * Hp * Wp)
    kk = A.shape[1]
    M = A.shape[0]
    for m in range(0, M, 2):
        pair = m + 1 < M
        y0 = wide[m]
        y1 = wide[m + 1 if pair else m]
        a = A[m]
        b = A[m + 1 if pair else m]
        for p in range(npos):
            y0[p] = 0
        if pair:
            for p in range(npos):
                y1[p] = 0
        k = 0
        while k < kk:
            o0 = _tap(k, c0, r0, kh, kw, dh, dw, Hp, Wp)
            if pair and k + 3 <= kk:
                o1 = _tap(k + 1, c0, r0, kh, kw, dh, dw, Hp, Wp)
                o2 = _tap(k + 2, c0, r0, kh, kw, dh, dw, Hp, Wp)
                a0 = a[k]; a1 = a[k + 1]; a2 = a[k + 2]  # noqa: E702
                b0 = b[k]; b1 = b[k + 1]; b2 = b[k + 2]  # noqa: E702
                for p in range(npos):
                    x0 = xf[o0 + p]; x1 = xf[o1 + p]; x2 = xf[o2 + p]  # noqa: E702
                    y0[p] += a0 * x0 + a1 * x1 + a2 * x2
                    y1[p] += b0 * x0 + b1 * x1 + b2 * x2
                k += 3
            elif pair:
                a0 = a[k]
                b0 = b[k]
                for p in range(npos):
                    x0 = xf[o0 + p]
                    y0[p] += a0 * x0
                    y1[p] += b0 * x0
                k += 1
            elif k + 4 <= kk:
                o1 = _tap(k + 1, c0, r0, kh, kw, dh, dw, Hp, Wp)
                o2 = _tap(k + 2, c0, r0, kh, kw, dh, dw, Hp, Wp)
                o3 = _tap(k + 3, c0, r0, kh, kw, dh, dw, Hp, Wp)
                a0 = a[k]; a1 = a[k + 1]; a2 = a[k + 2]; a3 = a[k + 3]  # noqa: E702
                for p in range(npos):
                    y0[p] += a0 * xf[o0 + p] + a1 * xf[o1 + p] + a2 * xf[o2 + p] + a3 * xf[o3 + p]
                k += 4
            else:
                a0 = a[k]
                for p in range(npos):
                    y0[p] += a0 * xf[o0 + p]
                k += 1


# --------------------------------------------------------------------------------------------
# unrolling helpers (one image). Indices are written as max(base, 0) + range variable: LLVM then
# knows them non-negative, drops Numba's negative-index wraparound and vectorises the copies.
# --------------------------------------------------------------------------------------------

@jit
def _overlap(size, pad, padded):
    """(start, length, source start) of the part of an axis of ``size`` entries, shifted by
    ``pad`` (negative: cropped), that lies inside an axis of ``padded`` entries."""
    lo = min(max(pad, 0), padded)
    return lo, max(min(size + pad, padded), lo) - lo, max(lo - pad, 0)


@jit
def _pad(x, n, ph, pw, xpad):
    """xpad[c, r, s] = x[n, c, r - ph, s - pw] where that lies inside x (ph, pw may be negative:
    crop). Writes only those entries: allocate xpad zeroed and its border stays zero."""
    C, Hp, Wp = xpad.shape
    r_lo, rows, h0 = _overlap(x.shape[2], ph, Hp)
    s_lo, width, src0 = _overlap(x.shape[3], pw, Wp)
    for c in range(C):
        for r in range(rows):
            dst = xpad[c, r_lo + r]
            src = x[n, c, h0 + r]
            for q in range(width):
                dst[s_lo + q] = src[src0 + q]


@jit
def _unpad(xpad, n, ph, pw, b, has_bias, dx):
    """dx[n, c, h, w] = xpad[c, h + ph, w + pw] (+ b[c]), 0 where that lies outside xpad."""
    C, Hp, Wp = xpad.shape
    H = dx.shape[2]
    W = dx.shape[3]
    w_lo = min(max(-pw, 0), W)
    w_hi = max(min(Wp - pw, W), w_lo)
    src0 = max(w_lo + pw, 0)
    for c in range(C):
        bc = b[c] if has_bias else dx.dtype.type(0)
        for h in range(H):
            dst = dx[n, c, h]
            r = h + ph
            if r < 0 or r >= Hp:
                for q in range(W):
                    dst[q] = bc
                continue
            src = xpad[c, r]
            for q in range(w_lo):
                dst[q] = bc
            for q in range(w_hi - w_lo):
                dst[w_lo + q] = src[src0 + q] + bc
            for q in range(W - w_hi):
                dst[w_hi + q] = bc


@jit
def _im2col(xpad, c0, nc, oh0, oh1, kh, kw, sh, sw, dh, dw, Wo, col, q0):
    """col[(c*kh + i)*kw + j, q0 + (oh - oh0)*Wo + ow] = xpad[c0 + c, oh*sh + i*dh, ow*sw + j*dw]
    for c < nc and output rows oh in [oh0, oh1)."""
    for c in range(nc):
        for i in range(kh):
            for j in range(kw):
                row = col[(c * kh + i) * kw + j]
                s = max(j * dw, 0)
                for oh in range(oh0, oh1):
                    xr = xpad[c0 + c, oh * sh + i * dh]
                    d = max(q0 + (oh - oh0) * Wo, 0)
                    if sw == 1:
                        for q in range(Wo):
                            row[d + q] = xr[s + q]
                    else:
                        for q in range(Wo):
                            row[d + q] = xr[s + q * sw]


@jit
def _col2im(col, c0, nc, kh, kw, sh, sw, dh, dw, Ho, Wo, xpad):
    """The adjoint of ``_im2col`` over whole images: xpad[...] += every col entry read from it."""
    for c in range(nc):
        for i in range(kh):
            for j in range(kw):
                row = col[(c * kh + i) * kw + j]
                s = max(j * dw, 0)
                for oh in range(Ho):
                    xr = xpad[c0 + c, oh * sh + i * dh]
                    d = max(oh * Wo, 0)
                    for q in range(Wo):
                        xr[s + q * sw] += row[d + q]


@jit
def _pack(x, n, ph, pw, xp):
    """xp[g, r, s, c] = x[n, g*Cg + c, r - ph, s - pw] where that lies inside x (channels last,
    per group). Writes only those entries: allocate xp zeroed and its border stays zero.

    Blocks of 16 channels: few read streams, and each written line is filled while in L1."""
    G, Hp, Wp, Cg = xp.shape
    r_lo, rows, h0 = _overlap(x.shape[2], ph, Hp)
    s_lo, width, src0 = _overlap(x.shape[3], pw, Wp)
    for g in range(G):
        for c0 in range(0, Cg, 16):
            for r in range(rows):
                dst = xp[g, r_lo + r]
                for c in range(c0, min(Cg, c0 + 16)):
                    src = x[n, g * Cg + c, h0 + r]
                    for q in range(width):
                        dst[s_lo + q, c] = src[src0 + q]


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
            src = max(((oh * sh + i * dh) * Wp + ow * sw + j * dw) * Cg, 0)
            dst = max(tap * run, 0)
            for q in range(run):
                row[dst + q] = xf[src + q]


# --------------------------------------------------------------------------------------------
# parallel kernels
# --------------------------------------------------------------------------------------------

@jit
def _items(t, nchunks, N, nblk):
    """Chunk t's range of work items (image, block of output rows)."""
    items = N * nblk
    return (np.int64(t) * items) // nchunks, ((np.int64(t) + 1) * items) // nchunks


@jit
def _geometry(x, y, groups, kh, kw, sh, sw, dh, dw):
    """(N, C, C_out, Ho, Wo, Cg, Cog, Hp, Wp) of a convolution of x (N, C, H, W) into y
    (N, C_out, Ho, Wo): channels per group in and out, and the extent of the padded input that
    the outputs read."""
    C, Co, Ho, Wo = x.shape[1], y.shape[1], y.shape[2], y.shape[3]
    return (x.shape[0], C, Co, Ho, Wo, C // groups, Co // groups, (Ho - 1) * sh + (kh - 1) * dh + 1,
            (Wo - 1) * sw + (kw - 1) * dw + 1)


@jit
def _epilogue(yf, b, has_bias, relu, n, Co, P, p0, pb):
    """Add the bias and/or apply ReLU to output positions [p0, p0 + pb) of image n, while they
    are still in cache (the fused conv + bias + ReLU)."""
    if not (has_bias or relu):
        return
    zero = yf.dtype.type(0)
    for co in range(Co):
        bc = b[co] if has_bias else zero
        o = max((n * Co + co) * P + p0, 0)
        if relu:
            for p in range(pb):
                yf[o + p] = relu1(yf[o + p] + bc, zero)
        else:
            for p in range(pb):
                yf[o + p] += bc


def _forward_blocks(x, w, b, has_bias, relu, y, groups, kh, kw, sh, sw, ph, pw, dh, dw, rblock,
                    w_rows, nchunks):
    """y = conv2d(x, w) (+ b, then ReLU if ``relu``) for y's spatial size (ph, pw may be
    negative: crop), by blocks of rblock output rows of one image, chunks of blocks in parallel.

    Bound per forward path: ``scratch`` allocates a chunk's copy of the image and block buffer,
    ``prepare`` fills the copy when the chunk reaches a new image, ``block`` computes output rows
    [oh0, oh1) of image n.
    """
    N, Ho = x.shape[0], y.shape[2]
    nblk = (Ho + rblock - 1) // rblock
    yf = y.reshape(y.size)
    for t in prange(nchunks):
        i0, i1 = _items(t, nchunks, N, nblk)
        image, buf = scratch(x, w, y, groups, kh, kw, sh, sw, dh, dw, rblock)
        cur = -1
        for it in range(i0, i1):
            n = it // nblk
            oh0 = (it - n * nblk) * rblock
            if n != cur:
                prepare(x, n, ph, pw, image)
                cur = n
            block(x, w, b, has_bias, relu, y, yf, image, buf, n, oh0, min(Ho, oh0 + rblock),
                  groups, kh, kw, sh, sw, dh, dw, w_rows)


@jit
def _row_scratch(x, w, y, groups, kh, kw, sh, sw, dh, dw, rblock):
    """Zeroed channels-last padded image (groups, Hp, Wp, Cg) and im2row block (rblock*Wo, kp)."""
    N, C, Co, Ho, Wo, Cg, Cog, Hp, Wp = _geometry(x, y, groups, kh, kw, sh, sw, dh, dw)
    return (np.zeros((groups, Hp, Wp, Cg), dtype=x.dtype),
            np.zeros((rblock * Wo, w.shape[1]), dtype=x.dtype))


@jit
def _row_block(x, wr, b, has_bias, relu, y, yf, xp, rows, n, oh0, oh1, groups, kh, kw, sh, sw,
               dh, dw, w_rows):
    """Long reductions: im2row of the block from the channels-last copy, then ``_gemm_nt``.

    wr is w as (C_out, kp) in (i, j, c) order, zero-padded to kp (a multiple of the SIMD width);
    w_rows puts the weights in A.
    """
    N, C, Co, Ho, Wo, Cg, Cog, Hp, Wp = _geometry(x, y, groups, kh, kw, sh, sw, dh, dw)
    kp = wr.shape[1]
    P = Ho * Wo
    p0 = oh0 * Wo
    pb = (oh1 - oh0) * Wo
    for g in range(groups):
        _im2row(xp, g, p0, pb, Wo, kh, kw, sh, sw, dh, dw, rows)
        wg = wr[g * Cog:(g + 1) * Cog]
        off = (n * Co + g * Cog) * P + p0
        if w_rows:
            A, ma, B, nb, sa, sb = wg, Cog, rows, pb, P, 1
        else:
            A, ma, B, nb, sa, sb = rows, pb, wg, Cog, 1, P
        _gemm_nt(A, ma, B, nb, kp, yf, off, sa, sb, False)
    _epilogue(yf, b, has_bias, relu, n, Co, P, p0, pb)


@jit
def _col_scratch(x, w, y, groups, kh, kw, sh, sw, dh, dw, rblock):
    """Zeroed padded image (C, Hp, Wp) and im2col block (Cg*kh*kw, rblock*Wo)."""
    N, C, Co, Ho, Wo, Cg, Cog, Hp, Wp = _geometry(x, y, groups, kh, kw, sh, sw, dh, dw)
    return np.zeros((C, Hp, Wp), dtype=x.dtype), np.empty((w.shape[1], rblock * Wo), dtype=x.dtype)


@jit
def _col_block(x, w2, b, has_bias, relu, y, yf, xpad, col, n, oh0, oh1, groups, kh, kw, sh, sw,
               dh, dw, w_rows):
    """Short reductions: im2col of the block from the padded copy, then ``_gemm_rows``.

    w2 is w as (C_out, Cg*kh*kw) in (c, i, j) order.
    """
    N, C, Co, Ho, Wo, Cg, Cog, Hp, Wp = _geometry(x, y, groups, kh, kw, sh, sw, dh, dw)
    K = w2.shape[1]
    P = Ho * Wo
    p0 = oh0 * Wo
    for g in range(groups):
        _im2col(xpad, g * Cg, Cg, oh0, oh1, kh, kw, sh, sw, dh, dw, Wo, col, 0)
        _gemm_rows(w2[g * Cog:(g + 1) * Cog], col, K, (oh1 - oh0) * Wo, yf,
                   (n * Co + g * Cog) * P + p0, P)
    _epilogue(yf, b, has_bias, relu, n, Co, P, p0, (oh1 - oh0) * Wo)


@jit
def _wide_scratch(x, w, y, groups, kh, kw, sh, sw, dh, dw, rblock):
    """Zeroed padded image (C, Hp, Wp) and the (Cog, rblock*Wp) rows of ``_gemm_shift``."""
    N, C, Co, Ho, Wo, Cg, Cog, Hp, Wp = _geometry(x, y, groups, kh, kw, sh, sw, dh, dw)
    return np.zeros((C, Hp, Wp), dtype=x.dtype), np.empty((Cog, rblock * Wp), dtype=x.dtype)


@jit
def _shift_block(x, w2, b, has_bias, relu, y, yf, xpad, wide, n, oh0, oh1, groups, kh, kw, sh,
                 sw, dh, dw, w_rows):
    """Unit stride, no unrolled copy: ``_gemm_shift`` (output rows Wp apart), cropped into y
    with the bias and ReLU. w2 is w as (C_out, Cg*kh*kw) in (c, i, j) order."""
    N, C, Co, Ho, Wo, Cg, Cog, Hp, Wp = _geometry(x, y, groups, kh, kw, sh, sw, dh, dw)
    nr = oh1 - oh0
    zero = y.dtype.type(0)
    for g in range(groups):
        _gemm_shift(w2[g * Cog:(g + 1) * Cog], xpad, g * Cg, oh0, kh, kw, dh, dw,
                    (nr - 1) * Wp + Wo, wide)
        for m in range(Cog):
            bc = b[g * Cog + m] if has_bias else zero
            src = wide[m]
            for r in range(nr):
                d = max(((n * Co + g * Cog + m) * Ho + oh0 + r) * Wo, 0)
                s0 = max(r * Wp, 0)
                if relu:
                    for q in range(Wo):
                        yf[d + q] = relu1(src[s0 + q] + bc, zero)
                else:
                    for q in range(Wo):
                        yf[d + q] = src[s0 + q] + bc


_forward_nt = pjit(bind(_forward_blocks, "_forward_nt", scratch=_row_scratch, prepare=_pack,
                        block=_row_block))
_forward_rows = pjit(bind(_forward_blocks, "_forward_rows", scratch=_col_scratch, prepare=_pad,
                          block=_col_block))
_forward_shift = pjit(bind(_forward_blocks, "_forward_shift", scratch=_wide_scratch, prepare=_pad,
                           block=_shift_block))


@jit
def _piece(rr, end, Ho):
    """(image, first row, end row) of the part of global output rows [rr, end) in one image."""
    n = rr // Ho
    oh0 = rr - n * Ho
    return n, oh0, min(Ho, oh0 + end - rr)


@pjit
def _weight_grad(x, dy, part, groups, kh, kw, sh, sw, ph, pw, dh, dw, seg_rows, cblock, nchunks):
    """part[t] = sum over chunk t of the output rows (all images) of dy (x) im2col(x).

    part: (nchunks, C_out, Cg*kh*kw) in (c, i, j) order. Each product covers a segment of seg_rows
    output rows (possibly spanning images) and cblock input channels.
    """
    N, C, Co, Ho, Wo, Cg, Cog, Hp, Wp = _geometry(x, dy, groups, kh, kw, sh, sw, dh, dw)
    P = Ho * Wo
    kk2 = kh * kw
    K = Cg * kk2
    total = N * Ho
    segp = ((seg_rows * Wo + _SIMD - 1) // _SIMD) * _SIMD
    maxb = (seg_rows + Ho - 1) // Ho + 1
    for t in prange(nchunks):
        r0 = (np.int64(t) * total) // nchunks
        r1 = ((np.int64(t) + 1) * total) // nchunks
        xpad = np.zeros((maxb, C, Hp, Wp), dtype=x.dtype)
        slot_of = np.full(maxb, -1, dtype=np.int64)
        col = np.empty((cblock * kk2, segp), dtype=x.dtype)
        dyc = np.empty((Cog, segp), dtype=x.dtype)
        acc = part[t].reshape(Co * K)
        acc[:] = 0
        r = r0
        while r < r1:
            nr = min(seg_rows, r1 - r)
            ln = nr * Wo
            kk = ((ln + _SIMD - 1) // _SIMD) * _SIMD
            for n in range(r // Ho, (r + nr - 1) // Ho + 1):
                if slot_of[n % maxb] != n:
                    _pad(x, n, ph, pw, xpad[n % maxb])
                    slot_of[n % maxb] = n
            for g in range(groups):
                q = 0
                rr = r
                while rr < r + nr:
                    n, oh0, oh1 = _piece(rr, r + nr, Ho)
                    for co in range(Cog):
                        src = dy[n, g * Cog + co].reshape(P)
                        dst = dyc[co]
                        s0 = max(oh0 * Wo, 0)
                        d0 = max(q, 0)
                        for e in range((oh1 - oh0) * Wo):
                            dst[d0 + e] = src[s0 + e]
                    q += (oh1 - oh0) * Wo
                    rr += oh1 - oh0
                dyc[:, ln:kk] = 0
                for c0 in range(0, Cg, cblock):
                    nc = min(cblock, Cg - c0)
                    q = 0
                    rr = r
                    while rr < r + nr:
                        n, oh0, oh1 = _piece(rr, r + nr, Ho)
                        _im2col(xpad[n % maxb], g * Cg + c0, nc, oh0, oh1, kh, kw, sh, sw, dh,
                                dw, Wo, col, q)
                        q += (oh1 - oh0) * Wo
                        rr += oh1 - oh0
                    rows = nc * kk2
                    col[:rows, ln:kk] = 0
                    off = g * Cog * K + c0 * kk2
                    if _first_in_a(rows, Cog):
                        A, ma, B, nb, sa, sb = col, rows, dyc, Cog, 1, K
                    else:
                        A, ma, B, nb, sa, sb = dyc, Cog, col, rows, K, 1
                    _gemm_nt(A, ma, B, nb, kk, acc, off, sa, sb, True)
            r += nr


@pjit
def _data_grad_strided(dy, w2, dx, b, has_bias, groups, kh, kw, sh, sw, ph, pw, dh, dw, nchunks):
    """dx[n] = conv's input gradient of dy[n] (+ b per channel of dx): BLAS ``w.T @ dy``, then
    col2im into a padded copy of the image, cropped into dx[n] (each image owns its slice)."""
    N, C, Co, Ho, Wo, Cg, Cog, Hp, Wp = _geometry(dx, dy, groups, kh, kw, sh, sw, dh, dw)
    K = w2.shape[1]
    P = Ho * Wo
    for t in prange(nchunks):
        lo = (np.int64(t) * N) // nchunks
        hi = ((np.int64(t) + 1) * N) // nchunks
        col = np.empty((K, P), dtype=dx.dtype)
        xpad = np.empty((C, Hp, Wp), dtype=dx.dtype)
        for n in range(lo, hi):
            dyn = dy[n].reshape(Co, P)
            xpad[:] = 0
            for g in range(groups):
                np.dot(w2[g * Cog:(g + 1) * Cog].T, dyn[g * Cog:(g + 1) * Cog], col)
                _col2im(col, g * Cg, Cg, kh, kw, sh, sw, dh, dw, Ho, Wo, xpad)
            _unpad(xpad, n, ph, pw, b, has_bias, dx)


@pjit
def _channel_sum(a, out):
    """out[c] = sum of a[:, c] (a is (N, C, P)), accumulated in float64."""
    N, C, P = a.shape
    for c in prange(C):
        s = 0.0
        for n in range(N):
            row = a[n, c]
            for p in range(P):
                s += np.float64(row[p])
        out[c] = s


# --------------------------------------------------------------------------------------------
# host side
# --------------------------------------------------------------------------------------------

def _round_up(v, m):
    return -(-v // m) * m


def _weight_grad_chunks(rows, macs, part_bytes):
    """Chunks of a weight gradient over ``rows`` output rows: a power of two, from the size of
    the problem only (never from the machine or the threads in use)."""
    n = min(rows, _MAX_CHUNKS, macs // _CHUNK_MACS, _PART_BYTES // max(part_bytes, 1))
    return 1 << (max(n, 1).bit_length() - 1) if rows else 0


def _nchunks(items):
    return min(items, numba.get_num_threads())


def _forward_path(K, cog, stride):
    """0: im2row + ``_gemm_nt``; 1: im2col + ``_gemm_rows`` (short reductions); 2: ``_gemm_shift``
    (unit stride with short reductions or few output channels per group)."""
    if stride == (1, 1) and (K < _SMALL_K or cog < _FEW_OUT):
        return 2
    return 1 if K < _SMALL_K else 0


def conv_forward(x, w, b, y, stride, padding, dilation, groups, relu=False):
    """Fill ``y`` (N, C_out, Ho, Wo) with conv2d(x, w, b), then ReLU if ``relu``; Ho, Wo may be
    below the natural size and padding may be negative (used by the input gradient)."""
    N = x.shape[0]
    Co, Cg, kh, kw = w.shape
    P = y.shape[2] * y.shape[3]
    if N == 0 or P == 0 or Co == 0:
        return y
    K = kh * kw * Cg
    cog = Co // groups
    path = _forward_path(K, cog, stride)
    bias = b if b is not None else np.zeros(0, x.dtype)
    Ho, Wo = y.shape[2], y.shape[3]
    kp = K if path > 0 else _round_up(K, _SIMD)
    rblock = min(Ho, max(1, min(_BLOCK_BYTES // (kp * x.itemsize), 1024) // Wo))
    nchunks = _nchunks(N * -(-Ho // rblock))
    if path == 0:
        wk = np.zeros((Co, kp), x.dtype)
        wk[:, :K] = w.transpose(0, 2, 3, 1).reshape(Co, K)
    else:
        wk = w.reshape(Co, K)
    kernel = (_forward_nt, _forward_rows, _forward_shift)[path]
    kernel(x, wk, bias, b is not None, relu, y, groups, kh, kw, *stride, *padding, *dilation,
           rblock, path == 0 and _a_first(cog, rblock * Wo), nchunks)
    return y


def conv_data_grad(dy, w, b, dx, stride, padding, dilation, groups):
    """Fill ``dx`` (N, C_in, H, W) with conv2d's input gradient of ``dy`` (+ b per channel)."""
    N, C = dx.shape[0], dx.shape[1]
    Co, Cg, kh, kw = w.shape
    if N == 0:
        return dx
    if stride == (1, 1):
        # a convolution of dy with the kernel flipped and its channel axes swapped per group
        wf = w.reshape(groups, Co // groups, Cg, kh, kw).transpose(0, 2, 1, 3, 4)
        wf = wf[:, :, :, ::-1, ::-1].reshape(C, Co // groups, kh, kw)
        pad = (dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1])
        return conv_forward(dy, wf, b, dx, (1, 1), pad, dilation, groups)
    w2 = w.reshape(Co, -1)
    bias = b if b is not None else np.zeros(0, dx.dtype)
    nchunks = _nchunks(N)
    args = (dy, w2, dx, bias, b is not None, groups, kh, kw, *stride, *padding, *dilation, nchunks)
    with cpu_work():  # BLAS on one thread inside prange
        _data_grad_strided(*args)
    return dx


def conv_weight_grad(dy, x, w_shape, stride, padding, dilation, groups):
    """conv2d's weight gradient (shape ``w_shape``) for output gradient dy and input x."""
    Co, Cg, kh, kw = w_shape
    N = x.shape[0]
    P = dy.shape[2] * dy.shape[3]
    K = Cg * kh * kw
    nchunks = _weight_grad_chunks(N * dy.shape[2], N * P * Co * K, Co * K * x.itemsize)
    if nchunks == 0 or P == 0 or Co == 0 or K == 0:
        return np.zeros(w_shape, x.dtype)
    Ho, Wo = dy.shape[2], dy.shape[3]
    seg_rows = max(1, min(_SEGMENT // Wo, N * Ho))
    seg_bytes = _round_up(seg_rows * Wo, _SIMD) * x.itemsize
    cblock = max(1, min(Cg, _BLOCK_BYTES // (kh * kw * seg_bytes)))
    if cblock > 8:
        cblock -= cblock % 8
    part = empty((nchunks, Co, K), x.dtype)
    _weight_grad(x, dy, part, groups, kh, kw, *stride, *padding, *dilation, seg_rows, cblock,
                 nchunks)
    dw = part[0]
    for t in range(1, nchunks):
        dw += part[t]
    return dw.reshape(w_shape)


def bias_grad(dy):
    """Sum of dy (N, C, ...) over every axis but 1, in dy's dtype."""
    out = np.zeros(dy.shape[1], np.float64)
    if dy.shape[0] and dy.shape[1]:
        _channel_sum(dy.reshape(dy.shape[0], dy.shape[1], -1), out)
    return out.astype(dy.dtype)
