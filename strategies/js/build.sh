#!/usr/bin/env bash
# Builds a JavaScript strategy into a WebAssembly component of the world
# stratbox:strategy/strategy@0.1.1, with ComponentizeJS.
#
#   strategies/js/build.sh OUT.wasm [STRATEGY|DIR]  (STRATEGY: a folder here; default clamm-maker)
#
# A DIR (an argument with a `/` in it, or an existing directory that is not a folder here) is
# a strategy folder anywhere, such as a project `stratbox new --lang js` made. Such a folder
# imports the SDK as `./stratbox/index.js` (from its top-level modules): the folder is staged
# as `app/` with the SDK copied to `app/stratbox/`, in place of any `stratbox` entry of its
# own (`stratbox new` makes one, a link to guest-sdk/js/stratbox, so the same import works
# under Node). `target/`, `node_modules/` and dot-files are left out.
#
# ComponentizeJS is found at $COMPONENTIZE_JS (its CLI, its package folder, or a node
# script taking the same arguments), else at node_modules/.bin/componentize-js under the
# repository root, else on PATH. Pinned: @bytecodealliance/componentize-js 0.23.0 with
# @bytecodealliance/preview2-shim 0.25.0 beside it (componentize-js imports the shim at run
# time without declaring it; 0.26 does not give its WIT reader the files it needs).
#
# Why a staging folder: ComponentizeJS takes one WIT folder, and the 0.1.1 world includes
# the 0.1.0 package, so the two files are laid out as a package with its dependency
# (wit/strategy.wit + wit/deps/strategy-0.1.0/strategy.wit). The sources are copied in the
# repository's layout, so the strategy's relative imports of the SDK resolve unchanged, and
# only they are visible to the engine while it snapshots the module. The entry module
# imports the host interface and hands it to the SDK: the SDK itself never imports it, so
# it stays runnable under plain Node for tests.
#
# Every WASI feature of the engine is disabled: a strategy has no clock, randomness, stdio or
# network, and the component then imports nothing but stratbox:strategy/host.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 OUT.wasm [STRATEGY|DIR]   (STRATEGY is a folder of $here; default clamm-maker)" >&2
  exit 2
fi
out="$1"
strategy="${2:-clamm-maker}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
# A folder of this directory (the repository's layout), or a folder anywhere.
layout=repository
case "$strategy" in
  */*) layout=folder ;;
  *) if [ ! -d "$here/$strategy" ] && [ -d "$strategy" ]; then layout=folder; fi ;;
esac
if [ "$layout" = folder ]; then
  if [ ! -d "$strategy" ]; then
    echo "build.sh: no directory $strategy" >&2
    exit 2
  fi
  src="$(cd "$strategy" && pwd)"
else
  src="$here/$strategy"
fi
if [ ! -f "$src/app.js" ]; then
  echo "build.sh: no $src/app.js" >&2
  exit 2
fi

cjs="${COMPONENTIZE_JS:-}"
if [ -z "$cjs" ]; then
  if [ -e "$root/node_modules/.bin/componentize-js" ]; then
    cjs="$root/node_modules/.bin/componentize-js"
  elif command -v componentize-js >/dev/null 2>&1; then
    cjs="$(command -v componentize-js)"
  else
    cat >&2 <<MSG
build.sh: ComponentizeJS not found. Install it and point COMPONENTIZE_JS at its CLI, e.g.
  npm install --prefix /tmp/jstools --save-exact @bytecodealliance/componentize-js@0.23.0 @bytecodealliance/preview2-shim@0.25.0
  COMPONENTIZE_JS=/tmp/jstools/node_modules/.bin/componentize-js $0 $*
MSG
    exit 1
  fi
fi
if [ -d "$cjs" ]; then
  cjs="$cjs/src/cli.js"
fi
if [ ! -e "$cjs" ]; then
  echo "build.sh: COMPONENTIZE_JS=$cjs does not exist" >&2
  exit 1
fi
componentize() {
  case "$cjs" in
    *.js | *.mjs | *.cjs) node "$cjs" "$@" ;;
    *) "$cjs" "$@" ;;
  esac
}

stage="$(mktemp -d "${TMPDIR:-/tmp}/stratbox-js-build.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage/wit/deps/strategy-0.1.0"
cp "$root/wit/v0.1.1/strategy.wit" "$stage/wit/strategy.wit"
cp "$root/wit/strategy.wit" "$stage/wit/deps/strategy-0.1.0/strategy.wit"
# The entry module and the strategy must reach one copy of the SDK: the host installed into
# a second copy would never be the one the strategy logs through.
if [ "$layout" = repository ]; then
  mkdir -p "$stage/src/guest-sdk/js" "$stage/src/strategies/js"
  cp -RL "$root/guest-sdk/js/stratbox" "$stage/src/guest-sdk/js/"
  cp -RL "$src" "$stage/src/strategies/js/"
  sdk="./guest-sdk/js/stratbox"
  app="./strategies/js/${strategy}/app.js"
  from="strategies/js/$strategy"
else
  mkdir -p "$stage/src/app"
  for entry in "$src"/*; do
    case "${entry##*/}" in
      stratbox | target | node_modules) ;;
      *) cp -RL "$entry" "$stage/src/app/" ;;
    esac
  done
  cp -RL "$root/guest-sdk/js/stratbox" "$stage/src/app/"
  sdk="./app/stratbox"
  app="./app/app.js"
  from="$src"
fi
cat >"$stage/src/entry.js" <<JS
import * as host from 'stratbox:strategy/host@0.1.0';
import { installHost } from '${sdk}/host.js';

installHost(host);

export { init, onEvent, save, restore } from '${app}';
JS

rm -f "$out.tmp"
# ComponentizeJS works in a folder of its own under TMPDIR and leaves it behind when it
# fails; inside the stage it goes away with the stage.
mkdir "$stage/tmp"
(
  cd "$stage/src"
  TMPDIR="$stage/tmp" componentize "$stage/src/entry.js" \
    --wit "$stage/wit" \
    --world-name strategy \
    --disable stdio random clocks http fetch-event \
    --out "$out.tmp"
)
if [ ! -s "$out.tmp" ]; then
  echo "build.sh: ComponentizeJS wrote no component" >&2
  exit 1
fi
mv "$out.tmp" "$out"
echo "built $out ($(wc -c <"$out") bytes) from $from"
