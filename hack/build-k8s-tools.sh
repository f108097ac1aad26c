#!/usr/bin/env bash
# Builds a real Kubernetes control plane for tests (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd) plus kwok and helm from Go modules, into a cache outside the repo:
#   ${RIPPLE_TOOLS_CACHE:-$HOME/.cache/ripple-tools}/<k8s-version>/bin
# Built once, reused afterwards. The last line on stdout is the bin directory:
#   bin=$(hack/build-k8s-tools.sh | tail -1)
# Also writes <k8s-version>/etc/kwok-stages.yaml (kwok's default node and pod lifecycle, to pass
# to `kwok --config`): kwokctl embeds these stages, the bare kwok binary has none built in.
# Versions: hack/tools/versions.env. Progress and timings go to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=$root/hack/tools
# shellcheck source=hack/tools/versions.env
source "$tools/versions.env"

dir=${RIPPLE_TOOLS_CACHE:-$HOME/.cache/ripple-tools}/$K8S_VERSION
bin=$dir/bin
stamps=$dir/stamps
stages=$dir/etc/kwok-stages.yaml

# What each binary is built from; a binary is rebuilt when its stamp differs.
# The wrapper modules' go.mod/go.sum are hashed in, so any dependency change rebuilds too.
modsum() { cat "$tools/$1/go.mod" "$tools/$1/go.sum" 2>/dev/null | cksum | cut -d' ' -f1; }
declare -A want=(
  [kube-apiserver]="$K8S_VERSION $(modsum k8s)"
  [kube-controller-manager]="$K8S_VERSION $(modsum k8s)"
  [kube-scheduler]="$K8S_VERSION $(modsum k8s)"
  [kubectl]="$K8S_VERSION $(modsum k8s)"
  [etcd]="$ETCD_VERSION $(modsum etcd)"
  [kwok]="$KWOK_VERSION"
  [helm]="$HELM_VERSION"
)
fresh() {
  [[ -x $bin/$1 && -f $stamps/$1 && "$(<"$stamps/$1")" == "${want[$1]}" ]] || return 1
  [[ $1 != kwok || -f $stages ]]
}
stale() {
  local t
  for t in "$@"; do fresh "$t" || return 0; done
  return 1
}
stamp() {
  local t
  for t in "$@"; do printf '%s\n' "${want[$t]}" > "$stamps/$t"; done
}

if ! stale "${!want[@]}"; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-k8s-tools: go is not installed" >&2; exit 1; }
mkdir -p "$bin" "$stamps" "${stages%/*}"
# One build at a time per cache (parallel test workers may all call this script).
exec 9>"$dir/.lock"
flock 9

export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -trimpath"
timed() { # timed LABEL CMD... : runs CMD, reports its wall time on stderr
  local label=$1 start=$SECONDS
  shift
  echo "build-k8s-tools: building $label ..." >&2
  "$@" >&2
  echo "build-k8s-tools: $label built in $((SECONDS - start))s" >&2
}

# The wrapper module must require exactly K8S_VERSION / ETCD_VERSION; regenerate it after a bump.
sync_module() { # sync_module DIR MODULE VERSION
  if ! grep -q "^[[:space:]]*$2 $3\b" "$tools/$1/go.mod" 2>/dev/null; then
    echo "build-k8s-tools: regenerating hack/tools/$1/go.mod for $2 $3 (commit it)" >&2
    "$tools/gen-modules.sh" "$1" >&2
  fi
}

k8s=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
if stale "${k8s[@]}"; then
  sync_module k8s k8s.io/kubernetes "$K8S_VERSION"
  minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  # One go build for all four: they share most packages, so the second costs little.
  (cd "$tools/k8s" && timed "${k8s[*]} $K8S_VERSION" \
    go build -ldflags "$ldflags" -o "$bin/" "${k8s[@]/#/k8s.io/kubernetes/cmd/}")
  stamp "${k8s[@]}"
fi

if stale etcd; then
  sync_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  (cd "$tools/etcd" && timed "etcd $ETCD_VERSION" \
    go build -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
  stamp etcd
fi

# kwok and helm have no replace directives, so `go install pkg@version` builds them exactly
# as pinned by their own go.mod/go.sum (verified against the checksum database).
if stale kwok; then
  GOBIN=$bin timed "kwok $KWOK_VERSION" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # The same stages kwokctl uses: node-initialize, node-heartbeat-with-lease (needs
  # kwok --node-lease-duration-seconds > 0), pod-ready, pod-complete, pod-delete.
  kwok_src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"
    cat "$kwok_src/kustomize/stage/$f.yaml"
  done > "$stages.tmp"
  mv "$stages.tmp" "$stages"
  stamp kwok
fi

if stale helm; then
  # Helm's release build stamps its version and the Kubernetes version it was compiled against
  # (the default .Capabilities.KubeVersion of `helm template`).
  helm_mod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  client_go=$(sed -n 's/^\tk8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$helm_mod")
  hl="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  hl+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    hl+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$client_go"
  done
  GOBIN=$bin timed "helm $HELM_VERSION" go install -ldflags "$hl" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  stamp helm
fi

echo "$bin"
