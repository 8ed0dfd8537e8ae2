#!/usr/bin/env python3
"""The container build files (deploy/containers), checked without a container engine.

No engine can start a container on the machines the tests run on (podman 4.3 and runc
from Debian install, and import a Debian base made with mmdebstrap, but starting a
container is refused: setting its rlimits needs CAP_SYS_RESOURCE), so this is the lint:
  - every FROM names a pinned tag (not `latest`, not untagged), through its ARG default;
  - every `COPY --from` names an earlier stage; every local COPY source exists;
  - `apt-get install` always with --no-install-recommends, in the RUN that cleans the
    lists; every package a Debian-based file installs exists in this machine's Debian 12
    archive (apt-cache);
  - the final stage runs as the non-root uid the Kubernetes manifests use, starts one of
    resweep's binaries, and every flag of its CMD is one that binary's --help lists
    (RESWEEP_COORDINATOR_BIN / RESWEEP_WORKER_BIN), its addresses' ports EXPOSEd;
  - the coordinator image is built without LibTorch (-DRESWEEP_BUILD_WORKER=OFF).
Usage: containers_test.py SOURCE_DIR
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import yaml

FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
    return condition


def instructions(path):
    """(keyword, argument) per instruction, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, argument = current.strip().partition(" ")
        lines.append((keyword.upper(), argument.strip()))
        current = ""
    return lines


def known_flags(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return {w[2:].split("=")[0] for w in out.stdout.replace(",", " ").split() if w.startswith("--")}


def apt_packages(run):
    """Packages named by `apt-get install` in a RUN (options and local .deb files dropped)."""
    found = []
    for command in re.split(r"&&|;|\|", run):
        if "apt-get" not in command:
            continue
        try:
            words = shlex.split(command.replace("\\", " "))
        except ValueError:
            words = command.replace("\\", " ").split()
        if "apt-get" in words and "install" in words:
            check("--no-install-recommends" in words,
                  f"apt-get install without --no-install-recommends: {command.strip()}")
            check("/var/lib/apt/lists" in run, f"a RUN installs packages without cleaning the "
                  f"apt lists: {command.strip()[:80]}")
            for w in words[words.index("install") + 1:]:
                if not w.startswith("-") and "/" not in w and "$" not in w:
                    found.append(w)
    return found


def check_file(path, source, runtime_uid):
    name = os.path.basename(path)
    ins = instructions(path)
    args = {}
    stages = []
    debian_based = False
    final = {"user": None, "entrypoint": None, "cmd": None, "expose": set(), "runs": []}
    for keyword, argument in ins:
        if keyword == "ARG":
            key, _, default = argument.partition("=")
            if default:
                args[key] = default
        elif keyword == "FROM":
            words = argument.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), "?"), words[0])
            check(":" in image and not image.endswith(":latest"),
                  f"{name}: FROM {words[0]} ({image}) is not a pinned tag")
            debian_based = debian_based or image.split(":")[0] == "debian"
            stages.append(words[2] if len(words) >= 3 and words[1].upper() == "AS" else None)
            final = {"user": None, "entrypoint": None, "cmd": None, "expose": set(), "runs": []}
        elif keyword == "COPY":
            words = argument.split()
            sources = [w for w in words[:-1] if not w.startswith("--")]
            origin = [w.split("=", 1)[1] for w in words if w.startswith("--from=")]
            if origin:
                check(origin[0] in stages[:-1], f"{name}: COPY --from={origin[0]}: no such stage")
            else:
                for s in sources:
                    check(s == "." or os.path.exists(os.path.join(source, s)),
                          f"{name}: COPY {s}: not in the repository")
        elif keyword == "RUN":
            final["runs"].append(argument)
        elif keyword == "USER":
            final["user"] = argument
        elif keyword == "ENTRYPOINT":
            final["entrypoint"] = json.loads(argument)
        elif keyword == "CMD":
            final["cmd"] = json.loads(argument)
        elif keyword == "EXPOSE":
            final["expose"] |= {int(p) for p in argument.split()}

    packages = sorted({p for keyword, argument in ins if keyword == "RUN"
                       for p in apt_packages(argument)})
    if debian_based and packages:
        out = subprocess.run(["apt-cache", "show", "--no-all-versions"] + packages,
                             capture_output=True, text=True)
        listed = set(re.findall(r"^Package: (\S+)$", out.stdout, re.M))
        for p in packages:
            check(p in listed, f"{name}: installs {p}, which Debian 12 does not have")

    check(final["user"] is not None and final["user"].split(":")[0] == str(runtime_uid),
          f"{name}: the image runs as {final['user']}, not uid {runtime_uid} (Kubernetes runAsUser)")
    entry = final["entrypoint"] or []
    binary = os.path.basename(entry[0]) if entry else ""
    if not check(binary in ("resweep-coordinator", "resweep-worker"),
                 f"{name}: ENTRYPOINT {entry} is not a resweep binary"):
        return
    env = "RESWEEP_COORDINATOR_BIN" if binary == "resweep-coordinator" else "RESWEEP_WORKER_BIN"
    cmd = final["cmd"] or []
    if os.environ.get(env):
        names = known_flags(os.environ[env])
        for arg in cmd:
            if arg.startswith("--"):
                flag = arg[2:].split("=")[0]
                check(flag in names, f"{name}: {binary} has no --{flag}")
    for arg in cmd:
        m = re.match(r"--(listen|http|health-listen|metrics-listen)=.*:(\d+)$", arg)
        if m:
            check(int(m.group(2)) in final["expose"],
                  f"{name}: --{m.group(1)} port {m.group(2)} is not EXPOSEd")
    if binary == "resweep-coordinator":
        check(any("-DRESWEEP_BUILD_WORKER=OFF" in argument for keyword, argument in ins
                  if keyword == "RUN"), f"{name}: the coordinator image is built with LibTorch")


def main():
    source = sys.argv[1]
    base = os.path.join(source, "deploy", "kubernetes", "base")
    uids = set()
    for manifest in glob.glob(os.path.join(base, "*.yaml")):
        for doc in yaml.safe_load_all(open(manifest)):
            pod = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
            if "securityContext" in pod:
                uids.add(pod["securityContext"].get("runAsUser"))
    check(len(uids) == 1, f"the Kubernetes manifests run as {uids}, expected one uid")
    files = sorted(glob.glob(os.path.join(source, "deploy", "containers", "Containerfile.*")))
    check(len(files) >= 3, f"{len(files)} Containerfiles, expected the coordinator, a CPU and a "
          "CUDA worker")
    for path in files:
        check_file(path, source, next(iter(uids)) if uids else 10001)
        print(f"containers_test: {os.path.relpath(path, source)} checked")
    if FAILURES:
        for failure in FAILURES:
            print(f"containers_test: FAIL: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
