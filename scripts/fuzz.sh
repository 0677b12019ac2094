#!/usr/bin/env bash
# Fuzz the strict HTTP/1.1 parsers in native/parser.c with libFuzzer under
# ASan and UBSan for the given seconds (default 60).
#
#   bash scripts/fuzz.sh [seconds]
#
# The corpus grows in a temporary directory seeded from native/fuzz/seeds/.
# On a crash the input is kept as native/fuzz/crash.bin (replay it with the
# built binary, whose path is printed) and the script exits non-zero.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz_dir="$root/native/fuzz"

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz.sh: clang is not installed (apt-get install -y clang)" >&2
  exit 2
fi

work="$(mktemp -d -t palisade-fuzz.XXXXXX)"
cleanup() {
  # Keep the binary and log when the run failed, for replaying the crash.
  if [ "${status:-1}" -eq 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

clang -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1 -Wall -Wextra \
  -I"$root/native" "$fuzz_dir/fuzz_parser.c" "$root/native/parser.c" -o "$work/fuzz_parser"

mkdir "$work/corpus"
status=0
"$work/fuzz_parser" "$work/corpus" "$fuzz_dir/seeds" \
  -dict="$fuzz_dir/http.dict" \
  -max_total_time="$seconds" \
  -max_len=8192 \
  -timeout=10 \
  -print_final_stats=1 \
  -exact_artifact_path="$fuzz_dir/crash.bin" \
  >"$work/fuzz.log" 2>&1 || status=$?

if [ "$status" -ne 0 ]; then
  tail -n 60 "$work/fuzz.log" >&2
  echo "fuzz.sh: the fuzzer failed (exit $status); input in $fuzz_dir/crash.bin," \
    "replay with $work/fuzz_parser $fuzz_dir/crash.bin" >&2
  exit "$status"
fi

runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)"
echo "fuzz.sh: parser fuzzed for ${seconds}s, ${runs:-?} inputs, no crash"
