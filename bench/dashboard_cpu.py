#!/usr/bin/env python3
"""The coordinator's CPU cost of open dashboards (docs/dashboard.md).

Starts a real resweep-coordinator (--http on loopback, a fresh SQLite file), submits a
synthetic sweep of RUNS runs (20 cells), lets real resweep-worker processes (synthetic
trainer) fill it to about --fill of its epochs, then stops them: the sweep stays in
progress (their leases are long) and its data stand still. Then it alternates, for
--rounds rounds, a window of --seconds with no dashboard and a window with --dashboards
pollers that each make the requests of the dashboard's sweep page at its default rate:
every --poll seconds the results and the runs (first page), and every second round the
curves of one metric (downsample=400), each with the ETag of its last reply
(If-None-Match), as web/app.js does. The coordinator's CPU (user + system, from
/proc/PID/stat) over each window is printed as % of one core: medians and min-max, and
the reply cache's counters from /metrics (--http-cache-bytes 0 measures without it).

The pollers are Python threads (not browsers: headless chromium pages would use the
same machine's cores and their own CPU is not the coordinator's). A browser sends the
same requests (tests/dashboard_test.cc checks what the page shows, not this).

  python3 bench/dashboard_cpu.py build --runs 1000 --dashboards 10 --rounds 3 --seconds 30
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def wait_file(path, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return open(path).read().strip()
        time.sleep(0.05)
    sys.exit(f'dashboard_cpu: {path} did not appear')


def get(url, etag=None):
    """(status, body bytes, etag)."""
    req = urllib.request.Request(url)
    if etag:
        req.add_header('If-None-Match', etag)
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, res.read(), res.headers.get('ETag')
    except urllib.error.HTTPError as e:
        return e.code, b'', etag if e.code == 304 else None


class Poller(threading.Thread):
    """The sweep page's requests, every `poll` seconds, with ETags."""

    def __init__(self, base, sweep, poll, stop, offset):
        super().__init__(daemon=True)
        self.base, self.sweep, self.poll, self.stop, self.offset = base, sweep, poll, stop, offset
        self.etags = {}
        self.requests = self.not_modified = self.bytes = 0

    def fetch(self, path):
        status, body, etag = get(self.base + path, self.etags.get(path))
        self.requests += 1
        self.bytes += len(body)
        if status == 304:
            self.not_modified += 1
        elif status == 200 and etag:
            self.etags[path] = etag

    def run(self):
        # Dashboards opened at different moments: spread over one period.
        if self.stop.wait(self.offset):
            return
        round_ = 0
        while not self.stop.is_set():
            started = time.time()
            s = f'/api/v1/sweeps/{self.sweep}'
            self.fetch(s + '/results')
            self.fetch(s + '/runs')
            if round_ % 2 == 0:
                self.fetch(s + '/curves?metric=test_error&downsample=400')
            round_ += 1
            self.stop.wait(max(0.0, self.poll - (time.time() - started)))


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('build', help='the build directory')
    ap.add_argument('--runs', type=int, default=1000, help='runs in the sweep (a multiple of 20)')
    ap.add_argument('--epochs', type=int, default=50, help='epochs per run')
    ap.add_argument('--fill', type=float, default=0.5, help='share of epochs recorded before measuring')
    ap.add_argument('--dashboards', type=int, default=10)
    ap.add_argument('--poll', type=float, default=5.0, help="the page's polling period (s)")
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--seconds', type=float, default=30.0, help='length of each window')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--slots', type=int, default=32, help='slots per worker while filling')
    ap.add_argument('--http-cache-bytes', type=int, default=None,
                    help="the coordinator's --http-cache-bytes (0: reply cache off; default: "
                         "the coordinator's default)")
    args = ap.parse_args()
    if args.runs % 20:
        sys.exit('--runs must be a multiple of 20 (20 cells)')

    build = os.path.abspath(args.build)
    coord_bin = f'{build}/coordinator/resweep-coordinator'
    worker_bin = f'{build}/worker/resweep-worker'
    cli_bin = f'{build}/cli/resweep'
    print(f'load average before: {os.getloadavg()}')
    with tempfile.TemporaryDirectory(prefix='resweep-dashboard-cpu-') as tmp:
        coord = subprocess.Popen(
            [coord_bin, '--listen', '127.0.0.1:0', '--port-file', f'{tmp}/port', '--db',
             f'{tmp}/c.db', '--http', '127.0.0.1:0', '--http-port-file', f'{tmp}/http-port',
             '--lease-seconds', '3600', '--heartbeat-seconds', '5', '--log-level', 'warn'] +
            ([] if args.http_cache_bytes is None else
             ['--http-cache-bytes', str(args.http_cache_bytes)]),
            stdout=open(f'{tmp}/coordinator.log', 'w'), stderr=subprocess.STDOUT)
        workers = []
        try:
            http_port = wait_file(f'{tmp}/http-port', 30)
            grpc_port = wait_file(f'{tmp}/port', 30)
            address = f'127.0.0.1:{grpc_port}'
            base = f'http://127.0.0.1:{http_port}'
            with open(f'{tmp}/sweep.yaml', 'w') as f:
                f.write(f'''name: dashboard-cpu
dataset: {{kind: cifar10}}
model: {{depth_n: 1}}
trainer: {{kind: synthetic, epoch_seconds: 0.002}}
train: {{epochs: {args.epochs}}}
grid:
  model.depth_n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
  model.block: [reference, preact]
seeds: {args.runs // 20}
''')
            out = subprocess.run([cli_bin, '--coordinator', address, 'submit', f'{tmp}/sweep.yaml'],
                                 check=True, capture_output=True, text=True).stdout
            sweep = out.split()[0][:12]
            for i in range(args.workers):
                workers.append(subprocess.Popen(
                    [worker_bin, '--coordinator', address, '--device', 'cpu', '--slots',
                     str(args.slots), '--threads', '1', '--name', f'fill-{i}', '--poll-seconds', '0.1',
                     '--log-level', 'warn'],
                    stdout=open(f'{tmp}/worker-{i}.log', 'w'), stderr=subprocess.STDOUT))
            target = args.fill * args.runs * args.epochs
            started = time.time()
            while True:
                s = json.loads(get(f'{base}/api/v1/sweeps/{sweep}')[1])['sweep']
                if int(s['epochsDone']) >= target:
                    break
                if time.time() - started > 900:
                    sys.exit('dashboard_cpu: filling took over 15 minutes')
                time.sleep(1)
            for w in workers:
                w.kill()
                w.wait()
            time.sleep(2)
            s = json.loads(get(f'{base}/api/v1/sweeps/{sweep}')[1])['sweep']
            sizes = {p: len(get(f'{base}/api/v1/sweeps/{sweep}/{p}')[1])
                     for p in ('results', 'runs', 'curves?metric=test_error&downsample=400')}
            print(f'sweep {sweep}: {args.runs} runs x {args.epochs} epochs, {s["epochsDone"]} epochs '
                  f'recorded ({time.time() - started:.0f} s to fill), counts {s["counts"]}')
            print('reply bytes: ' + ', '.join(f'{p.split("?")[0]} {n}' for p, n in sizes.items()))

            idle, busy, reqs = [], [], []
            for r in range(args.rounds):
                c0 = cpu_seconds(coord.pid)
                time.sleep(args.seconds)
                idle.append(100 * (cpu_seconds(coord.pid) - c0) / args.seconds)

                stop = threading.Event()
                pollers = [Poller(base, sweep, args.poll, stop, i * args.poll / args.dashboards)
                           for i in range(args.dashboards)]
                for p in pollers:
                    p.start()
                time.sleep(args.poll)  # every dashboard open and polling
                c0, t0 = cpu_seconds(coord.pid), time.time()
                n0 = sum(p.requests for p in pollers)
                time.sleep(args.seconds)
                c1, t1 = cpu_seconds(coord.pid), time.time()
                n1 = sum(p.requests for p in pollers)
                stop.set()
                for p in pollers:
                    p.join()
                busy.append(100 * (c1 - c0) / (t1 - t0))
                reqs.append((n1 - n0) / (t1 - t0))
                nm = sum(p.not_modified for p in pollers) / max(1, sum(p.requests for p in pollers))
                print(f'round {r + 1}: no dashboard {idle[-1]:.1f}% of a core; {args.dashboards} '
                      f'dashboards {busy[-1]:.1f}% ({reqs[-1]:.1f} requests/s, {100 * nm:.0f}% 304)')
            extra = [b - i for b, i in zip(busy, idle)]
            metrics = get(f'{base}/metrics')[1].decode()
            cache = {line.split()[0]: line.split()[1] for line in metrics.splitlines()
                     if line.startswith('resweep_http_cache_')}
            print('reply cache: ' + ', '.join(f'{k} {v}' for k, v in sorted(cache.items())))
            print(f'RESULT runs={args.runs} epochs_recorded={s["epochsDone"]} dashboards={args.dashboards} '
                  f'poll_s={args.poll} coordinator_cpu_idle_pct median {median(idle):.1f} '
                  f'({min(idle):.1f}-{max(idle):.1f}) with_dashboards_pct median {median(busy):.1f} '
                  f'({min(busy):.1f}-{max(busy):.1f}) added_pct median {median(extra):.1f} '
                  f'({min(extra):.1f}-{max(extra):.1f})')
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
            coord.terminate()
            coord.wait(30)
    print(f'load average after: {os.getloadavg()}')


if __name__ == '__main__':
    main()
