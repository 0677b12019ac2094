#!/usr/bin/env bash
# Install the Debian packages named on the command line that are not installed
# yet. Quiet and quick when everything is already there; runs `apt-get update`
# at most once per call.
#
#   bash scripts/ensure-packages.sh nginx-light wrk
#
# valgrind (callgrind, callgrind_control) is asked for by bench:instructions
# only; no test runs it.
set -euo pipefail

missing=()
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "ensure-packages: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "ensure-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq >/dev/null
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
