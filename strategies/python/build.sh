#!/usr/bin/env bash
# Builds one Python strategy (a folder of this directory, or one anywhere) into a WebAssembly
# component.
#
# usage: strategies/python/build.sh OUT.wasm [NAME|DIR]
#
# NAME is a folder here (default clamm-maker). A DIR (an argument with a `/` in it, or an
# existing directory that is not a folder here) is a strategy folder anywhere, such as a
# project `stratbox new --lang python` made. Either way the folder's top-level .py files
# are the strategy, `app.py` is the module componentized, and test files (test_*.py,
# *_test.py) stay out of the component.
#
# Uses componentize-py 0.25.1 from $COMPONENTIZE_PY, else `componentize-py` on PATH
# (pip install componentize-py==0.25.1). Pinned because the generated bindings and the
# runtime's export dispatch (see guest-sdk/python/stratbox/export.py) are per-version.
set -euo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: $0 OUT.wasm [NAME|DIR]   (NAME is a folder of $(dirname "$0"); default clamm-maker)" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cpy="${COMPONENTIZE_PY:-componentize-py}"
want="0.25.1"

if ! command -v "$cpy" >/dev/null 2>&1; then
    echo "error: componentize-py not found; set COMPONENTIZE_PY or pip install componentize-py==$want" >&2
    exit 1
fi
have="$("$cpy" --version | awk '{print $NF}')"
if [ "$have" != "$want" ]; then
    echo "error: componentize-py $have found, $want required" >&2
    exit 1
fi

out="$1"
name="${2:-clamm-maker}"
case "$name" in
    */*) src="$name" ;;
    *) if [ ! -d "$here/$name" ] && [ -d "$name" ]; then src="$name"; else src="$here/$name"; fi ;;
esac
if [ ! -d "$src" ]; then
    echo "error: no Python strategy $name (no directory $src)" >&2
    exit 2
fi
src="$(cd "$src" && pwd)"
if [ ! -f "$src/app.py" ]; then
    echo "error: no Python strategy $name (no $src/app.py)" >&2
    exit 2
fi
case "$out" in
    /*) ;;
    *) out="$PWD/$out" ;;
esac

# Built from a scratch directory holding only what the component needs: componentize-py
# bundles every file under each -p directory, and the SDK's tests do not belong in it.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sdk" "$work/app"
cp -R "$root/guest-sdk/python/stratbox" "$work/sdk/"
for file in "$src/"*.py; do
    case "${file##*/}" in
        test_*.py | *_test.py) ;;
        *) cp "$file" "$work/app/" ;;
    esac
done
find "$work" -name __pycache__ -type d -prune -exec rm -rf {} +

"$cpy" \
    -d "$root/wit" \
    -d "$root/wit/v0.1.1" \
    -w stratbox:strategy/strategy@0.1.1 \
    componentize app \
    -p "$work/app" \
    -p "$work/sdk" \
    -o "$out"
echo "built $out"
