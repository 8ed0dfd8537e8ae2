#!/bin/bash
# Coordinator CPU per recorded epoch under ingest_bench: runs
#   BUILD/bench/ingest_bench --coordinator-bin COORD_BIN [ARGS...]
# samples the coordinator's utime+stime (/proc/PID/stat) until it exits, and divides
# by the epochs its sweep holds at the end (warm-up included; the coordinator's idle
# time during the echo rounds is counted too, and is small). Prints the bench's own
# summary lines with it. Usage:
#   bash bench/ingest_cpu_per_report.sh BUILD COORD_BIN [ingest_bench args...]
set -euo pipefail
build=$1
bin=$2
shift 2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$build/bench/ingest_bench" --coordinator-bin "$bin" "$@" >"$out" 2>&1 &
bench=$!
pid=""
for _ in $(seq 100); do
  sleep 0.1
  pid=$(pgrep -P "$bench" -f "$bin" | head -1 || true)
  [ -n "$pid" ] && break
done
[ -n "$pid" ] || { echo "no coordinator process found" >&2; cat "$out" >&2; exit 1; }
last=""
while kill -0 "$pid" 2>/dev/null; do
  if s=$(cat "/proc/$pid/stat" 2>/dev/null); then last=$s; fi
  sleep 0.1
done
wait "$bench" || { cat "$out" >&2; exit 1; }
ticks=$(echo "$last" | awk '{print $14 + $15}')
hz=$(getconf CLK_TCK)
epochs=$(grep -o "sweep holds [0-9]* epochs" "$out" | grep -o "[0-9]*")
grep -E "^ingest_bench:|^  (echo|coord|ratio|latency)|^load after" "$out"
awk -v t="$ticks" -v hz="$hz" -v n="$epochs" \
  'BEGIN { printf "coordinator CPU %.2f s for %d epochs: %.1f us per epoch\n", t / hz, n, t / hz / n * 1e6 }'
