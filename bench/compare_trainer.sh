#!/usr/bin/env bash
# C++ trainer vs PyTorch eager on the same machine, network, batch and thread count,
# in one run. Usage: bench/compare_trainer.sh [BUILD_DIR] [extra args for both]
# e.g. bench/compare_trainer.sh build --threads 2 --iters 5 --depths 3,9,18
set -euo pipefail
BUILD_DIR=${1:-build}
shift || true
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(--threads "$(nproc)" --iters 5 --depths 3,9,18)
cpp=$(mktemp) py=$(mktemp)
trap 'rm -f "$cpp" "$py"' EXIT
# Alternate the two so that neither always runs on a warmer machine.
"$BUILD_DIR/bench/trainer_bench" "${ARGS[@]}" | tee "$cpp"
PYTHON=${PYTHON:-/usr/bin/python3}  # Debian's, where python3-torch lives
"$PYTHON" "$(dirname "$0")/reference_torch.py" "${ARGS[@]}" | tee "$py"
echo
printf '%-8s %14s %14s %8s %14s %14s %8s\n' network "C++ train/s" "Py train/s" ratio "C++ eval/s" "Py eval/s" ratio
for layers in $(grep -o 'impl=cpp layers=[0-9]*' "$cpp" | cut -d= -f3); do
  c=$(grep "impl=cpp layers=$layers " "$cpp"); p=$(grep "impl=python layers=$layers " "$py")
  ct=$(sed 's/.*train_img_s=\([0-9.]*\).*/\1/' <<<"$c"); pt=$(sed 's/.*train_img_s=\([0-9.]*\).*/\1/' <<<"$p")
  ce=$(sed 's/.*eval_img_s=\([0-9.]*\).*/\1/' <<<"$c"); pe=$(sed 's/.*eval_img_s=\([0-9.]*\).*/\1/' <<<"$p")
  awk -v l="resnet$layers" -v ct="$ct" -v pt="$pt" -v ce="$ce" -v pe="$pe" \
    'BEGIN { printf "%-8s %14.1f %14.1f %8.2f %14.1f %14.1f %8.2f\n", l, ct, pt, ct/pt, ce, pe, ce/pe }'
done
