"""Launch configuration for every CUDA kernel: real values on hardware, tiny ones in the simulator.

Under ``NUMBA_ENABLE_CUDASIM=1`` each simulated thread is a Python thread, so blocks are kept to a
handful of threads and grids are capped; kernels loop (grid-stride) over whatever is left, so
results do not depend on these numbers.
"""
import functools

from numba import config as _numba_config

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)

# The GEMM tiles (BM, BN, BK, TM, TN) on hardware: float32 (large M, M <= 64), then float64, which
# takes half the K slab so that its two double-buffered slabs stay within 48 KiB. Named outside
# the branch below so that the simulator tests can run them too.
HARDWARE_GEMM_TILES = ((128, 128, 16, 8, 8), (64, 256, 16, 8, 8))
HARDWARE_GEMM_TILES_F64 = ((128, 128, 8, 8, 8), (64, 256, 8, 8, 8))

if SIMULATOR:
    TPB = 8                 # threads per block, elementwise kernels
    REDUCE_TPB = 8          # threads per block of a block reduction (power of two)
    MAX_BLOCKS = 4          # grid cap of grid-stride kernels
    # GEMM tiles (BM, BN, BK, TM, TN): block computes BM x BN with (BM/TM)*(BN/TN) threads.
    GEMM_TILES = (8, 8, 4, 2, 2)
    GEMM_TILES_SMALL_M = (4, 8, 4, 2, 2)
    GEMM_TILES_F64 = GEMM_TILES
    GEMM_TILES_SMALL_M_F64 = GEMM_TILES_SMALL_M
    GEMM_PAD = 1
    GEMM_F32_REGS = None
    SPLIT_K_TARGET_BLOCKS = 2
    SPLIT_K_MIN_K = 16
else:
    TPB = 256
    REDUCE_TPB = 256
    MAX_BLOCKS = None       # derived from the device: 32 blocks per multiprocessor
    GEMM_TILES, GEMM_TILES_SMALL_M = HARDWARE_GEMM_TILES
    GEMM_TILES_F64, GEMM_TILES_SMALL_M_F64 = HARDWARE_GEMM_TILES_F64
    GEMM_PAD = 4            # breaks bank conflicts of the transposed shared-memory stores
    GEMM_F32_REGS = 128     # float32 GEMM register cap: two 256-thread blocks an SM (no spills
                            # in the modes fastnn launches: tools/gemm_ptx_report.py)
    SPLIT_K_TARGET_BLOCKS = None   # derived: 2 blocks per multiprocessor
    SPLIT_K_MIN_K = 512


@functools.lru_cache(maxsize=1)
def multiprocessors():
    if SIMULATOR:
        return 1
    from numba import cuda
    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


def max_blocks():
    return MAX_BLOCKS if MAX_BLOCKS is not None else 32 * multiprocessors()


def split_k_target():
    return SPLIT_K_TARGET_BLOCKS if SPLIT_K_TARGET_BLOCKS is not None else 2 * multiprocessors()


def grid(n, tpb=None):
    """Blocks for a grid-stride loop over ``n`` items."""
    tpb = TPB if tpb is None else tpb
    return max(1, min((int(n) + tpb - 1) // tpb, max_blocks()))
