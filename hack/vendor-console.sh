#!/usr/bin/env bash
# Re-vendors the console's one front-end dependency, htm's Preact build (Preact and htm in one ES module,
# 13 KB), from the npm registry into operator/ripple/console/assets/vendor/, and checks it is the file the
# package ships: the console loads nothing from a CDN at run time.
set -euo pipefail
VERSION=3.1.1
SHA256=72284e8e9079c87817145df1110f74e8a2aa040b2fc384922e18dfcb46fc1fd7
here="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$here/operator/ripple/console/assets/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htm@$VERSION" >/dev/null && tar xzf "htm-$VERSION.tgz")
echo "$SHA256  $work/package/preact/standalone.module.js" | sha256sum --check --quiet
cp "$work/package/preact/standalone.module.js" "$vendor/htm-preact.module.js"
cp "$work/package/LICENSE" "$vendor/LICENSE.htm.txt"
echo "vendored htm@$VERSION (preact/standalone.module.js) into $vendor"
