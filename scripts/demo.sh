#!/usr/bin/env bash
# make demo: a coordinator and two CPU workers on loopback with a fresh SQLite file,
# a real small sweep (sweeps/demo.yaml, Fashion-MNIST), then the results table and the
# sweep's report (demo-run/report/README.md with its figures and CSV files).
set -euo pipefail
BUILD_DIR=${1:-build}
BIN=$(cd "$BUILD_DIR" && pwd)
RUN_DIR=demo-run
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

start=$(date +%s)
"$BIN/coordinator/resweep-coordinator" --listen 127.0.0.1:0 --port-file "$RUN_DIR/port" \
  --http 127.0.0.1:0 --http-port-file "$RUN_DIR/http-port" \
  --db "$RUN_DIR/demo.db" --lease-seconds 30 --heartbeat-seconds 2 \
  >"$RUN_DIR/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$RUN_DIR/port" ] && break; sleep 0.1; done
[ -s "$RUN_DIR/port" ] || { echo "coordinator did not start; see $RUN_DIR/coordinator.log"; exit 1; }
export RESWEEP_COORDINATOR="127.0.0.1:$(cat "$RUN_DIR/port")"
echo "coordinator on $RESWEEP_COORDINATOR, database $RUN_DIR/demo.db"
echo "Dashboard: http://127.0.0.1:$(cat "$RUN_DIR/http-port")/ (docs/dashboard.md)"
echo "JSON API and metrics: http://127.0.0.1:$(cat "$RUN_DIR/http-port")/api/v1/sweeps," \
  "http://127.0.0.1:$(cat "$RUN_DIR/http-port")/metrics (docs/http-api.md)"

# Two workers, one core each (the machine's two cores).
for w in 1 2; do
  "$BIN/worker/resweep-worker" --device cpu --threads 1 --name "demo-worker-$w" \
    >"$RUN_DIR/worker-$w.log" 2>&1 &
  pids+=($!)
done

sweep=$("$BIN/cli/resweep" submit sweeps/demo.yaml)
echo "submitted sweep $sweep; training (logs in $RUN_DIR/)..."
"$BIN/cli/resweep" wait "$sweep" --poll 15
echo
"$BIN/cli/resweep" runs "$sweep"
echo
"$BIN/cli/resweep" results "$sweep"
echo
"$BIN/cli/resweep" report "$sweep" -o "$RUN_DIR/report"
echo "demo wall time: $(( $(date +%s) - start )) s"
echo "report: $(pwd)/$RUN_DIR/report/README.md"
