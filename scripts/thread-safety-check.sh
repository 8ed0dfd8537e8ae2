#!/usr/bin/env bash
# Checks the clang thread-safety annotations (common/thread_annotations.h): compiles
# every project source listed in the build directory's compile_commands.json (which
# CMake exports) with clang++ -fsyntax-only -Wthread-safety -Werror=thread-safety,
# whatever compiler the build itself uses. Generated code (the build directory) is
# skipped. Any violation (reading a GUARDED_BY member without its mutex, calling a
# REQUIRES function without it, taking a mutex twice...) fails the script.
# Then checks that the check bites: tests/thread_safety_negative.cc, which breaks
# each rule once, must be refused.
# Usage: scripts/thread-safety-check.sh [--build-dir DIR] [--jobs N] [FILE...]
#   FILE...: only these sources (paths relative to the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
jobs=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -*) echo "usage: $0 [--build-dir DIR] [--jobs N] [FILE...]" >&2; exit 2 ;;
    *) break ;;
  esac
done
CXX=${TSA_CXX:-$(command -v clang++ || command -v clang++-14 || true)}
if [ -z "$CXX" ]; then
  echo "thread-safety: clang++ not found (apt-get install clang)" >&2
  exit 1
fi
if [ ! -f "$build/compile_commands.json" ]; then
  echo "thread-safety: $build/compile_commands.json missing: configure the build first" >&2
  exit 1
fi
# Generated protobuf headers must exist before the sources that include them parse.
cmake --build "$build" --target resweep_proto -j "$jobs" >/dev/null

# The warnings that make up the analysis, all errors. Only these: the gcc build
# decides about the others.
TSA_FLAGS=(-fsyntax-only -ferror-limit=0 -Wthread-safety -Wthread-safety-beta -Werror=thread-safety
  -Werror=thread-safety-beta -Wno-unknown-warning-option)

# The check must bite: every line of the negative test marked VIOLATION, and only
# those, must be refused.
negative=tests/thread_safety_negative.cc
expected=$(grep -n '// VIOLATION:' "$negative" | cut -d: -f1 | sort -n | tr '\n' ' ')
if out=$("$CXX" -std=c++17 -I. "${TSA_FLAGS[@]}" "$negative" 2>&1); then
  echo "thread-safety: $negative compiled: the analysis is not enforced" >&2
  exit 1
fi
refused=$(grep -o "^$negative:[0-9]*:[0-9]*: error: .*thread-safety" <<<"$out" | cut -d: -f2 |
  sort -nu | tr '\n' ' ')
if [ "$refused" != "$expected" ]; then
  printf '%s\n' "$out"
  echo "thread-safety: $negative: expected errors on lines $expected, got $refused" >&2
  exit 1
fi

# One NUL-separated argv per source, in a temporary directory, for xargs -P.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$build/compile_commands.json" "$PWD" "$work" "$CXX" "${TSA_FLAGS[@]}" -- "$@" <<'EOF'
import json, os, shlex, sys
db, root, work, cxx = sys.argv[1:5]
rest = sys.argv[5:]
flags, only = rest[:rest.index("--")], set(rest[rest.index("--") + 1:])
build = os.path.realpath(os.path.dirname(db))
n = 0
for entry in json.load(open(db)):
    source = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
    rel = os.path.relpath(source, root)
    if rel.startswith("..") or source.startswith(build + os.sep):
        continue  # outside the repository, or generated
    if only and rel not in only:
        continue
    argv = entry.get("arguments") or shlex.split(entry["command"])
    # Drop the compiler (and a launcher such as ccache), the output and -c: only
    # the flags that decide how the source parses remain.
    while argv and not argv[0].startswith("-"):
        argv = argv[1:]
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
        elif a in ("-c", "-MD", "-MMD", "-w") or a == entry["file"] or a == source:
            pass
        else:
            kept.append(a)
    with open(os.path.join(work, "%03d" % n), "w") as f:
        f.write("\0".join([entry["directory"], rel, cxx] + kept + flags + [source]) + "\0")
    n += 1
if n == 0:
    sys.exit("thread-safety: no project sources to check")
EOF

# check_one FILE: runs one compile; prints its diagnostics and fails on an error.
check_one() {
  local args=()
  while IFS= read -r -d '' a; do args+=("$a"); done <"$1"
  local dir=${args[0]} rel=${args[1]}
  if ! out=$(cd "$dir" && "${args[@]:2}" 2>&1); then
    printf '%s\n' "--- $rel" "$out"
    return 1
  fi
}
export -f check_one
count=$(ls "$work" | wc -l)
start=$SECONDS
if ! ls "$work"/* | xargs -P "$jobs" -n 1 bash -c 'check_one "$0"'; then
  echo "thread-safety: FAILED: fix the violations above (or annotate; see docs/development.md)" >&2
  exit 1
fi
echo "thread-safety: $count sources clean ($((SECONDS - start))s, $jobs jobs, $("$CXX" --version | head -1))"
