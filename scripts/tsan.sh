#!/usr/bin/env bash
# ThreadSanitizer run (`make tsan`; docs/development.md): builds the coordinator
# library, coordinator_tests (scheduler, store, server...) and integration_tests,
# with the resweep-coordinator, resweep-worker and resweep binaries they spawn,
# with clang -fsanitize=thread in build-tsan/, then runs both test binaries.
#
# A data race, lock-order inversion or other TSan report in ANY process (the test
# binary, or a coordinator, worker or CLI it spawned: they inherit TSAN_OPTIONS)
# fails the run: each process stops at its first report (halt_on_error, exit code
# 66) and writes it to $BUILD/tsan-logs/report.PID, and the script fails when any
# report file exists, whether or not the test noticed its child die.
#
# LibTorch, gRPC and protobuf are not TSan-instrumented. scripts/tsan.supp ignores
# what those libraries do through intercepted calls (called_from_lib); the build uses
# copies of four grpcpp headers with the happens-before edges of gRPC's callback
# completion queue annotated (scripts/tsan-grpc-annotations.patch), so gRPC's own
# hand-off of a call between its threads is not reported. The integration tests that
# train with LibTorch (listed in TORCH_TESTS below) are left out: the synthetic
# trainer exercises the same worker and coordinator code without OpenMP threads.
#
# Before the real suites, the check must bite: each deliberate race in
# tests/tsan_negative_test.cc (project code on gRPC's callback threads) must be
# reported, or the script fails.
# Usage: scripts/tsan.sh [--build-dir DIR] [--jobs N] [--filter GTEST_FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-tsan
jobs=$(nproc)
filter=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    *) echo "usage: $0 [--build-dir DIR] [--jobs N] [--filter GTEST_FILTER]" >&2; exit 2 ;;
  esac
done
CXX=${TSAN_CXX:-$(command -v clang++ || command -v clang++-14 || true)}
if [ -z "$CXX" ]; then
  echo "tsan: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

# Integration tests that train with LibTorch (its OpenMP threads are uninstrumented).
TORCH_TESTS="EndToEnd.RealLibTorchSweepAndAFailingRun"
TORCH_TESTS+=":EndToEnd.KilledWorkersRunIsFinishedByAnotherAfterTheLeaseExpires"
TORCH_TESTS+=":EndToEnd.SharedFilesystemCheckpointsLetAnotherWorkerResume"
TORCH_TESTS+=":WorkerSignal.SigtermDuringARunGivesTheLeaseBackWithAnyThreadCount"

start=$SECONDS
mkdir -p "$build"
# The annotated grpcpp headers (see the patch), found before the system's. Their path
# ends in include/grpcpp/ like the originals, so scripts/tsan-ignorelist.txt applies.
grpc_system=${TSAN_GRPC_INCLUDE:-/usr/include}
grpc_annotated=$PWD/$build/grpc-annotated/include
headers=(grpcpp/support/callback_common.h grpcpp/impl/call_op_set.h grpcpp/support/server_callback.h
  grpcpp/impl/codegen/server_callback_handlers.h)
rm -rf "$grpc_annotated.new"
for h in "${headers[@]}"; do
  mkdir -p "$(dirname "$grpc_annotated.new/$h")"
  cp "$grpc_system/$h" "$grpc_annotated.new/$h"
done
if ! patch -s -p1 -d "$grpc_annotated.new" <scripts/tsan-grpc-annotations.patch; then
  echo "tsan: scripts/tsan-grpc-annotations.patch does not apply to $grpc_system/grpcpp" \
    "(another gRPC version than 1.51?): update the patch" >&2
  exit 1
fi
for h in "${headers[@]}"; do  # only what changed, so a rebuild is incremental
  if ! cmp -s "$grpc_annotated.new/$h" "$grpc_annotated/$h"; then
    mkdir -p "$(dirname "$grpc_annotated/$h")"
    cp "$grpc_annotated.new/$h" "$grpc_annotated/$h"
  fi
done
rm -rf "$grpc_annotated.new"

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -fno-omit-frame-pointer" \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fsanitize-ignorelist=$PWD/scripts/tsan-ignorelist.txt \
-isystem $grpc_annotated" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DRESWEEP_BUILD_BENCH=OFF \
  -DRESWEEP_TSAN_NEGATIVE_TESTS=ON "${launcher[@]}" >/dev/null
if ! cmake --build "$build" -j "$jobs" --target coordinator_tests integration_tests \
    tsan_negative_tests resweep-coordinator resweep-worker resweep >"$build/build.log" 2>&1; then
  tail -n 40 "$build/build.log"
  echo "tsan: build failed (log: $build/build.log)" >&2
  exit 1
fi
echo "tsan: built in $((SECONDS - start))s"

logs=$PWD/$build/tsan-logs
rm -rf "$logs"
mkdir -p "$logs"
tsan_options="halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
suppressions=$PWD/scripts/tsan.supp"
export TSAN_OPTIONS="$tsan_options log_path=$logs/report"
# Without address-space randomisation: TSan's fixed memory layout fails on kernels
# with high mmap entropy. setarch is inherited by every child; skip it if refused.
run=()
if setarch "$(uname -m)" -R true 2>/dev/null; then run=(setarch "$(uname -m)" -R); fi

# The check must bite: each deliberate race is run alone and must stop its process
# with a data-race report whose stacks name the racing project functions.
negative_check() {  # test name, function that must appear in the report...
  local test=$1 dir=$logs/negative/$1
  shift
  mkdir -p "$dir"
  local rc=0
  TSAN_OPTIONS="$tsan_options log_path=$dir/report" \
    "${run[@]}" "$build/tests/tsan_negative_tests" "--gtest_filter=TsanNegative.$test" \
    >"$dir/out" 2>&1 || rc=$?
  local report
  report=$(cat "$dir"/report.* 2>/dev/null || true)
  local missing=()
  for f in "$@"; do grep -qF "$f" <<<"$report" || missing+=("$f"); done
  if [ "$rc" -ne 66 ] || ! grep -q "WARNING: ThreadSanitizer: data race" <<<"$report" ||
      [ ${#missing[@]} -ne 0 ]; then
    tail -n 30 "$dir/out"
    printf '%s\n' "$report" | head -n 60
    echo "tsan: the deliberate race TsanNegative.$test was not reported as expected (exit $rc," \
      "missing: ${missing[*]:-none}): a suppression or annotation hides project races" >&2
    exit 1
  fi
  echo "== tsan: deliberate race TsanNegative.$test reported (exit 66)"
}
negative_check RaceBetweenTwoGrpcHandlers "RacyHandlerService::ListWorkers" \
  "grpc::internal::CallbackUnaryHandler"
negative_check RaceBetweenAHandlerInProjectCodeAndAProjectThread "RacyStore::ListWorkers" \
  "RacyStore::ForgetListings" "resweep::CoordinatorService::ListWorkers"

status=0
run_tests() {  # binary, gtest filter
  local t0=$SECONDS
  echo "== tsan: $1 ${2:+--gtest_filter=$2}"
  if ! "${run[@]}" "$build/tests/$1" ${2:+"--gtest_filter=$2"} --gtest_brief=1 \
      >"$logs/$1.out" 2>&1; then
    tail -n 60 "$logs/$1.out"
    echo "tsan: $1 FAILED" >&2
    status=1
  fi
  echo "   $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$logs/$1.out" | tr '\n' ' ')($((SECONDS - t0))s)"
}
run_tests coordinator_tests "${filter:-*}"
run_tests integration_tests "${filter:-*}-$TORCH_TESTS"

reports=$(ls "$logs"/report.* 2>/dev/null || true)
if [ -n "$reports" ]; then
  for r in $reports; do
    echo "--- $r"
    cat "$r"
  done
  echo "tsan: FAILED: $(wc -w <<<"$reports") process(es) reported (above; logs in $logs)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then exit 1; fi
echo "tsan: no reports, every test passed ($((SECONDS - start))s in all)"
