#!/usr/bin/env bash
# Listing a big sweep (issue 9 goal 6): the real `resweep` CLI against a fresh
# `resweep-coordinator` (and offline with --db) on one synthetic sweep of RUNS runs
# (RUNS/100 learning rates x 100 seeds, all queued). Prints, per command, the wall
# time of ROUNDS rounds as median (min-max), and checks that every run is listed.
#
#   RUNS=100000 ROUNDS=5 bash bench/list_runs.sh build
set -euo pipefail

BUILD=${1:-build}
RUNS=${RUNS:-100000}
ROUNDS=${ROUNDS:-5}
SEEDS=100
CELLS=$((RUNS / SEEDS))
if ((CELLS < 1 || CELLS * SEEDS != RUNS)); then
  echo "list_runs.sh: RUNS must be a positive multiple of $SEEDS" >&2
  exit 2
fi
COORDINATOR=$BUILD/coordinator/resweep-coordinator
CLI=$BUILD/cli/resweep
for bin in "$COORDINATOR" "$CLI"; do
  [[ -x $bin ]] || { echo "list_runs.sh: no $bin (build first)" >&2; exit 2; }
done

dir=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$COORDINATOR" --listen 127.0.0.1:0 --port-file "$dir/port" --db "$dir/c.db" \
  --max-runs-per-sweep 1000000 --log-level warn >"$dir/coordinator.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [[ -s $dir/port ]] && break; sleep 0.1; done
[[ -s $dir/port ]] || { echo "coordinator did not start" >&2; cat "$dir/coordinator.log" >&2; exit 1; }
address=127.0.0.1:$(cat "$dir/port")

{
  echo "name: list-bench"
  echo "trainer: {kind: synthetic}"
  echo "train: {epochs: 2}"
  echo "grid:"
  echo -n "  train.optimizer.lr: ["
  awk -v n="$CELLS" 'BEGIN { for (i = 1; i <= n; ++i) printf "%s%.7f", (i > 1 ? ", " : ""), i * 1e-6 }'
  echo "]"
  echo "seeds: $SEEDS"
} >"$dir/sweep.yaml"
start=$(date +%s.%N)
sweep=$("$CLI" -c "$address" --timeout 600 submit "$dir/sweep.yaml" 2>/dev/null)
echo "submitted $RUNS runs as sweep $sweep in $(echo "$(date +%s.%N) - $start" | bc) s"

# time_rounds LABEL EXPECTED_LINES CLI-ARGS...: ROUNDS timings of `resweep ARGS | wc -l`.
time_rounds() {
  local label=$1 expected=$2
  shift 2
  local times=() lines
  for _ in $(seq "$ROUNDS"); do
    local t0 t1
    t0=$(date +%s.%N)
    lines=$("$CLI" -c "$address" --timeout 600 "$@" | wc -l)
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
    if [[ $expected != - && $lines != "$expected" ]]; then
      echo "$label: $lines lines, expected $expected" >&2
      exit 1
    fi
  done
  printf '%s\n' "${times[@]}" | sort -g | awk -v label="$label" -v lines="$lines" '
    { t[NR] = $1 }
    END {
      median = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
      printf "%-34s %7.3f s median (%.3f-%.3f) over %d rounds, %d lines\n",
             label, median, t[1], t[NR], NR, lines
    }'
}

time_rounds "runs --format csv" $((RUNS + 1)) runs "$sweep" --format csv
time_rounds "runs (table)" $((RUNS + 1)) runs "$sweep"
time_rounds "runs --format json" - runs "$sweep" --format json
time_rounds "runs --format csv --db (offline)" $((RUNS + 1)) runs "$sweep" --format csv --db "$dir/c.db"
time_rounds "status" - status
time_rounds "status SWEEP" - status "$sweep"
# The JSON is one document holding every run once.
"$CLI" -c "$address" --timeout 600 runs "$sweep" --format json | python3 -c '
import json, sys
runs = json.load(sys.stdin)["runs"]
ids = {r["run_id"] for r in runs}
print(f"runs --format json: one valid document, {len(runs)} runs, {len(ids)} distinct")
sys.exit(0 if len(runs) == len(ids) == int(sys.argv[1]) else 1)' "$RUNS"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
