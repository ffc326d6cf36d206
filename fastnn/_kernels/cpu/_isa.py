"""The instruction set the CPU kernels are compiled for, and the kernel shapes chosen from it.

Numba compiles for the host CPU (or for ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` when set, as
when AVX2 code is checked on an AVX-512 machine), and its cache is keyed on that target, so a
choice made here at import always matches the code that runs. What is chosen:

- the rows of ``conv._gemm_nt``'s register tile: an 8x3 tile keeps 24 vector accumulators plus
  the 11 loaded rows, which fit the 32 vector registers of AVX-512 and of aarch64 (NEON); with
  16 registers (SSE, AVX, AVX2, with or without FMA) they spill, and the 4x3 tile ran 1.8x faster
  (measured on Zen 2, AVX2). AVX-512 and NEON are chosen by that register count, not yet
  measured on this project's machines of those kinds.
"""
import functools
import os
import platform

# LLVM CPU names with AVX-512 (for NUMBA_CPU_NAME given without NUMBA_CPU_FEATURES)
_AVX512_CPUS = ("skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
                "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids",
                "graniterapids", "znver4", "znver5", "x86-64-v4", "knl", "knm")


@functools.lru_cache(maxsize=1)
def cpu_target():
    """What the CPU kernels compile for: ``{"cpu": LLVM CPU name, "instruction_set": "AVX-512" |
    "AVX2+FMA" | "AVX2" | "AVX" | "SSE4.2" | "NEON" | ..., "vector_registers": 16 | 32,
    "vector_bits": ..., "conv_tile": "8x3" | "4x3", "source": "host" | "NUMBA_CPU_NAME..."}``."""
    import llvmlite.binding as llvm
    name = os.environ.get("NUMBA_CPU_NAME") or "host"
    given = os.environ.get("NUMBA_CPU_FEATURES")
    if name == "host":
        name = llvm.get_host_cpu_name()
        features = given or llvm.get_host_cpu_features().flatten()
        source = "host" if not given else "NUMBA_CPU_FEATURES"
    else:
        features = given or ""
        source = "NUMBA_CPU_NAME" + (" + NUMBA_CPU_FEATURES" if given else "")
    on = {f[1:] for f in features.split(",") if f.startswith("+")}
    arm = platform.machine().lower() in ("aarch64", "arm64")
    if not given and name != llvm.get_host_cpu_name() and not arm:
        on = {"avx512f", "avx2", "fma", "avx"} if name in _AVX512_CPUS else (
            {"avx2", "fma", "avx"} if name in ("haswell", "broadwell", "skylake", "znver1",
                                               "znver2", "znver3", "x86-64-v3") else set())
    if arm:
        isa, registers, bits = "NEON", 32, 128
    elif "avx512f" in on:
        isa, registers, bits = "AVX-512", 32, 512
    elif "avx2" in on:
        isa, registers, bits = ("AVX2+FMA" if "fma" in on else "AVX2"), 16, 256
    elif "avx" in on:
        isa, registers, bits = "AVX", 16, 256
    elif "sse4.2" in on:
        isa, registers, bits = "SSE4.2", 16, 128
    else:
        isa, registers, bits = platform.machine() or "unknown", 16, 128
    return {"cpu": name, "instruction_set": isa, "vector_registers": registers,
            "vector_bits": bits, "fma": "fma" in on or arm,
            "conv_tile": "8x3" if registers >= 32 else "4x3", "source": source}


def tile_rows():
    """Rows of A in ``conv._gemm_nt``'s register tile for this target (8 or 4)."""
    return 8 if cpu_target()["vector_registers"] >= 32 else 4
