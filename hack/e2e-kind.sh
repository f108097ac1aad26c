#!/usr/bin/env bash
# For users with Docker: the k8s test suite against a real kind cluster instead of the built-in control plane.
# Creates a kind cluster, builds and loads the image, installs the chart, then runs the k8s tests that apply to a
# real cluster with KUBECONFIG_E2E pointing at it (the tests take their kubeconfig from the environment).
# It cannot run on Ripple's development machines (no container engine there); CI on GitHub runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${KIND_CLUSTER:-ripple-e2e}"
image="ghcr.io/ripple-dev/ripple:e2e"

command -v kind >/dev/null || { echo "kind is required: https://kind.sigs.k8s.io" >&2; exit 1; }
command -v helm >/dev/null || { echo "helm is required" >&2; exit 1; }

kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
kubeconfig="$(mktemp)"
kind get kubeconfig --name "$cluster" > "$kubeconfig"

docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"

helm upgrade --install ripple charts/ripple --kubeconfig "$kubeconfig" --namespace ripple-system --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never --wait --timeout 5m

python3 -m pip install --quiet -e '.[test]'
# The CRD checks, and the flow through the installed release. The operator and Helm tests of tests/k8s run
# their own operator and releases, which would collide with this one: they belong to the built-in control plane.
KUBECONFIG_E2E="$kubeconfig" RIPPLE_E2E_RELEASE=ripple-system/ripple python3 -m pytest -m k8s \
  tests/k8s/test_control_plane.py tests/k8s/test_crd_validation.py tests/k8s/test_installed_release.py "$@"
