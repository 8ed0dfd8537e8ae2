#!/bin/bash
# The coordinator and the CLI build without LibTorch (issue 12): configures the sources
# with -DRESWEEP_BUILD_WORKER=OFF while CMake is forbidden to find Torch at all, and
# checks that the coordinator, the CLI and their tests are there, nothing of the
# worker is, and no compile command names a LibTorch header. With --build it also
# compiles and links them (minutes; run by hand, not by ctest).
#   tests/no_libtorch_build_test.sh SOURCE_DIR [--build]
set -euo pipefail
src=$(cd "$1" && pwd)
build_too=${2:-}
tmp=$(mktemp -d /tmp/resweep-coordinator-only.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "no_libtorch_build_test: FAIL: $*" >&2
  exit 1
}

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src" -B "$tmp" -DRESWEEP_BUILD_WORKER=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON \
  "${launcher[@]}" >"$tmp/configure.log" 2>&1 || {
  cat "$tmp/configure.log" >&2
  fail "configuring without LibTorch failed"
}
targets=$(cmake --build "$tmp" --target help)
for t in resweep-coordinator resweep coordinator_tests resweep_completions; do
  grep -qE "^\.\.\. $t( |$)" <<<"$targets" || fail "target $t missing without LibTorch"
done
for t in resweep-worker resweep_trainer worker_tests integration_tests trainer_bench; do
  if grep -qE "^\.\.\. $t( |$)" <<<"$targets"; then fail "target $t exists without LibTorch"; fi
done
if grep -qi "torch" "$tmp/compile_commands.json"; then
  fail "a compile command names LibTorch: $(grep -i -m1 torch "$tmp/compile_commands.json")"
fi
grep -q '"resweep"' "$tmp/CPackConfig.cmake" || fail "no CPack configuration"
if grep -q "worker" <<<"$(grep CPACK_COMPONENTS_ALL "$tmp/CPackConfig.cmake")"; then
  fail "the packages of a build without LibTorch include the worker"
fi
echo "no_libtorch_build_test: configured without LibTorch: coordinator, CLI and their tests, no worker"
if [ "$build_too" = --build ]; then
  cmake --build "$tmp" -j "$(nproc)" --target resweep-coordinator resweep coordinator_tests
  for bin in "$tmp/coordinator/resweep-coordinator" "$tmp/cli/resweep"; do
    if ldd "$bin" | grep -q torch; then fail "$bin links LibTorch"; fi
  done
  echo "no_libtorch_build_test: built and linked without LibTorch"
fi
