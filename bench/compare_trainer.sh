#!/usr/bin/env bash
# C++ trainer vs PyTorch eager on the same machine, network, batch and thread count,
# in one run: ROUNDS rounds (default 10), the two alternating which goes first, so
# that neither always runs on a warmer or quieter machine; each process times one round
# (--rounds 1 on both sides unless the arguments say otherwise). Prints each side's
# median, the median of the per-round ratios (C++ / Python, > 1 = C++ faster) with their
# interquartile range and min-max, every ratio, and the load average before and after.
# Usage: [ROUNDS=N] bench/compare_trainer.sh [BUILD_DIR] [args for both]
# e.g.   ROUNDS=10 bench/compare_trainer.sh build --threads 2 --iters 10 --depths 3,9,18
set -euo pipefail
BUILD_DIR=${1:-build}
shift || true
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(--threads "$(nproc)" --iters 10 --depths 3,9,18)
# Both benchmarks take --rounds with different defaults: one round per process each.
[[ " ${ARGS[*]} " == *" --rounds "* ]] || ARGS+=(--rounds 1)
ROUNDS=${ROUNDS:-10}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
PYTHON=${PYTHON:-/usr/bin/python3}  # Debian's, where python3-torch lives
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cpp() { "$BUILD_DIR/bench/trainer_bench" "${ARGS[@]}"; }
py() { "$PYTHON" "$(dirname "$0")/reference_torch.py" "${ARGS[@]}"; }
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="cpp py"; else order="py cpp"; fi
  for side in $order; do
    $side | tee /dev/stderr | grep '^RESULT impl=.* layers=' | sed "s/^/round=$round /" >>"$results"
  done
done 2> >(grep -v '^RESULT' >&2)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw results, one line per process and network:"
cat "$results"
"$PYTHON" - "$results" "$ROUNDS" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    if "error" in f:
        print(f"round {f['round']}: {f['impl']} failed on {f['layers']} layers", file=sys.stderr)
        continue
    rows[(int(f["round"]), f["impl"], int(f["layers"]))] = (float(f["train_img_s"]), float(f["eval_img_s"]))
rounds = int(sys.argv[2])
layers = sorted({k[2] for k in rows})
med = statistics.median


def iqr(xs):
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return f"[{q[0]:.2f}-{q[2]:.2f}]"


print(f"\n{rounds} rounds, medians (ratio = median of per-round C++/Python ratios, then the")
print("interquartile range of those ratios, then their lowest and highest)")
print(f"{'network':10} {'C++ train/s':>12} {'Py train/s':>11} {'ratio':>6} {'IQR':>12} {'min-max':>12}"
      f" {'C++ eval/s':>11} {'Py eval/s':>10} {'ratio':>6} {'IQR':>12} {'min-max':>12}")
for l in layers:
    rs = [r for r in range(1, rounds + 1) if (r, "cpp", l) in rows and (r, "python", l) in rows]
    c = [rows[(r, "cpp", l)] for r in rs]
    p = [rows[(r, "python", l)] for r in rs]
    tr = [a[0] / b[0] for a, b in zip(c, p)]
    ev = [a[1] / b[1] for a, b in zip(c, p)]
    print(f"{'resnet' + str(l):10} {med(x[0] for x in c):12.1f} {med(x[0] for x in p):11.1f}"
          f" {med(tr):6.2f} {iqr(tr):>12} {f'[{min(tr):.2f}-{max(tr):.2f}]':>12}"
          f" {med(x[1] for x in c):11.1f} {med(x[1] for x in p):10.1f} {med(ev):6.2f}"
          f" {iqr(ev):>12} {f'[{min(ev):.2f}-{max(ev):.2f}]':>12}")
    print(f"RATIOS layers={l} train={','.join(f'{x:.3f}' for x in tr)} "
          f"eval={','.join(f'{x:.3f}' for x in ev)}")
PY
