#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang and runs each one for a set
# time, starting from the seed corpus: the stored bad-input corpora plus
# tests/fuzz/seeds. A crash, leak, sanitizer report or timeout fails the script and
# leaves the input under build-fuzz/artifacts/ (add it to the seeds once fixed).
# Usage: scripts/fuzz.sh [--seconds N per target] [--build-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
build=build-fuzz
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--build-dir DIR]" >&2; exit 2 ;;
  esac
done
CXX=${FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}
if [ -z "$CXX" ]; then
  echo "fuzz: clang++ not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S tests/fuzz -B "$build" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=Debug >/dev/null
fi
cmake --build "$build" -j "$(nproc)" 2>&1 | grep -E "error|warning: .*fuzz|Built target fuzz_" || true
[ -x "$build/fuzz_sweep_spec" ] && [ -x "$build/fuzz_cifar" ] && [ -x "$build/fuzz_idx" ] || {
  echo "fuzz: build failed" >&2; cmake --build "$build" -j 1; exit 1; }

run() {  # target, seed dirs...
  local target=$1; shift
  local work="$build/corpus/$target"
  mkdir -p "$work" "$build/artifacts"
  echo "== fuzz_$target for ${seconds}s (seeds: $*)"
  local log="$build/fuzz_$target.log"
  if ! "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" \
      "$work" "$@" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz_$target FAILED: input saved under $build/artifacts/" >&2
    return 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus|Done" "$log" | sed 's/^/  /'
  echo "  corpus: $(ls "$work" | wc -l) inputs"
}
run sweep_spec sweeps tests/corpus/sweeps
run cifar tests/corpus/data tests/fuzz/seeds/cifar
run idx tests/corpus/data tests/fuzz/seeds/idx
echo "fuzz: all targets ran ${seconds}s without a failure"
