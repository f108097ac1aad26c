#!/usr/bin/env bash
# Ripple's test suite on a fresh machine: install the package with its test tools, lint, then run every test.
# Extra arguments go to pytest (e.g. `hack/test.sh -m "not e2e"` for the fast tier).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "Running pip as the 'root' user" || true

ruff check .
hadolint Dockerfile
(cd operator && lint-imports ../pyproject.toml)
mypy

# openssl makes the test control plane's certificates; a bare Debian machine may lack it.
if ! command -v openssl >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
fi

# PostgreSQL (Debian's) for the database source's tests: they run initdb into a temporary directory.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
fi

# Debian's Chromium and its driver for the flow page's browser test (tests/console/test_flow_page.py).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi

# A real control plane for the k8s tests, built from Go modules once and cached outside the repo.
if command -v go >/dev/null 2>&1 && [ -z "${RIPPLE_K8S_BIN:-}" ]; then
  RIPPLE_K8S_BIN="$(hack/build-k8s-tools.sh | tail -n 1)"
  export RIPPLE_K8S_BIN
fi

# The official CloudEvents SDKs (Go, JavaScript) for the interop tests, built once and cached outside the repo.
if [ -z "${RIPPLE_INTEROP_GO:-}" ] || [ -z "${RIPPLE_INTEROP_JS_DIR:-}" ]; then
  interop_tools="$(hack/interop-tools.sh)"
  eval "$interop_tools"
  export RIPPLE_INTEROP_GO RIPPLE_INTEROP_JS_DIR
fi

python3 -m pytest "$@"
