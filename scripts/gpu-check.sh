#!/usr/bin/env bash
# GPU check for a machine with CUDA and a pip `torch` (no other packages needed):
#  1. builds the trainer and its benchmark against the LibTorch inside pip torch
#     (RESWEEP_TRAINER_ONLY: LibTorch and zlib only);
#  2. checks that a short ResNet-20 training run learns on the GPU (fp32 and bf16);
#  3. prints images/s for ResNet-20/56/110, fp32 and AMP, next to PyTorch eager on
#     the same GPU.
# Budget: under 6 minutes on one H100 (most of it is the build).
#   scripts/gpu-check.sh [OUT_DIR]     (results also written to OUT_DIR/gpu-check.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.txt") 2>&1
PY=${PYTHON:-python3}
start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
TORCH_CMAKE=$($PY -c 'import torch; print(torch.utils.cmake_prefix_path)')
$PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI)'

echo "== build (trainer only) against $TORCH_CMAKE"
cmake -S . -B build-gpu -DRESWEEP_TRAINER_ONLY=ON -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_CMAKE" -DTorch_DIR="$TORCH_CMAKE/Torch" >/dev/null
cmake --build build-gpu -j "$(nproc)" --target trainer_bench trainer_check
echo "build: $(( $(date +%s) - start )) s"

echo "== does it learn on the GPU?"
build-gpu/bench/trainer_check --device cuda:0 --epochs 3
build-gpu/bench/trainer_check --device cuda:0 --epochs 3 --amp bf16

echo "== throughput, batch 128 (C++ then PyTorch eager, same GPU)"
for mode in "" "--amp bf16" "--amp fp16" "--channels-last --amp bf16"; do
  echo "-- mode: ${mode:-fp32}"
  # shellcheck disable=SC2086
  build-gpu/bench/trainer_bench --device cuda:0 --iters 50 --depths 3,9,18 $mode
  py_mode=${mode}
  # shellcheck disable=SC2086
  $PY bench/reference_torch.py --device cuda --iters 50 --depths 3,9,18 $py_mode
done
echo "gpu-check: $(( $(date +%s) - start )) s in all"
