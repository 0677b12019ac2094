#!/usr/bin/env bash
# `npm start`: set up a fresh clone and run the gateway in the foreground on the
# embedded store (conf/config.yaml). Arguments are passed on to `palisade start`.
set -euo pipefail
cd "$(dirname "$0")/.."

# node_modules is stale when package.json or the lockfile is newer than npm's
# own record of the last install.
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] ||
  [ package.json -nt node_modules/.package-lock.json ] ||
  { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  # The package's install script builds the native library (node-gyp).
  npm install --no-audit --no-fund
fi

npm run build --silent

exec node bin/palisade start "$@"
