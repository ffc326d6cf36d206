#!/usr/bin/env bash
# Run the CUDA tests on a real GPU under NVIDIA's compute-sanitizer: racecheck (shared-memory
# data races) and synccheck (invalid or divergent __syncthreads), each over
#     FASTNN_REAL_GPU=1 python -m pytest tests/cuda -x -q -k "not slow"
#
# Needs an NVIDIA GPU, its driver and the CUDA toolkit's compute-sanitizer (on PATH, or in
# $CUDA_HOME/bin or /usr/local/cuda/bin). It cannot run under the numba.cuda simulator.
#
#   tools/gpu_sanitize.sh                       # racecheck, then synccheck
#   TOOLS="racecheck synccheck memcheck initcheck" tools/gpu_sanitize.sh
#   K_EXPR="alloc or repeatable" tools/gpu_sanitize.sh      # a subset (pytest -k)
#   tools/gpu_sanitize.sh --maxfail=3           # extra arguments go to pytest
#
# Environment: PYTHON (default: python), TOOLS, K_EXPR (default: "not slow"), LOG_DIR (default:
# sanitize-logs). A sanitized run is 10 to 100 times slower than a plain one. Exit status: 0 when
# every tool reported no error and the tests passed, 1 otherwise, 2 when it could not run.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-python}
TOOLS=${TOOLS:-"racecheck synccheck"}
K_EXPR=${K_EXPR:-"not slow"}
LOG_DIR=${LOG_DIR:-sanitize-logs}

SANITIZER=$(command -v compute-sanitizer || true)
for dir in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    if [ -z "$SANITIZER" ] && [ -n "$dir" ] && [ -x "$dir/bin/compute-sanitizer" ]; then
        SANITIZER="$dir/bin/compute-sanitizer"
    fi
done
if [ -z "$SANITIZER" ]; then
    echo "gpu_sanitize: compute-sanitizer not found (not on PATH, nor in \$CUDA_HOME/bin," >&2
    echo "  \$CUDA_PATH/bin or /usr/local/cuda/bin). It ships with the CUDA toolkit" >&2
    echo "  (https://developer.nvidia.com/cuda-downloads); install it or put it on PATH." >&2
    exit 2
fi

if ! env -u NUMBA_ENABLE_CUDASIM "$PYTHON" -c \
        "from numba import cuda; import sys; sys.exit(0 if cuda.is_available() else 1)"; then
    echo "gpu_sanitize: numba.cuda finds no usable GPU (driver, device or numba-cuda missing);" >&2
    echo "  the sanitizer needs real hardware." >&2
    exit 2
fi

mkdir -p "$LOG_DIR"
echo "compute-sanitizer: $SANITIZER ($("$SANITIZER" --version | tail -n 1))"
status=0
for tool in $TOOLS; do
    log="$LOG_DIR/$tool.log"
    echo "== $tool: pytest tests/cuda -x -q -k \"$K_EXPR\" $* (report: $log)"
    # --target-processes all: the tests start Python subprocesses; --require-cuda-init=no: some
    # of those never initialise CUDA, which is not an error
    env -u NUMBA_ENABLE_CUDASIM FASTNN_REAL_GPU=1 \
        "$SANITIZER" --tool "$tool" --error-exitcode 99 --target-processes all \
        --require-cuda-init=no \
        "$PYTHON" -m pytest tests/cuda -x -q -k "$K_EXPR" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    summary=$(grep -h "ERROR SUMMARY" "$log" 2>/dev/null | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        echo "== $tool: clean. ${summary}"
    elif [ "$rc" -eq 99 ]; then
        echo "== $tool: HAZARDS REPORTED. ${summary} See $log." >&2
        status=1
    else
        echo "== $tool: pytest failed (exit $rc). ${summary} See $log." >&2
        status=1
    fi
done
exit $status
