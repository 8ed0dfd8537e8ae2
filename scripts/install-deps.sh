#!/usr/bin/env bash
# Installs every Debian 12 package resweep needs to build, test and run its demo.
# Idempotent: does nothing (and needs no root) when everything is already present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  python3-yaml                  # tests/kubernetes_test.py
  dpkg-dev adduser               # `cpack -G DEB` (dpkg-shlibdeps) and the packages' user (tests/package_test.sh)
  libtorch-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsqlite3-dev sqlite3
  libyaml-cpp-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev zlib1g-dev libssl-dev openssl
  libboost-math-dev             # distributions for the statistics (analysis/)
  dataset-fashion-mnist
  gnuplot-nox fonts-dejavu-core # `resweep plot` (cairo terminals: PNG, SVG, PDF)
  clang-14 libclang-rt-14-dev   # libFuzzer targets (scripts/fuzz.sh), ThreadSanitizer (scripts/tsan.sh)
  patch                         # scripts/tsan.sh applies scripts/tsan-grpc-annotations.patch
  clang python3                 # thread-safety analysis (scripts/thread-safety-check.sh)
  iproute2                      # network namespaces in the partition test
  libcpp-httplib-dev            # the coordinator's HTTP server (--http: JSON API, /metrics)
  prometheus                    # the metrics test scrapes a coordinator and a worker with it
  chromium                      # the dashboard's browser test (headless, DevTools protocol)
  slurm-wlm munge               # the Slurm test runs real slurmctld, slurmd and munged (deploy/slurm)
)

# tests/kubernetes_test.py renders the manifests with `kubectl kustomize`: Debian's
# kubernetes-client, unless some kubectl is installed already (another vendor's package
# would conflict with it).
command -v kubectl >/dev/null || PACKAGES+=(kubernetes-client)

# --bench: also what the benchmarks compare against (PyTorch eager, Debian's build).
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(python3-torch)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
