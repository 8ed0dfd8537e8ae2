#!/usr/bin/env bash
# The GPU check (issue 13), for a machine with CUDA and a pip `torch` (nothing else):
#  1. builds the trainer and its benchmark against the LibTorch inside pip torch
#     (RESWEEP_TRAINER_ONLY: LibTorch and zlib only; CUDA streams and graphs compiled in);
#  2. checks that a short ResNet-20 training run learns on the GPU (fp32 and bf16);
#  3. measures training and evaluation images/s at batch 128 for ResNet-20/32/44/56/110:
#     eager fp32; bf16 + channels-last; K = 2, 4, 8 runs at once on the GPU; F = 5 seeds
#     fused into one network; CUDA graphs on and off; their combinations; and PyTorch
#     eager (Python) on the same GPU;
#  4. writes the table and the projected wall time of the depth study to OUT_DIR.
# Every stage has its own time limit and the table is rewritten after each one, so a
# slow stage costs its own rows only. Budget: DEADLINE seconds in all (default 420).
#   scripts/gpu-check.sh OUT_DIR
# OUT_DIR gets gpu-check.txt (the whole log), results.txt (RESULT lines) and
# gpu-table.md (the table for bench/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.txt") 2>&1
PY=${PYTHON:-python3}
DEADLINE=${DEADLINE:-420}
ITERS=${ITERS:-10}
ROUNDS=${ROUNDS:-5}
DEPTHS=${DEPTHS:-3,5,7,9,18}
DEVICE=${DEVICE:-cuda:0}  # DEVICE=cpu TORCH_CMAKE=... tries the script on a machine without a GPU
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
export PATH="/usr/local/cuda/bin:$PATH"

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "cores $(nproc); $(g++ --version | head -1); $(cmake --version | head -1)"
$PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI)'
TORCH_CMAKE=${TORCH_CMAKE:-$($PY -c 'import torch; print(torch.utils.cmake_prefix_path)')}
CXX_STD=$($PY -c 'import torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); print(20 if v >= (2, 13) else 17)')

echo "== build (trainer only) against $TORCH_CMAKE, C++$CXX_STD"
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
EXTRA=()
command -v nvcc >/dev/null && EXTRA+=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DTORCH_CUDA_ARCH_LIST=9.0)
configure() {
  timeout 200 cmake -S . -B build-gpu "${GEN[@]}" -DRESWEEP_TRAINER_ONLY=ON -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_STANDARD="$CXX_STD" -DCMAKE_CXX_COMPILER_LAUNCHER="${LAUNCHER:-}" \
    -DRESWEEP_WERROR_UNUSED_RESULT=OFF -DCMAKE_PREFIX_PATH="$TORCH_CMAKE" \
    -DTorch_DIR="$TORCH_CMAKE/Torch" "${EXTRA[@]}" "$@" >"$OUT/cmake.txt" 2>&1 ||
    { tail -40 "$OUT/cmake.txt"; echo "gpu-check: cmake FAILED"; exit 1; }
  grep -E "resweep:" "$OUT/cmake.txt" | head -5
}
build() {
  timeout 300 cmake --build build-gpu -j "$(nproc)" --target trainer_bench trainer_check \
    >"$OUT/build.txt" 2>&1
}
configure
if ! build; then
  grep -E "error|Error" "$OUT/build.txt" | head -30
  # Without the CUDA extras (streams, graphs) the single-run rows can still be measured.
  echo "gpu-check: build FAILED; trying again without CUDA streams and graphs"
  configure -DRESWEEP_CUDA_EXTRAS=OFF
  build || { grep -E "error|Error" "$OUT/build.txt" | head -30; echo "gpu-check: build FAILED"; exit 1; }
fi
echo "build: $(elapsed) s"

echo "== does it learn on the GPU?"
timeout 60 build-gpu/bench/trainer_check --device "$DEVICE" --epochs 3 || echo "trainer_check fp32 FAILED"
timeout 60 build-gpu/bench/trainer_check --device "$DEVICE" --epochs 3 --amp bf16 || echo "trainer_check bf16 FAILED"
echo "learn checks: $(elapsed) s"

RESULTS="$OUT/results.txt"
: >"$RESULTS"
table() { $PY bench/gpu_table.py "$RESULTS" --device "${GPU_NAME:-GPU}" >"$OUT/gpu-table.md" 2>&1; }
# One configuration: skipped when the deadline is near, bounded by its own timeout.
measure() {
  local budget=$((DEADLINE - $(elapsed)))
  if [ "$budget" -lt 30 ]; then echo "-- skipped (deadline): $*"; return; fi
  [ "$budget" -gt 90 ] && budget=90
  echo "-- $* ($(elapsed) s)"
  timeout "$budget" "$@" | tee -a "$RESULTS.raw" | grep -v '^RESULT'
  grep '^RESULT' "$RESULTS.raw" >"$RESULTS"
  table
}
: >"$RESULTS.raw"
B=(build-gpu/bench/trainer_bench --device "$DEVICE" --iters "$ITERS" --rounds "$ROUNDS" --depths "$DEPTHS")
echo "== throughput, batch 128, $ROUNDS rounds of $ITERS steps (median and spread)"
measure "${B[@]}"
measure "${B[@]}" --amp bf16 --channels-last
measure $PY bench/reference_torch.py --device "${DEVICE%%:*}" --iters "$ITERS" --rounds "$ROUNDS" --depths "$DEPTHS" --modes fp32,bf16+cl
measure "${B[@]}" --amp bf16 --channels-last --fuse 5
measure "${B[@]}" --amp bf16 --channels-last --runs 4
measure "${B[@]}" --amp bf16 --channels-last --cuda-graphs
measure "${B[@]}" --amp bf16 --channels-last --fuse 5 --cuda-graphs
# The best configuration on an H200 (2026-11-27); then the depth study's own shape (its
# five cells as five gangs of five seeds at once) and K graphed runs without fusion.
measure "${B[@]}" --amp bf16 --channels-last --fuse 5 --cuda-graphs --runs 4
measure "${B[@]}" --amp bf16 --channels-last --fuse 5 --cuda-graphs --runs 5
measure "${B[@]}" --amp bf16 --channels-last --cuda-graphs --runs 8
# K alone, at more values.
measure "${B[@]}" --amp bf16 --channels-last --runs 2
measure "${B[@]}" --amp bf16 --channels-last --runs 8
# Grouped convolutions in NCHW rather than channels-last.
measure "${B[@]}" --amp bf16 --fuse 5 --cuda-graphs --runs 4
table
echo
cat "$OUT/gpu-table.md"
echo "gpu-check: $(elapsed) s in all"
