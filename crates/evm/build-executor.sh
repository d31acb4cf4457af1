#!/bin/sh
# Regenerates crates/evm/artifacts/StratboxExecutor.json from crates/evm/solidity/ with the
# solcjs 0.7.6 pinned in package.json (run `npm ci` at the workspace root first).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec node "$here/build-executor.js" "$@"
