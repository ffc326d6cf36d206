#!/usr/bin/env bash
# The hardware check of the GPU backend, as one run of under 8 minutes on a lent GPU: the whole
# tests/cuda suite on the device (FASTNN_REAL_GPU=1), then benchmarks/bench_gpu.py beside PyTorch
# CUDA (cuBLAS, cuDNN with TF32 off and on) from the same process and machine.
#
#   tools/gpu_check.sh                  # logs and gpu.json under $OUT (default: gpu-check/)
#   TEST_SECONDS=200 BENCH_SECONDS=200 tools/gpu_check.sh
#   BENCH_ARGS="--only conv,lenet" tools/gpu_check.sh
#
# Needs an NVIDIA GPU, numba-cuda (pyproject pins 0.30.4: where the machine has another version,
# carry that wheel and put it first on PYTHONPATH) and PyTorch with CUDA for the peer columns.
# Each step has its own time limit, so a hung step still leaves the other's results; the
# benchmarks run even when a test fails (the log says which). Exit status: 0 when the tests
# passed and the benchmarks finished, 1 otherwise.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
PYTHON=${PYTHON:-python3}
OUT=${OUT:-gpu-check}
TEST_SECONDS=${TEST_SECONDS:-240}
BENCH_SECONDS=${BENCH_SECONDS:-180}
BENCH_ARGS=${BENCH_ARGS:-"--repeat 10 --lenet-repeats 2"}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM

"$PYTHON" - <<'EOF' 2>&1 | tee "$OUT/machine.txt"
import numba, numpy
from numba import cuda
print("numba", numba.__version__, "numpy", numpy.__version__)
try:
    import numba_cuda
    print("numba-cuda", getattr(numba_cuda, "__version__", "?"))
except ImportError:
    print("numba-cuda: not installed (numba's own CUDA target)")
print("device", cuda.get_current_device().name, "cc", cuda.get_current_device().compute_capability)
EOF

status=0
start=$(date +%s)
FASTNN_REAL_GPU=1 timeout "$TEST_SECONDS" "$PYTHON" -m pytest -q -p no:cacheprovider \
    --durations=15 tests/cuda 2>&1 | tee "$OUT/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "tests: $(( $(date +%s) - start )) s" | tee -a "$OUT/tests.log"

start=$(date +%s)
# shellcheck disable=SC2086  # BENCH_ARGS holds several arguments
timeout "$BENCH_SECONDS" "$PYTHON" benchmarks/bench_gpu.py $BENCH_ARGS --out "$OUT/gpu.json" \
    2>&1 | tee "$OUT/bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "benchmarks: $(( $(date +%s) - start )) s" | tee -a "$OUT/bench.log"
exit $status
