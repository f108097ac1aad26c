#!/usr/bin/env bash
# Builds the official CloudEvents SDK programs the interop tests (tests/interop) run against Ripple, into a cache
# outside the repo, keyed by what they are built from:
#   ${RIPPLE_TOOLS_CACHE:-$HOME/.cache/ripple-tools}/interop/go-<hash>/ce-go      Go SDK (tests/interop/go)
#   ${RIPPLE_TOOLS_CACHE:-$HOME/.cache/ripple-tools}/interop/js-<hash>/ce-js.js   JS SDK (tests/interop/js), with
#       node_modules -> ../npm-<hash of package.json + package-lock.json>/node_modules (from `npm ci`)
# Nothing is written into the repo. Built once, instant afterwards; a change to a source, go.mod/go.sum,
# package.json/package-lock.json or the toolchain's version builds a new entry. Progress goes to stderr; stdout
# is two lines to eval (hack/test.sh does):
#   RIPPLE_INTEROP_GO=<path of ce-go>
#   RIPPLE_INTEROP_JS_DIR=<directory holding ce-js.js and its node_modules>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/tests/interop
cache=${RIPPLE_TOOLS_CACHE:-$HOME/.cache/ripple-tools}/interop

for tool in go node npm; do
  command -v "$tool" >/dev/null || { echo "interop-tools: $tool is not installed" >&2; exit 1; }
done

digest() { # digest WORD... -- FILE... : a short hash of the words and the files' contents
  local words=() files=()
  while [[ $# -gt 0 && $1 != -- ]]; do words+=("$1"); shift; done
  shift
  files=("$@")
  { printf '%s\n' "${words[@]}"; for f in "${files[@]}"; do printf '%s\n' "${f#"$src"/}"; cat "$f"; done; } |
    sha256sum | cut -c1-16
}

go_version=$(GOTOOLCHAIN=local go env GOVERSION)
node_major=$(node -p 'process.versions.node.split(".")[0]')
go_dir=$cache/go-$(digest "$go_version" "$(go env GOOS)/$(go env GOARCH)" -- "$src/go/go.mod" "$src/go/go.sum" "$src"/go/*.go)
npm_dir=$cache/npm-$(digest "node$node_major" -- "$src/js/package.json" "$src/js/package-lock.json")
js_dir=$cache/js-$(digest "node$node_major" -- "$src/js/package.json" "$src/js/package-lock.json" "$src"/js/*.js)

ready() {
  [[ -x $go_dir/ce-go && -f $npm_dir/.done && -L $js_dir/node_modules && -f $js_dir/ce-js.js ]]
}

if ! ready; then
  mkdir -p "$cache"
  # One build at a time (parallel test runs may all call this script); the second waits, then finds it ready.
  exec 9>"$cache/.lock"
  flock 9
  timed() { # timed LABEL CMD... : runs CMD (output to stderr), reports its wall time on stderr
    local label=$1 start=$SECONDS
    shift
    echo "interop-tools: $label ..." >&2
    "$@" >&2
    echo "interop-tools: $label done in $((SECONDS - start))s" >&2
  }

  if [[ ! -x $go_dir/ce-go ]]; then
    build_go() {
      local tmp
      tmp=$(mktemp -d "$cache/.go-build.XXXXXX")
      (cd "$src/go" && GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly -trimpath" go build -o "$tmp/ce-go" .)
      mkdir -p "$go_dir"
      mv "$tmp/ce-go" "$go_dir/ce-go"
      rmdir "$tmp"
    }
    timed "building ce-go (github.com/cloudevents/sdk-go/v2)" build_go
  fi

  if [[ ! -f $npm_dir/.done ]]; then
    install_js() {
      rm -rf "$npm_dir"
      mkdir -p "$npm_dir"
      cp "$src/js/package.json" "$src/js/package-lock.json" "$npm_dir/"
      (cd "$npm_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
      touch "$npm_dir/.done"
    }
    timed "npm ci (cloudevents)" install_js
  fi

  if [[ ! -L $js_dir/node_modules || ! -f $js_dir/ce-js.js ]]; then
    mkdir -p "$js_dir"
    cp "$src"/js/*.js "$src/js/package.json" "$js_dir/"
    ln -sfn "../${npm_dir##*/}/node_modules" "$js_dir/node_modules"
  fi
fi

printf 'RIPPLE_INTEROP_GO=%q\n' "$go_dir/ce-go"
printf 'RIPPLE_INTEROP_JS_DIR=%q\n' "$js_dir"
