#!/usr/bin/env bash
# Smoke test of the binaries from hack/build-k8s-tools.sh: starts etcd, kube-apiserver (RBAC on),
# kube-controller-manager, kube-scheduler and kwok on loopback with random ports, registers a fake
# node, runs a 1-replica Deployment until kwok reports its pod Ready with an IP from
# 127.10.0.0/16, checks RBAC, then tears everything down.
# Usage: hack/tools/smoke-control-plane.sh   (RIPPLE_K8S_BIN=dir skips the build step;
#        RIPPLE_SMOKE_KEEP=1 leaves the work dir with its logs; RIPPLE_SMOKE_HOLD=N keeps the
#        cluster up N more seconds, for poking at it with the printed KUBECONFIG)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${RIPPLE_K8S_BIN:-$("$root/hack/build-k8s-tools.sh" | tail -1)}
stages=$bin/../etc/kwok-stages.yaml
# Every address stays on loopback. kwok hands out pod IPs from --cidr (or from a node's
# spec.podCIDR when set); Service ClusterIPs are only allocated, nothing routes them.
pod_cidr=127.10.0.0/16
svc_cidr=127.20.0.0/16
command -v openssl >/dev/null || { echo "smoke: needs openssl (apt-get install openssl)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ripple-k8s.XXXXXX")
pids=()
stop() { # stop PID: SIGTERM, then SIGKILL after 15 s
  local i
  kill "$1" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local rc=$? i
  # Newest first, each one gone before the next: the apiserver must still reach etcd to stop quickly.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}"; done
  if ((rc != 0 && rc != 143)); then
    for i in "$work"/*.log; do echo "=== $i" >&2; tail -n 30 "$i" >&2; done
  fi
  if [[ -n ${RIPPLE_SMOKE_KEEP:-} ]]; then echo "smoke: kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
cd "$work"
start=$SECONDS
log() { echo "smoke: [$((SECONDS - start))s] $*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for SECONDS WHAT CMD... : retries CMD; fails early if a started process died
  local deadline=$((SECONDS + $1)) what=$2 pid
  shift 2
  until "$@" >/dev/null 2>&1; do
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { log "a process died"; return 1; }; done
    ((SECONDS < deadline)) || { log "timed out waiting for $what"; return 1; }
    sleep 0.2
  done
}
run() { # run NAME CMD... : starts CMD in the background, logging to NAME.log
  local name=$1
  shift
  "$@" >"$name.log" 2>&1 &
  pids+=($!)
}

# Certificates: a CA, the apiserver's serving cert, and the service-account token signing key pair.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ripple-test-ca \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout apiserver.key -out apiserver.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:127.20.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > san.ext
openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile san.ext -out apiserver.crt 2>/dev/null
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

# Users: static bearer tokens (token,user,uid,"groups"). RBAC decides what each may do.
tok() { openssl rand -hex 16; }
admin_tok=$(tok) kcm_tok=$(tok) sched_tok=$(tok) kwok_tok=$(tok) nobody_tok=$(tok)
cat > tokens.csv <<EOF
$admin_tok,admin,uid-admin,"system:masters"
$kcm_tok,system:kube-controller-manager,uid-kcm
$sched_tok,system:kube-scheduler,uid-scheduler
$kwok_tok,kwok,uid-kwok,"system:masters"
$nobody_tok,nobody,uid-nobody
EOF

etcd_port=$(free_port) peer_port=$(free_port) api_port=$(free_port)
server=https://127.0.0.1:$api_port
kubeconfig() { # kubeconfig NAME TOKEN
  cat > "$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "$server", certificate-authority: "$work/ca.crt"}
users:
- name: $1
  user: {token: "$2"}
contexts:
- name: test
  context: {cluster: test, user: $1}
current-context: test
EOF
}
kubeconfig admin "$admin_tok"
kubeconfig kcm "$kcm_tok"
kubeconfig scheduler "$sched_tok"
kubeconfig kwok "$kwok_tok"
export KUBECONFIG=$work/admin.kubeconfig
k() { "$bin/kubectl" "$@"; }

log "starting etcd on 127.0.0.1:$etcd_port"
run etcd "$bin/etcd" --name=test --data-dir="$work/etcd-data" --log-level=warn --unsafe-no-fsync \
  --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
  --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
  --initial-cluster="test=http://127.0.0.1:$peer_port"
wait_for 30 etcd bash -c "exec 3<>/dev/tcp/127.0.0.1/$etcd_port"

log "starting kube-apiserver on $server"
run kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$etcd_port" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
  --endpoint-reconciler-type=none \
  --cert-dir="$work" --tls-cert-file=apiserver.crt --tls-private-key-file=apiserver.key \
  --client-ca-file=ca.crt --token-auth-file=tokens.csv \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file=sa.pub --service-account-signing-key-file=sa.key \
  --service-cluster-ip-range="$svc_cidr" \
  --allow-privileged=true --profiling=false
wait_for 60 kube-apiserver k get --raw=/readyz
log "kube-apiserver ready"

run kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig=kcm.kubeconfig --leader-elect=false --secure-port=0 \
  --use-service-account-credentials=true --service-account-private-key-file=sa.key \
  --root-ca-file=ca.crt --cluster-signing-cert-file=ca.crt --cluster-signing-key-file=ca.key
run kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig=scheduler.kubeconfig --leader-elect=false --secure-port=0
run kwok "$bin/kwok" \
  --kubeconfig=kwok.kubeconfig --config="$stages" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds=40 --cidr="$pod_cidr" --node-ip=127.0.0.1

k apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
k wait --for=condition=Ready node/kwok-node-0 --timeout=60s >/dev/null
log "node kwok-node-0 Ready (kwok)"

# The namespace's default ServiceAccount comes from kube-controller-manager; pods need it.
wait_for 60 "default ServiceAccount" k get serviceaccount default
k create deployment smoke --image=registry.invalid/smoke:1 --replicas=1 >/dev/null
k wait --for=condition=Available deployment/smoke --timeout=60s >/dev/null
pod_ip=$(k get pods -l app=smoke -o jsonpath='{.items[0].status.podIP}')
phase=$(k get pods -l app=smoke -o jsonpath='{.items[0].status.phase}')
log "deployment smoke Available: pod $phase on $(k get pods -l app=smoke -o jsonpath='{.items[0].spec.nodeName}') with IP $pod_ip"
[[ $phase == Running && $pod_ip == 127.10.* ]] || { log "expected a Running pod with an IP in $pod_cidr"; exit 1; }

# RBAC is enforced: a user with no bindings is refused, and allowed once bound.
as_nobody() { k --kubeconfig=/dev/null --server="$server" --certificate-authority=ca.crt --token="$nobody_tok" "$@"; }
if out=$(as_nobody get pods 2>&1) || [[ $out != *Forbidden* ]]; then
  log "RBAC not enforced: user nobody listing pods got: $out"
  exit 1
fi
k create rolebinding nobody-view --clusterrole=view --user=nobody >/dev/null
wait_for 10 "RBAC binding" as_nobody get pods
log "RBAC enforced (nobody refused, then allowed by a RoleBinding)"

log "server version: $(k version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
log "ok"
if [[ -n ${RIPPLE_SMOKE_HOLD:-} ]]; then
  log "holding for ${RIPPLE_SMOKE_HOLD}s: export KUBECONFIG=$KUBECONFIG"
  sleep "$RIPPLE_SMOKE_HOLD" &
  pids+=($!)
  wait $!
fi
