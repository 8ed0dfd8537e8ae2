#!/bin/bash
# What each part of a report's write costs, end to end: builds the coordinator once per
# patch in bench/ingest_variants/ (each takes away part of the durable write of an epoch
# report; none of them is correct, they are for measuring only) and runs ingest_bench on
# the current build's coordinator, on the write path the patches take apart (`before`:
# commit $PATCH_BASE, default b53b576, the last one that wrote each report to the run's
# row and `epochs`; schema 13) and on each variant, alternating, REPS times.
#
# A patch may build on another: its first line says "Applies on top of: OTHER.patch".
#
# usage: bench/ingest_variants.sh [REPS] [-- ingest_bench options]
#   e.g. bench/ingest_variants.sh 2 -- --rounds 3 --round-seconds 4
# Needs the project built in build/ (build/bench/ingest_bench and the coordinator).
# Variant sources and builds go under $VARIANTS_DIR (default /tmp/resweep-ingest-variants):
# PATCH_BASE's tree (git archive) with the patch (after its base) applied, the coordinator only built (a few
# minutes each the first time; with ccache, CCACHE_BASEDIR set to a folder above both
# trees, seconds).
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
reps=2
if [[ $# -gt 0 && $1 != "--" ]]; then
  reps=$1
  shift
fi
[[ $# -gt 0 && $1 == "--" ]] && shift
bench_args=("$@")
[[ ${#bench_args[@]} -eq 0 ]] && bench_args=(--rounds 3 --round-seconds 4)

bench=$root/build/bench/ingest_bench
main_bin=$root/build/coordinator/resweep-coordinator
for f in "$bench" "$main_bin"; do
  [[ -x $f ]] || { echo "ingest_variants: $f is missing: build the project first (cmake --build build)" >&2; exit 1; }
done

dir=${VARIANTS_DIR:-/tmp/resweep-ingest-variants}
mkdir -p "$dir"
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
patch_base=$(git rev-parse "${PATCH_BASE:-b53b576}")

names=(main)
bins=("$main_bin")
for patch in before "$root"/bench/ingest_variants/*.patch; do
  name=$(basename "$patch" .patch)
  tree=$dir/$name
  echo "ingest_variants: building variant $name (${patch_base:0:9} + $(basename "$patch"))" >&2
  rm -rf "$tree/src"
  mkdir -p "$tree/src"
  git archive "$patch_base" | tar -x -C "$tree/src"
  # A patch whose first line is "Applies on top of: BASE.patch" takes BASE's changes first.
  chain=()
  [[ $patch != before ]] && chain=("$patch")
  while [[ ${#chain[@]} -gt 0 ]] && base=$(sed -n '1s/^Applies on top of: //p' "${chain[0]}") &&
    [[ -n $base ]]; do
    chain=("$root/bench/ingest_variants/$base" "${chain[@]}")
  done
  for p in "${chain[@]}"; do (cd "$tree/src" && git apply "$p"); done
  cmake -S "$tree/src" -B "$tree/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESWEEP_BUILD_WORKER=OFF \
    "${launcher[@]}" > "$tree/configure.log" 2>&1 ||
    { echo "ingest_variants: configuring $name failed, see $tree/configure.log" >&2; exit 1; }
  cmake --build "$tree/build" -j"$(nproc)" --target resweep-coordinator > "$tree/build.log" 2>&1 ||
    { echo "ingest_variants: building $name failed, see $tree/build.log" >&2; exit 1; }
  names+=("$name")
  bins+=("$tree/build/coordinator/resweep-coordinator")
done

summary=()
for rep in $(seq 1 "$reps"); do
  for i in "${!names[@]}"; do
    echo "== ${names[$i]}, repetition $rep of $reps" >&2
    out=$("$bench" "${bench_args[@]}" --coordinator-bin "${bins[$i]}" 2>&1) ||
      { echo "$out" >&2; echo "ingest_variants: ingest_bench failed on ${names[$i]}" >&2; exit 1; }
    ratio=$(sed -n 's/^  ratio coord\/echo *//p' <<< "$out")
    rate=$(sed -n 's/^  coordinator  *\([0-9].*\) reports\/s/\1/p' <<< "$out")
    cpu=$(awk '/^CPU us per call/ {c = 1} c && $1 == "coordinator" {print $2; exit}' <<< "$out")
    echo "   ratio $ratio, $rate reports/s, coordinator $cpu us CPU per report" >&2
    summary+=("$(printf '%-20s %d  ratio %-22s %-24s reports/s  %s us' "${names[$i]}" "$rep" \
      "$ratio" "$rate" "$cpu")")
  done
done
echo
echo "ingest_variants: ${bench_args[*]}, medians (min-max) over each run's rounds"
printf '%s\n' "${summary[@]}"
