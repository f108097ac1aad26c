#!/usr/bin/env bash
# Ripple's test suite on a fresh machine: install the package with its test tools, lint, then run every test.
# Extra arguments go to pytest (e.g. `hack/test.sh -m "not e2e"` for the fast tier).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "Running pip as the 'root' user" || true

ruff check .
python3 -m pytest "$@"
