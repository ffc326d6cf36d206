"""Static report on the CUDA GEMM kernel (dense layers and every convolution), without a GPU.

Compiles ``fastnn._kernels.cuda._gemm.gemm_kernel`` for sm_90 with NVVM, assembles it with ptxas
and prints, per dtype, operand mode and tile shape: registers, spills, shared memory, the resulting
blocks an SM, and the PTX instruction mix of the kernel (FMAs, shared and global loads, vector
loads, barriers).

Needs no driver, only NVVM, NVRTC and ptxas from NVIDIA's wheels, in a venv of its own:

    python -m venv /tmp/ptxvenv
    /tmp/ptxvenv/bin/pip install "numba-cuda==0.30.4" "numpy<2.5" nvidia-cuda-nvcc-cu12 \
        nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12
    PYTHONPATH=. /tmp/ptxvenv/bin/python tools/gemm_ptx_report.py
"""
import os
import re
import subprocess
import sys
import tempfile

import numba.cuda.dispatcher as _dispatcher
import nvidia.cuda_nvcc
from numba import cuda, types

from fastnn._kernels.cuda import _gemm

CC = (9, 0)


class _NoDevice:
    """Device functions ask the current device for its compute capability: answer for sm_90."""
    compute_capability = CC


_dispatcher.get_current_device = _NoDevice

PTXAS = os.path.join(list(nvidia.cuda_nvcc.__path__)[0], "bin", "ptxas")
I64 = types.Array(types.int64, 1, "C")


def signature(dtype):
    arr = types.Array(getattr(types, dtype), 1, "C")
    return (arr, arr, arr, arr, I64) + (types.int64,) * 5 + (
        types.UniTuple(types.int64, 4), types.UniTuple(types.int64, 8),
        types.UniTuple(types.int64, 6))


CASES = {
    "dense": (_gemm.A_ROW, _gemm.B_ROW, _gemm.C_ROW, _gemm.BIAS_N),
    "conv forward": (_gemm.A_ROW, _gemm.B_GATHER, _gemm.C_TAB, _gemm.BIAS_M),
    "conv data grad": (_gemm.A_TAB, _gemm.B_GATHER_STRIDED, _gemm.C_TAB, _gemm.BIAS_NONE),
    "conv weight grad": (_gemm.A_ROW, _gemm.B_COL, _gemm.C_ROW, _gemm.BIAS_NONE),
}
# {t}: f32 or f64
OPS = {"fma": r"\bfma\.rn\.{t}", "ld.shared": r"\bld\.shared\.{t}",
       "ld.shared.v": r"\bld\.shared\.v\d",
       "ld.global": r"\bld\.global\.(?:nc\.)?{t}", "ld.global.v": r"\bld\.global\.(?:nc\.)?v\d",
       "bar.sync": r"\bbar\.sync"}


def report(name, dtype, tiles, modes):
    kernel = _gemm.gemm_kernel(dtype, tiles, *modes)
    ptx, _ = cuda.compile_ptx(kernel.py_func, signature(dtype), cc=CC,
                              launch_bounds=kernel.targetoptions.get("launch_bounds"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        log = subprocess.run([PTXAS, f"-arch=sm_{CC[0]}{CC[1]}", "-v", "-o",
                              os.path.join(tmp, "k.cubin"), path],
                             capture_output=True, text=True, check=True).stderr

    def first(pattern):
        found = re.findall(pattern, log)
        return found[0] if found else "?"

    regs, spill, smem = (first(rx) for rx in (r"Used (\d+) registers", r"(\d+) bytes spill stores",
                                               r"(\d+) bytes smem"))
    t = "f" + dtype[-2:]
    BM, BN, _, TM, TN = tiles
    nt = BM // TM * BN // TN
    # sm_90: 64 K registers (allocated per warp, 8 a thread at a time), 228 KiB shared memory
    # (1 KiB of it reserved a block), 2048 threads, 32 blocks an SM
    r8 = -(-int(regs) // 8) * 8 if regs != "?" else 255
    blocks = min(65536 // (-(-nt // 32) * 32 * r8), 233472 // (int(smem) + 1024) if smem != "?"
                 else 1, 2048 // nt, 32)
    counts = " ".join(f"{op}={len(re.findall(rx.replace('{t}', t), ptx))}"
                      for op, rx in OPS.items())
    print(f"{t} {name:17s} {str(tiles):20s} regs={regs:4s} spill={spill:3s} smem={smem:6s} "
          f"blocks/SM={blocks} {counts}")


def main():
    print(f"sm_{CC[0]}{CC[1]}; instruction counts are static (PTX text), not executed")
    for dtype in ("float32", "float64"):
        for tiles in (_gemm.choose_tiles(10 ** 6, dtype), _gemm.choose_tiles(1, dtype)):
            for name, modes in CASES.items():
                report(name, dtype, tiles, modes)


if __name__ == "__main__":
    sys.exit(main())
