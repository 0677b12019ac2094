#!/usr/bin/env bash
# `npm test` and CI: build everything, lint, run every node:test suite under
# dist/test one file at a time, then a short fuzz run when the fuzzer exists.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase's wall time goes to stderr, so a slow CI log shows where the time went.
phase_start=$SECONDS
phase_done() {
  echo "test.sh: $1 took $((SECONDS - phase_start)) s" >&2
  phase_start=$SECONDS
}

# node-gyp needs make, a C/C++ compiler and python3 to build the native library;
# the etcd store and system tests run a real etcd (etcd-server), limit-count a real Redis,
# and the path-normalisation test compares the parser's $uri with a real nginx.
packages=(make g++ python3 etcd-server redis-server nginx-light)
if [ -f scripts/fuzz.sh ]; then
  packages+=(clang)
fi
bash scripts/ensure-packages.sh "${packages[@]}"
phase_done "system packages"

if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] ||
  [ package.json -nt node_modules/.package-lock.json ] ||
  { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  npm install --no-audit --no-fund
fi
phase_done "npm install"

npm run build:native --silent
npm run build --silent
npm run lint --silent
phase_done "build and lint"

# tsc never deletes outputs: drop compiled tests whose source is gone, so a
# renamed or removed test cannot keep running from dist/.
if [ -d dist/test ]; then
  while IFS= read -r compiled; do
    source="${compiled#dist/}"
    source="${source%.js}.ts"
    if [ ! -f "$source" ]; then
      rm -f "$compiled" "$compiled.map"
    fi
  done < <(find dist/test -name '*.test.js')
fi

# Node 20's test runner takes paths, not globs; a directory is searched
# recursively, so pass each top-level test directory once.
test_dirs=()
while IFS= read -r dir; do
  test_dirs+=("$dir")
done < <(find dist/test -mindepth 1 -maxdepth 1 -type d | sort)

if [ "${#test_dirs[@]}" -eq 0 ]; then
  echo "test.sh: no compiled tests found under dist/test" >&2
  exit 1
fi

status=0
node --test --test-concurrency=1 "${test_dirs[@]}" || status=$?
phase_done "tests"
if [ "$status" -ne 0 ]; then
  exit "$status"
fi

if [ -f scripts/fuzz.sh ]; then
  bash scripts/fuzz.sh 30
  phase_done "fuzzing"
fi
