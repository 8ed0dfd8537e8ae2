#!/usr/bin/env python3
"""The Kubernetes manifests (deploy/kubernetes), rendered and checked (issue 12).

No cluster runs here: renders the Kustomize base and every overlay with `kubectl
kustomize` (Debian's kubernetes-client renders offline) and checks, on the rendered
objects, what a cluster relies on: one coordinator replica on a ReadWriteOnce volume that
holds its database; a Service for gRPC and HTTP that selects it; gRPC readiness and
liveness probes on its plaintext health port; TLS and tokens from Secrets, mounted where
the flags point; workers only on GPU nodes, tolerating their taint, with GPUs in limits
and a grace period for the SIGTERM checkpoint, pointed at the Service; Prometheus scrape
annotations on the ports that serve /metrics. With RESWEEP_COORDINATOR_BIN and
RESWEEP_WORKER_BIN set, every flag the manifests pass must be one the binary's --help
lists. Usage: kubernetes_test.py SOURCE_DIR
"""
import os
import shutil
import subprocess
import sys

import yaml

FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
    return condition


def render(kubectl, directory):
    out = subprocess.run([kubectl, "kustomize", directory], capture_output=True, text=True,
                         timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"kubernetes_test: FAIL: kubectl kustomize {directory}:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def flags(container):
    """--name=value and --name value arguments as a dict (a bare flag maps to True)."""
    args = list(container.get("args", [])) + list(container.get("command", [])[1:])
    parsed = {}
    i = 0
    while i < len(args):
        arg = str(args[i])
        if arg.startswith("--"):
            if "=" in arg:
                name, value = arg[2:].split("=", 1)
                parsed[name] = value
            elif i + 1 < len(args) and not str(args[i + 1]).startswith("--"):
                parsed[arg[2:]] = str(args[i + 1])
                i += 1
            else:
                parsed[arg[2:]] = True
        i += 1
    return parsed


def known_flags(binary):
    """The --flags a binary's --help lists (None without the binary)."""
    if not binary:
        return None
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    names = set()
    for word in out.stdout.replace(",", " ").split():
        if word.startswith("--"):
            names.add(word[2:].split("=")[0])
    return names


def check_flags_exist(where, binary, parsed):
    names = known_flags(binary)
    if names is None:
        return
    for flag in parsed:
        check(flag in names, f"{where}: {os.path.basename(binary)} has no --{flag}")


def port_of(address):
    return int(str(address).rsplit(":", 1)[1])


def mounted_from(pod_spec, container, path):
    """The volume whose mount holds `path`, or None."""
    best = None
    for mount in container.get("volumeMounts", []):
        root = mount["mountPath"].rstrip("/") + "/"
        if (path + "/").startswith(root) and (best is None or len(root) > len(best[0])):
            best = (root, mount)
    if best is None:
        return None, None
    name = best[1]["name"]
    for volume in pod_spec.get("volumes", []):
        if volume["name"] == name:
            return volume, best[1]
    return {"name": name, "claim": True}, best[1]  # a volumeClaimTemplate's


def check_secret_file(where, pod_spec, container, path):
    volume, mount = mounted_from(pod_spec, container, path)
    if not check(volume is not None and "secret" in volume,
                 f"{where}: {path} is not in a mounted Secret"):
        return
    check(mount.get("readOnly", False), f"{where}: the Secret holding {path} is mounted writable")
    items = volume["secret"].get("items")
    mode = volume["secret"].get("defaultMode", 0o644)
    if items:
        rel = path[len(mount["mountPath"].rstrip("/")) + 1:]
        item = next((item for item in items if item["path"] == rel), None)
        check(item is not None,
              f"{where}: Secret {volume['secret']['secretName']} projects no {rel}")
        mode = (item or {}).get("mode", mode)
    # Kubelet writes Secret files owned by root; without other-read, only an fsGroup
    # (kubelet then makes them group-readable by it and adds it to the container's
    # groups) lets a non-root container read them.
    security = {**pod_spec.get("securityContext", {}), **container.get("securityContext", {})}
    user = security.get("runAsUser")
    if mode & 0o004 == 0 and user not in (None, 0):
        check(pod_spec.get("securityContext", {}).get("fsGroup") is not None,
              f"{where}: {path} (mode {mode:o}, owned by root) is unreadable by user {user}: "
              "the pod has no fsGroup")


def check_rendering(name, objects):
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    sets = by_kind.get("StatefulSet", [])
    services = by_kind.get("Service", [])
    daemons = by_kind.get("DaemonSet", [])
    if not (check(len(sets) == 1, f"{name}: {len(sets)} StatefulSets, expected the coordinator's")
            and check(len(daemons) == 1, f"{name}: {len(daemons)} DaemonSets, expected the workers'")
            and check(len(services) >= 1, f"{name}: no Service")):
        return

    # The coordinator.
    coord = sets[0]
    where = f"{name}: StatefulSet {coord['metadata']['name']}"
    spec = coord["spec"]
    pod = spec["template"]["spec"]
    check(spec.get("replicas", 1) == 1, f"{where}: {spec.get('replicas')} replicas (SQLite: one)")
    containers = pod["containers"]
    check(len(containers) == 1, f"{where}: {len(containers)} containers")
    c = containers[0]
    f = flags(c)
    check_flags_exist(where, os.environ.get("RESWEEP_COORDINATOR_BIN"), f)
    for flag in ("listen", "db", "tls-cert", "tls-key", "token-file", "health-listen", "http"):
        check(flag in f, f"{where}: no --{flag}")
    if "db" in f:
        volume, _ = mounted_from(pod, c, os.path.dirname(f["db"]))
        claims = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}
        if check(volume is not None and volume.get("claim") and volume["name"] in claims,
                 f"{where}: the database {f['db']} is not on a volumeClaimTemplate"):
            modes = claims[volume["name"]]["spec"]["accessModes"]
            check(modes == ["ReadWriteOnce"], f"{where}: database volume access modes {modes}")
    for flag in ("tls-cert", "tls-key", "token-file", "tls-client-ca"):
        if flag in f:
            check_secret_file(where, pod, c, f[flag])
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if "health-listen" in f:
        health = port_of(f["health-listen"])
        for probe in ("readinessProbe", "livenessProbe"):
            grpc = c.get(probe, {}).get("grpc")
            check(grpc is not None and grpc.get("port") == health,
                  f"{where}: {probe} is not a gRPC probe on the health port {health}")
    if "listen" in f:
        check(ports.get("grpc") == port_of(f["listen"]), f"{where}: port 'grpc' is not --listen's")
    if "http" in f:
        check(ports.get("http") == port_of(f["http"]), f"{where}: port 'http' is not --http's")
    annotations = spec["template"]["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true", f"{where}: no Prometheus scrape")
    if "http" in f:
        check(annotations.get("prometheus.io/port") == str(port_of(f["http"])),
              f"{where}: Prometheus port is not --http's (where /metrics is)")
    check(pod.get("terminationGracePeriodSeconds", 30) >= 10, f"{where}: grace period too short")

    # The Service in front of it.
    labels = spec["template"]["metadata"].get("labels", {})
    fronting = [s for s in services
                if s["spec"].get("selector")
                and all(labels.get(k) == v for k, v in s["spec"]["selector"].items())]
    if check(len(fronting) == 1, f"{name}: {len(fronting)} Services select the coordinator"):
        service = fronting[0]
        check(spec.get("serviceName") == service["metadata"]["name"],
              f"{where}: serviceName is not its Service")
        service_ports = {p["name"]: p for p in service["spec"]["ports"]}
        for port_name in ("grpc", "http"):
            p = service_ports.get(port_name)
            if check(p is not None, f"{name}: the Service has no {port_name} port"):
                target = p.get("targetPort", p["port"])
                check(target == port_name or target == ports.get(port_name),
                      f"{name}: Service port {port_name} targets {target}")
        grpc_port = service_ports.get("grpc", {}).get("port")

    # The workers.
    workers = daemons[0]
    where = f"{name}: DaemonSet {workers['metadata']['name']}"
    wpod = workers["spec"]["template"]["spec"]
    w = wpod["containers"][0]
    wf = flags(w)
    check_flags_exist(where, os.environ.get("RESWEEP_WORKER_BIN"), wf)
    selector = wpod.get("nodeSelector", {})
    affinity = str(wpod.get("affinity", {}))
    check(any("nvidia.com/gpu" in k for k in selector) or "nvidia.com/gpu" in affinity,
          f"{where}: not restricted to GPU nodes")
    check(any(t.get("key") == "nvidia.com/gpu" for t in wpod.get("tolerations", [])),
          f"{where}: does not tolerate the nvidia.com/gpu taint")
    gpus = w.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    check(gpus is not None and int(gpus) > 0, f"{where}: no GPUs in limits")
    check(wpod.get("terminationGracePeriodSeconds", 30) >= 120,
          f"{where}: grace period {wpod.get('terminationGracePeriodSeconds', 30)} s leaves no "
          "room for the SIGTERM checkpoint")
    if fronting and check("coordinator" in wf, f"{where}: no --coordinator"):
        host, port = str(wf["coordinator"]).rsplit(":", 1)
        check(host.split(".")[0] == fronting[0]["metadata"]["name"] and int(port) == grpc_port,
              f"{where}: --coordinator {wf['coordinator']} is not the coordinator's Service")
    for flag in ("tls-ca", "token-file"):
        if check(flag in wf, f"{where}: no --{flag}"):
            check_secret_file(where, wpod, w, wf[flag])
    wannotations = workers["spec"]["template"]["metadata"].get("annotations", {})
    if check("metrics-listen" in wf, f"{where}: no --metrics-listen"):
        check(wannotations.get("prometheus.io/port") == str(port_of(wf["metrics-listen"])),
              f"{where}: Prometheus port is not --metrics-listen's")
        check("metrics-beyond-loopback" in wf, f"{where}: metrics on a pod IP need "
              "--metrics-beyond-loopback")


def main():
    source = sys.argv[1]
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        raise SystemExit("kubernetes_test: FAIL: no kubectl (scripts/install-deps.sh installs "
                         "kubernetes-client)")
    root = os.path.join(source, "deploy", "kubernetes")
    targets = [os.path.join(root, "base")]
    overlays = os.path.join(root, "overlays")
    targets += sorted(os.path.join(overlays, d) for d in os.listdir(overlays))
    for target in targets:
        objects = render(kubectl, target)
        check_rendering(os.path.relpath(target, source), objects)
        print(f"kubernetes_test: {os.path.relpath(target, source)}: "
              f"{', '.join(sorted(o['kind'] + '/' + o['metadata']['name'] for o in objects))}")
    if FAILURES:
        for failure in FAILURES:
            print(f"kubernetes_test: FAIL: {failure}", file=sys.stderr)
        return 1
    print(f"kubernetes_test: {len(targets)} renderings checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
