"""Shared-memory tiled GEMM with 2-D register blocking, for dense layers and convolutions.

One kernel computes ``C[g] = A[g] @ B[g]`` for a batch of groups ``g`` (``blockIdx.z``), optionally
split along K (partial products summed by a second kernel). Each block computes a BM x BN tile of
C with RS x CS = BM/TM x BN/TN threads; each thread owns TM x TN outputs held in registers. Its
rows come in runs of VA = min(4, TM) adjacent ones, VA * RS apart: thread row ``tr`` owns rows
``(i // VA) * VA*RS + tr*VA + i % VA`` (columns likewise with VB = min(4, TN), CS, ``tc``), so
that per K row it reads each run from shared memory with one 16-byte vector load (shared buffers
16-byte aligned, rows padded to whole vectors), conflict-free.

K runs in slabs of BK rows through two shared-memory buffers: while slab t is multiplied out of
one, slab t + 1 is read from global memory into registers and then stored into the other, with
one barrier per slab. Each thread loads the elements ``tid + it * NT`` of a slab (k fastest, in
groups of 8 k, for k-contiguous operands: coalesced reads, conflict-free transposed stores), at
compile-time offsets from its first one. Global loads stay scalar: leading dimensions are runtime
values, so vector alignment is not known.

How operands are read is a compile-time mode, so one kernel serves every use:

* ``A_ROW``: ``A(m, k) = A[g*ga + m*lda + k]``; ``A_COL``: ``A(m, k) = A[g*ga + k*lda + m]``;
  ``A_TAB``: ``A(m, k) = A[g*ga + tab[am + m] + tab[ak + k]]`` (separable offsets).
* ``B_ROW``: ``B(k, n) = B[g*gb + k*ldb + n]``; ``B_COL``: ``B(k, n) = B[g*gb + n*ldb + k]``;
  ``B_GATHER``: an image gather (implicit im2col): with per-column and per-row tables of
  interleaved triplets ``(off, h, w)`` at ``tab[bn + 3n]`` and ``tab[bk + 3k]``, ``B(k, n) = B[g*gb + off_n + off_k + ih*W + iw]`` where ``ih = h_n + h_k``,
  ``iw = w_n + w_k``, zero outside ``[0, H) x [0, W)``. ``B_GATHER_STRIDED`` additionally needs
  ``ih % sh == 0`` and reads row ``ih // sh`` (transposed convolution / backward data).
* ``C_ROW``: ``C[g*gc + s*gs + m*ldc + n]``; ``C_TAB``: ``C[g*gc + tab[cm + m] + tab[cn + n]]``.
* bias: none, ``bias[g*gbias + m]`` or ``bias[n]``.

Kernel arguments: ``(A, B, C, bias, tab, M, N, K, kchunk, nsplit, pa, pb, pc)`` with
``pa = (ga, lda, am, ak)``, ``pb = (gb, ldb, bn, bk, H, W, sh, sw)``,
``pc = (gc, ldc, gs, cm, cn, gbias)``; arrays are flat (1-D).
"""
import functools

import numpy as np
from numba import cuda

from . import _config as cfg
from ._util import inline_device

A_ROW, A_COL, A_TAB = 0, 1, 2
B_ROW, B_COL, B_GATHER, B_GATHER_STRIDED = 0, 1, 2, 3
C_ROW, C_TAB = 0, 1
BIAS_NONE, BIAS_M, BIAS_N = 0, 1, 2


@cuda.jit(device=True)
def dense(r, c, ld, col):
    """Offset of element (r, c) of a dense matrix with leading dimension ``ld``: row-major, or
    column-major (the transposed operand) when ``col``."""
    return c * ld + r if col else r * ld + c


@cuda.jit(device=True)
def store(C, bias, tab, pc, g, s, m, n, v, cmode, bias_mode):
    """C(g, s, m, n) = v + bias in layout ``cmode`` (split s only in C_ROW: the partials buffer).

    ``cmode`` and ``bias_mode`` are the kernel's compile-time constants, so the branches fold."""
    if bias_mode == BIAS_M:
        v += bias[g * pc[5] + m]
    elif bias_mode == BIAS_N:
        v += bias[n]
    if cmode == C_ROW:
        C[g * pc[0] + s * pc[2] + dense(m, n, pc[1], False)] = v
    else:
        C[g * pc[0] + tab[pc[3] + m] + tab[pc[4] + n]] = v


def smem_bytes(dtype, tiles):
    """Static shared memory of ``gemm_kernel`` for this dtype and tile shape: two K slabs of A and
    B, rows padded (``cfg.GEMM_PAD``) and rounded up to whole vectors."""
    BM, BN, BK, TM, TN = tiles
    return 2 * BK * (_padded(BM, TM) + _padded(BN, TN)) * np.dtype(dtype).itemsize


def _slot_offsets(slot, nt, its):
    """Offsets (d0, d1) with ``slot(tid + it * nt) == slot(tid) + (d0[it], d1[it])`` for every
    thread ``tid < nt``: the load pattern must be the same for every thread."""
    d0, d1 = [], []
    for it in range(its):
        ds = {tuple(a - b for a, b in zip(slot(t + it * nt), slot(t))) for t in range(nt)}
        assert len(ds) == 1, "tile shape: a thread's loads are not a fixed pattern"
        (a, b), = ds
        d0.append(a)
        d1.append(b)
    return tuple(d0), tuple(d1)


def _vw(t):
    return min(4, t)


def _padded(b, t):
    v = _vw(t)
    return (b + cfg.GEMM_PAD + v - 1) // v * v


@functools.lru_cache(maxsize=None)
def gemm_kernel(dtype, tiles, amode, bmode, cmode, bias_mode):
    """The GEMM kernel for this dtype, tile shape and operand modes (compiled on first launch)."""
    BM, BN, BK, TM, TN = tiles
    RS = BM // TM                      # thread rows
    CS = BN // TN                      # thread columns
    NT = RS * CS                       # threads per block
    VA = _vw(TM)                       # a thread's rows (columns) come in runs of VA (VB)
    VB = _vw(TN)
    assert RS * TM == BM and CS * TN == BN and TM % VA == 0 and TN % VB == 0
    A_IT = BM * BK // NT               # A elements each thread loads per K slab
    B_IT = BK * BN // NT
    assert A_IT * NT == BM * BK and B_IT * NT == BK * BN
    AW = _padded(BM, TM)               # shared-memory row lengths: padded, whole vectors
    BW = _padded(BN, TN)
    assert cfg.SIMULATOR or smem_bytes(dtype, tiles) <= 48 * 1024, "static shared memory > 48 KiB"
    # a run starts at a multiple of VA (VB) elements of a row starting at one: 16-byte aligned
    # buffers let NVVM read each run with one vector load (the simulator takes no alignment)
    ALIGN = None if cfg.SIMULATOR else 16
    sc = np.dtype(dtype).type
    A_KFAST = amode != A_COL           # which index runs fastest across threads when loading
    B_NFAST = bmode != B_COL
    # k-fastest loads step through k in groups of KG: a warp stores 8 k x 4 rows, bank-conflict
    # free in float32 with GEMM_PAD = 4, and reads whole 32-byte sectors of each row
    KG = 8 if BK % 8 == 0 else BK
    GATHER = bmode in (B_GATHER, B_GATHER_STRIDED)
    if GATHER:
        assert NT % BN == 0            # each thread then gathers one fixed column n

    @cuda.jit(device=True)
    def load_a(A, tab, pa, g, m, k, M, kend):
        """A(m, k) of group g, zero outside the M x [.., kend) operand."""
        v = sc(0)
        if m < M and k < kend:
            if amode == A_TAB:
                v = A[g * pa[0] + tab[pa[2] + m] + tab[pa[3] + k]]
            else:
                v = A[g * pa[0] + dense(m, k, pa[1], amode == A_COL)]
        return v

    @cuda.jit(device=True)
    def load_b(B, tab, pb, g, k, n, N, kend, noff, nh, nw):
        """B(k, n) of group g, zero outside the operand and, gathering, outside the image."""
        v = sc(0)
        if n < N and k < kend:
            if not GATHER:
                v = B[g * pb[0] + dense(k, n, pb[1], bmode == B_COL)]
            else:
                t = pb[3] + 3 * k
                ih = nh + tab[t + 1]
                iw = nw + tab[t + 2]
                H = pb[4]
                W = pb[5]
                ok = ih >= 0 and iw >= 0
                if bmode == B_GATHER_STRIDED:
                    sh = pb[6]
                    sw = pb[7]
                    if ok and sh > 1:
                        q = ih // sh
                        ok = q * sh == ih
                        ih = q
                    if ok and sw > 1:
                        q = iw // sw
                        ok = q * sw == iw
                        iw = q
                if ok and ih < H and iw < W:
                    v = B[g * pb[0] + noff + tab[t] + ih * W + iw]
        return v

    def a_slot(idx):
        """(m, k) in the slab of the idx-th A element a block loads (k fastest unless A_COL)."""
        if A_KFAST:
            r = idx // KG
            return r % BM, r // BM * KG + idx % KG
        return idx % BM, idx // BM

    def b_slot(idx):
        """(k, n) in the slab of the idx-th B element a block loads (n fastest unless B_COL)."""
        if B_NFAST:
            return idx // BN, idx % BN
        r = idx // KG
        return r // BN * KG + idx % KG, r % BN

    # thread tid loads elements tid + it * NT: at slot(tid) plus the same offsets for every
    # thread, compile-time constants, so one base address serves all of a thread's loads
    AD0, AD1 = _slot_offsets(a_slot, NT, A_IT)
    BD0, BD1 = _slot_offsets(b_slot, NT, B_IT)
    a_slot = cuda.jit(device=True)(a_slot)
    b_slot = cuda.jit(device=True)(b_slot)

    @cuda.jit(device=True)
    def row(tr, i):
        """Tile row of a thread's i-th row: runs of VA rows, VA * RS apart."""
        return i // VA * (VA * RS) + tr * VA + i % VA

    @cuda.jit(device=True)
    def col(tc, j):
        return j // VB * (VB * CS) + tc * VB + j % VB

    @inline_device
    def fetch(pfa, pfb, A, B, tab, pa, pb, g, m0, n0, k0, M, N, kend, noff, nh, nw, tid):
        """Read this thread's share of the K slab starting at k0 into the registers pfa, pfb."""
        mm, kk = a_slot(tid)
        for it in range(A_IT):
            pfa[it] = load_a(A, tab, pa, g, m0 + mm + AD0[it], k0 + kk + AD1[it], M, kend)
        kk, nn = b_slot(tid)
        for it in range(B_IT):
            pfb[it] = load_b(B, tab, pb, g, k0 + kk + BD0[it], n0 + nn + BD1[it], N, kend,
                             noff, nh, nw)

    @inline_device
    def put(As, Bs, buf, pfa, pfb, tid):
        """Store the prefetched slab into shared-memory buffer ``buf``."""
        mm, kk = a_slot(tid)
        for it in range(A_IT):
            As[buf, kk + AD1[it], mm + AD0[it]] = pfa[it]
        kk, nn = b_slot(tid)
        for it in range(B_IT):
            Bs[buf, kk + BD0[it], nn + BD1[it]] = pfb[it]

    # float32: cap the registers (cfg.GEMM_F32_REGS) so that more blocks fit an SM; the 8 x 8
    # float64 accumulators alone take 128 registers: no cap
    opts = {}
    if not cfg.SIMULATOR and cfg.GEMM_F32_REGS and np.dtype(dtype).itemsize == 4:
        opts["launch_bounds"] = (NT, max(1, 65536 // (NT * cfg.GEMM_F32_REGS)))

    @cuda.jit(**opts)
    def kernel(A, B, C, bias, tab, M, N, K, kchunk, nsplit, pa, pb, pc):
        As = cuda.shared.array((2, BK, AW), sc, ALIGN)
        Bs = cuda.shared.array((2, BK, BW), sc, ALIGN)
        acc = cuda.local.array((TM, TN), sc)
        ra = cuda.local.array(TM, sc)
        rb = cuda.local.array(TN, sc)
        pfa = cuda.local.array(A_IT, sc)
        pfb = cuda.local.array(B_IT, sc)

        # the mask tells the compiler tid >= 0, so shared-memory indices skip wrap-around checks
        tid = cuda.threadIdx.x & 1023
        tr = tid // CS
        tc = tid % CS
        n0 = cuda.blockIdx.x * BN
        m0 = cuda.blockIdx.y * BM
        z = cuda.blockIdx.z
        g = z // nsplit
        s = z - g * nsplit
        kbeg = s * kchunk
        kend = min(K, kbeg + kchunk)

        for i in range(TM):
            for j in range(TN):
                acc[i, j] = sc(0)

        # the fixed column a gathering thread reads, and its table entries
        noff = 0
        nh = 0
        nw = 0
        if GATHER:
            nfix = n0 + tid % BN
            if nfix < N:
                noff = tab[pb[2] + 3 * nfix]
                nh = tab[pb[2] + 3 * nfix + 1]
                nw = tab[pb[2] + 3 * nfix + 2]

        # double-buffered K loop: slab t is multiplied out of buffer t % 2 while slab t + 1 is
        # read into registers and then stored into the other buffer; one barrier per slab
        fetch(pfa, pfb, A, B, tab, pa, pb, g, m0, n0, kbeg, M, N, kend, noff, nh, nw, tid)
        put(As, Bs, 0, pfa, pfb, tid)
        cuda.syncthreads()
        buf = 0
        for k0 in range(kbeg, kend, BK):
            k1 = k0 + BK
            if k1 < kend:
                fetch(pfa, pfb, A, B, tab, pa, pb, g, m0, n0, k1, M, N, kend, noff, nh, nw, tid)

            for kk in range(BK):
                for i in range(TM):
                    ra[i] = As[buf, kk, row(tr, i)]
                for j in range(TN):
                    rb[j] = Bs[buf, kk, col(tc, j)]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += ra[i] * rb[j]

            buf = (buf + 1) & 1        # the mask: buf >= 0, as for tid
            if k1 < kend:              # the same for the whole block
                # the barrier that ended the previous slab fenced the last reads of this buffer
                put(As, Bs, buf, pfa, pfb, tid)
                cuda.syncthreads()

        for i in range(TM):
            m = m0 + row(tr, i)
            if m < M:
                for j in range(TN):
                    n = n0 + col(tc, j)
                    if n < N:
                        store(C, bias, tab, pc, g, s, m, n, acc[i, j], cmode, bias_mode)

    return kernel


@functools.lru_cache(maxsize=None)
def split_reduce_kernel(dtype, cmode, bias_mode):
    """Sum the split-K partials ``W[g, s, m, n]`` into C (layout ``cmode``), adding the bias."""
    sc = np.dtype(dtype).type

    @cuda.jit
    def kernel(Wk, C, bias, tab, M, N, G, nsplit, pc):
        start = cuda.grid(1)
        step = cuda.gridsize(1)
        MN = M * N
        for idx in range(start, G * MN, step):
            g = idx // MN
            r = idx - g * MN
            m = r // N
            n = r - m * N
            v = sc(0)
            base = g * nsplit * MN + r
            for s in range(nsplit):
                v += Wk[base + s * MN]
            store(C, bias, tab, pc, g, 0, m, n, v, cmode, bias_mode)

    return kernel


def choose_tiles(M, dtype=np.float32):
    if np.dtype(dtype).itemsize > 4:
        small, big = cfg.GEMM_TILES_SMALL_M_F64, cfg.GEMM_TILES_F64
    else:
        small, big = cfg.GEMM_TILES_SMALL_M, cfg.GEMM_TILES
    return small if M <= small[0] else big


def launch(A, B, C, M, N, K, G=1, *, amode=A_ROW, bmode=B_ROW, cmode=C_ROW, bias=None,
           bias_mode=BIAS_NONE, tab=None, pa=(0, 0, 0, 0), pb=(0, 0, 0, 0, 1, 1, 1, 1),
           pc=(0, 0, 0, 0, 0, 0), split=None, tiles=None):
    """Run ``C[g] = A[g] @ B[g] (+ bias)`` for ``g < G``; arrays flat device arrays.

    ``split``: number of K chunks (None chooses: more when the output has too few tiles to fill
    the device). With more than one chunk, partial products go to a scratch buffer and a second
    kernel sums them in a fixed order (deterministic).
    """
    from ._util import dummy, empty
    dtype = np.dtype(C.dtype)
    if M == 0 or N == 0 or G == 0:
        return C
    tiles = choose_tiles(M, dtype) if tiles is None else tuple(tiles)
    BM, BN, BK, TM, TN = tiles
    nt = (BM // TM) * (BN // TN)
    gx = (N + BN - 1) // BN
    gy = (M + BM - 1) // BM
    if split is None:
        split = 1
        blocks = gx * gy * G
        target = cfg.split_k_target()
        if blocks < target and K >= 2 * cfg.SPLIT_K_MIN_K:
            split = min((target + blocks - 1) // blocks, K // cfg.SPLIT_K_MIN_K)
    split = max(1, min(int(split), (K + BK - 1) // BK))
    kchunk = ((K + split - 1) // split + BK - 1) // BK * BK
    split = (K + kchunk - 1) // kchunk if K > 0 else 1
    if tab is None:
        tab = dummy(np.int64)
    bias_arr = bias if bias is not None else dummy(dtype)
    if split == 1:
        k = gemm_kernel(dtype, tiles, amode, bmode, cmode, bias_mode)
        k[(gx, gy, G), nt](A, B, C, bias_arr, tab, M, N, K, max(kchunk, BK), 1, pa, pb, pc)
        return C
    # scratch from the caching allocator: returned when ``work`` dies at the end of this call,
    # while the kernels may still run; the default stream orders them before its next user
    work = empty(G * split * M * N, dtype)
    k = gemm_kernel(dtype, tiles, amode, bmode, C_ROW, BIAS_NONE)
    k[(gx, gy, G * split), nt](A, B, work, bias_arr, tab, M, N, K, kchunk, split, pa, pb,
                               (split * M * N, N, M * N, 0, 0, 0))
    r = split_reduce_kernel(dtype, cmode, bias_mode)
    r[cfg.grid(G * M * N), cfg.TPB](work, C, bias_arr, tab, M, N, G, split, pc)
    return C


def matmul(a, b, trans_a=False, trans_b=False, out=None, bias=None, bias_axis=1, tiles=None):
    """``op(a) @ op(b)`` of 2-D device arrays (``op`` transposes where asked), plus ``bias``.

    ``bias_axis`` 1 adds ``bias[n]`` to each row, 0 adds ``bias[m]`` to each column.
    """
    from ._util import empty, flat
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    K2, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    assert K == K2
    if out is None:
        out = empty((M, N), a.dtype)
    bias_mode = BIAS_NONE if bias is None else (BIAS_N if bias_axis == 1 else BIAS_M)
    launch(flat(a), flat(b), flat(out), M, N, K,
           amode=A_COL if trans_a else A_ROW, bmode=B_COL if trans_b else B_ROW,
           bias=bias, bias_mode=bias_mode,
           pa=(0, a.shape[1], 0, 0), pb=(0, b.shape[1], 0, 0, 1, 1, 1, 1),
           pc=(0, N, 0, 0, 0, 0), tiles=tiles)
    return out
