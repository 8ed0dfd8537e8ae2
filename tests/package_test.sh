#!/bin/bash
# The Debian packages, end to end (issue 12): builds them with cpack from BUILD_DIR,
# installs them on this machine with apt, runs a synthetic sweep with the installed
# binaries through the command lines of the installed systemd units (as their User=,
# with a settings file of the test's own in place of /etc/default's), then purges the
# packages and checks that nothing of theirs is left. Needs root (exit 77: skipped
# otherwise, or when resweep packages are installed already: they are not the test's).
#   tests/package_test.sh BUILD_DIR
set -euo pipefail
build_dir=$(cd "$1" && pwd)
packages=(resweep resweep-coordinator resweep-worker)

say() { echo "package_test: $*"; }
fail() {
  echo "package_test: FAIL: $*" >&2
  exit 1
}
if [ "$(id -u)" -ne 0 ]; then
  say "SKIP: needs root (installs packages)"
  exit 77
fi
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    say "SKIP: $p is installed already; the test installs and purges its own"
    exit 77
  fi
done

tmp=$(mktemp -d /tmp/resweep-package-test.XXXXXX)
chmod 0755 "$tmp"
user_existed=0
getent passwd resweep >/dev/null && user_existed=1
state_existed=0
[ -e /var/lib/resweep ] && state_existed=1
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true  # userdel refuses a user that still runs something
  done
  for p in "${packages[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed"; then
      DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${packages[@]}" >/dev/null 2>&1 || true
      break
    fi
  done
  if [ "$user_existed" = 0 ] && getent passwd resweep >/dev/null; then
    userdel resweep 2>/dev/null || true
    getent group resweep >/dev/null && groupdel resweep 2>/dev/null || true
  fi
  [ "$state_existed" = 0 ] && rm -rf /var/lib/resweep
  if [ $rc -ne 0 ]; then
    for log in "$tmp"/*.log; do
      [ -f "$log" ] && { echo "--- $log (last 30 lines)"; tail -30 "$log"; }
    done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

say "cpack -G DEB"
(cd "$build_dir" && cpack -G DEB -B "$tmp/pkgs" >"$tmp/cpack.log" 2>&1) || fail "cpack failed"
debs=()
for p in "${packages[@]}"; do
  deb=$(ls "$tmp/pkgs/${p}_"*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || fail "cpack made no package $p (made: $(ls "$tmp/pkgs"))"
  debs+=("$deb")
done
# The coordinator and the CLI must not need LibTorch; the worker must.
for p in resweep resweep-coordinator; do
  deps=$(dpkg-deb -f "$tmp/pkgs/${p}_"*.deb Depends)
  case "$deps" in *libtorch*) fail "$p depends on LibTorch: $deps" ;; esac
done
case "$(dpkg-deb -f "$tmp/pkgs/resweep-worker_"*.deb Depends)" in
  *libtorch*) ;;
  *) fail "resweep-worker does not depend on LibTorch" ;;
esac

say "apt-get install ${debs[*]##*/}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}" \
  >"$tmp/apt-install.log" 2>&1 || fail "apt-get install failed (see apt-install.log)"
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" | grep -q "install ok installed" || fail "$p not installed"
done
installed_files=(
  /usr/bin/resweep /usr/bin/resweep-coordinator /usr/bin/resweep-worker
  /usr/lib/systemd/system/resweep-coordinator.service
  /usr/lib/systemd/system/resweep-worker.service
  /etc/default/resweep-coordinator /etc/default/resweep-worker
  /usr/share/bash-completion/completions/resweep /usr/share/zsh/vendor-completions/_resweep
  /usr/share/resweep/sweeps/synthetic.yaml /usr/share/doc/resweep/README.md
)
for f in "${installed_files[@]}"; do [ -f "$f" ] || fail "$f not installed"; done
grep -q "complete" /usr/share/bash-completion/completions/resweep || fail "bash completion is empty"
dpkg-query -W -f='${Conffiles}' resweep-coordinator | grep -q /etc/default/resweep-coordinator ||
  fail "/etc/default/resweep-coordinator is not a conffile"
if ldd /usr/bin/resweep-coordinator /usr/bin/resweep | grep -q libtorch; then
  fail "the installed coordinator or CLI links LibTorch"
fi
getent passwd resweep >/dev/null || fail "the packages did not create the resweep user"
[ "$(stat -c %U /var/lib/resweep)" = resweep ] || fail "/var/lib/resweep is not owned by resweep"
/usr/bin/resweep --version | grep -q "^resweep " || fail "resweep --version"

# A unit's command line as systemd would run it: ExecStart with its continuation lines
# joined, $VAR split into words and ${VAR} kept as one, from the settings file given in
# place of the unit's EnvironmentFile; run as the unit's User=.
run_unit() {
  local unit=$1 settings=$2 log=$3
  local exec_start user
  exec_start=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$unit" | sed -n 's/^ExecStart=//p')
  user=$(sed -n 's/^User=//p' "$unit")
  [ -n "$exec_start" ] && [ -n "$user" ] || fail "$unit has no ExecStart or User"
  grep -q "^EnvironmentFile=" "$unit" || fail "$unit reads no settings file"
  (
    set -a
    # shellcheck disable=SC1090
    . "$settings"
    set +a
    # ${VAR} stays one word, $VAR is split (systemd's rule).
    cmd=$(printf '%s' "$exec_start" | sed -E 's/\$\{([A-Z_]+)\}/"${\1}"/g')
    eval "set -- $cmd"
    exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
  ) >"$log" 2>&1 &
  pids+=($!)
}

install -d -o resweep -g resweep "$tmp/state" "$tmp/data"
cat >"$tmp/coordinator.settings" <<EOF
RESWEEP_COORDINATOR_OPTS="--listen 127.0.0.1:0 --port-file $tmp/state/port --db $tmp/state/sweeps.db --lease-seconds 10 --heartbeat-seconds 1"
EOF
say "starting the installed coordinator unit's command line as resweep"
run_unit /usr/lib/systemd/system/resweep-coordinator.service "$tmp/coordinator.settings" \
  "$tmp/coordinator.log"
coordinator_pid=${pids[-1]}
for _ in $(seq 150); do
  [ -s "$tmp/state/port" ] && break
  kill -0 "$coordinator_pid" 2>/dev/null || fail "the coordinator exited"
  sleep 0.1
done
[ -s "$tmp/state/port" ] || fail "the coordinator wrote no port file in 15 s"
address="127.0.0.1:$(cat "$tmp/state/port")"
[ "$(stat -c %U "$tmp/state/sweeps.db")" = resweep ] || fail "the database is not the resweep user's"

cat >"$tmp/worker.settings" <<EOF
RESWEEP_COORDINATOR=$address
RESWEEP_DATA_ROOT=$tmp/data
RESWEEP_WORKER_OPTS="--slots 2 --name package-test"
EOF
say "starting the installed worker unit's command line as resweep"
run_unit /usr/lib/systemd/system/resweep-worker.service "$tmp/worker.settings" "$tmp/worker.log"
worker_pid=${pids[-1]}

say "submitting the installed synthetic sweep to $address"
/usr/bin/resweep -c "$address" submit /usr/share/resweep/sweeps/synthetic.yaml \
  >"$tmp/submit.log" 2>&1 || fail "resweep submit failed"
/usr/bin/resweep -c "$address" wait synthetic --limit 150 --poll 1 >"$tmp/wait.log" 2>&1 ||
  fail "the sweep did not finish (resweep wait: exit $?)"
/usr/bin/resweep -c "$address" results synthetic --format json >"$tmp/results.json" ||
  fail "resweep results failed"
python3 - "$tmp/results.json" <<'EOF' || fail "unexpected results"
import json, sys
results = json.load(open(sys.argv[1]))
cells = results["cells"]
assert len(cells) == 8, f"{len(cells)} cells, expected 8 (4 depths x 2 blocks)"
for cell in cells:
    n = cell["final_test_error"]["n"]
    assert cell["runs_succeeded"] == 3 and n == 3, f"cell {cell['cell']}: n = {n}, expected 3"
print(f"package_test: 8 cells of 3 seeds each")
EOF

say "stopping both with SIGTERM (the units' KillSignal)"
kill -TERM "$worker_pid" "$coordinator_pid"
for pid in "$worker_pid" "$coordinator_pid"; do
  rc=0
  timeout 30 tail --pid="$pid" -f /dev/null || fail "process $pid did not stop within 30 s"
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || fail "process $pid exited $rc after SIGTERM"
done
pids=()

say "apt-get purge ${packages[*]}"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${packages[@]}" >"$tmp/apt-purge.log" 2>&1 ||
  fail "apt-get purge failed (see apt-purge.log)"
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed"; then
    fail "$p is still installed after purge"
  fi
done
for f in "${installed_files[@]}"; do [ ! -e "$f" ] || fail "$f is left after purge"; done
say "PASS"
