#!/usr/bin/env bash
# Builds the Benthos peer (bench/peers/benthos-peer) into a cache outside the repo and prints the binary's path
# as its last line:
#   ${RIPPLE_TOOLS_CACHE:-$HOME/.cache/ripple-tools}/peers/<hash>/benthos-peer
# <hash> covers go.mod, go.sum, every .go source, the Go version and this recipe, so a warm cache answers at once
# and any change builds anew. A cold build of Benthos takes minutes on 2 cores: it runs at nice 19.
# Usage: bash bench/peers/build.sh   (GO=/path/to/go to pick a toolchain)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/benthos-peer"
cache="${RIPPLE_TOOLS_CACHE:-$HOME/.cache/ripple-tools}/peers"

go_bin="${GO:-}"
if [ -z "$go_bin" ]; then
    go_bin="$(command -v go || true)"
    [ -n "$go_bin" ] || { [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go; }
fi
[ -n "$go_bin" ] || { echo "build.sh: no Go toolchain (set GO or put go on PATH)" >&2; exit 1; }

recipe="v1 CGO_ENABLED=0 -trimpath -buildvcs=false -mod=readonly"
hash="$(
    cd "$src"
    {
        echo "$recipe"
        "$go_bin" env GOVERSION GOOS GOARCH
        for f in go.mod go.sum $(find . -name '*.go' ! -name '*_test.go' | LC_ALL=C sort); do
            echo "== $f"
            cat "$f"
        done
    } | sha256sum | cut -c1-16
)"
out="$cache/$hash/benthos-peer"

if [ ! -x "$out" ]; then
    mkdir -p "$cache/$hash"
    tmp="$(mktemp "$cache/$hash/.benthos-peer.XXXXXX")"
    trap 'rm -f "$tmp"' EXIT
    echo "build.sh: building benthos-peer ($("$go_bin" env GOVERSION)) into $cache/$hash ..." >&2
    start=$SECONDS
    (cd "$src" && CGO_ENABLED=0 nice -n 19 "$go_bin" build -trimpath -buildvcs=false -mod=readonly -o "$tmp" .)
    mv -f "$tmp" "$out"
    trap - EXIT
    echo "build.sh: built in $((SECONDS - start)) s" >&2
fi
echo "$out"
