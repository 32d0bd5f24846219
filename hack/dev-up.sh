#!/usr/bin/env bash
# Starts a local control plane (etcd + kube-apiserver, built by
# setup-envtest.sh) and the CVM simulator in the background, writes
# .dev/kubeconfig, installs the CRDs, and prints the `export KUBECONFIG` line.
# Stop everything with hack/dev-down.sh (make dev-down).
#
# The same flags as the Rust test harness (tests/support/control_plane.rs):
# token auth, RBAC, a self-signed serving cert whose key doubles as the
# service-account key, loopback ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DEV=$ROOT/.dev
log() { printf 'dev-up: %s\n' "$*" >&2; }

ASSETS=$(hack/setup-envtest.sh)
mkdir -p "$DEV"

alive() { [[ -f $DEV/$1.pid ]] && kill -0 "$(cat "$DEV/$1.pid")" 2>/dev/null; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

if alive kube-apiserver && alive etcd; then
  log "control plane already running"
else
  hack/dev-down.sh >/dev/null 2>&1 || true
  mkdir -p "$DEV"
  EP=$(free_port); PP=$(free_port); AP=$(free_port)
  TOKEN=$(python3 -c 'import secrets;print(secrets.token_hex(16))')
  rm -rf "$DEV/etcd" "$DEV/pki"
  nohup "$ASSETS/etcd" --data-dir "$DEV/etcd" --unsafe-no-fsync=true --log-level warn \
    --listen-client-urls "http://127.0.0.1:$EP" --advertise-client-urls "http://127.0.0.1:$EP" \
    --listen-peer-urls "http://127.0.0.1:$PP" --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
    --initial-cluster "default=http://127.0.0.1:$PP" >"$DEV/etcd.log" 2>&1 &
  echo $! >"$DEV/etcd.pid"
  echo "$TOKEN,admin,admin-uid,system:masters" >"$DEV/tokens.csv"
  nohup "$ASSETS/kube-apiserver" --etcd-servers="http://127.0.0.1:$EP" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$AP" \
    --cert-dir="$DEV/pki" --token-auth-file="$DEV/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-signing-key-file="$DEV/pki/apiserver.key" \
    --service-account-key-file="$DEV/pki/apiserver.key" \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
    --disable-admission-plugins=ServiceAccount --allow-privileged=true >"$DEV/apiserver.log" 2>&1 &
  echo $! >"$DEV/kube-apiserver.pid"
  start=$(date +%s)
  until curl -fsk -m 2 -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$AP/readyz" >/dev/null 2>&1; do
    if ! alive kube-apiserver; then log "kube-apiserver exited:"; tail -20 "$DEV/apiserver.log" >&2; exit 1; fi
    if (( $(date +%s) - start > 120 )); then log "kube-apiserver not ready after 120 s:"; tail -20 "$DEV/apiserver.log" >&2; exit 1; fi
    sleep 0.3
  done
  CA=$(base64 -w0 "$DEV/pki/apiserver.crt")
  cat >"$DEV/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: cvm-dev
  cluster:
    server: https://127.0.0.1:$AP
    certificate-authority-data: $CA
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: cvm-dev
  context:
    cluster: cvm-dev
    user: admin
    namespace: default
current-context: cvm-dev
KC
  log "control plane ready in $(( $(date +%s) - start )) s at https://127.0.0.1:$AP"
fi

export KUBECONFIG=$DEV/kubeconfig
"$ASSETS/kubectl" apply --server-side -f crds/ >/dev/null
"$ASSETS/kubectl" wait --for=condition=Established crd --all --timeout=60s >/dev/null
log "CRDs installed"

if [[ ${DEV_UP_SIMULATOR:-1} == 1 ]] && ! alive simulator; then
  BIN=${CVM_OPERATOR_BIN:-target/debug/cvm-operator}
  [[ -x $BIN ]] || cargo build --bin cvm-operator
  nohup "$BIN" simulator --listen 127.0.0.1:0 >"$DEV/simulator.out" 2>"$DEV/simulator.log" &
  echo $! >"$DEV/simulator.pid"
  for _ in $(seq 1 100); do grep -q 'listening on' "$DEV/simulator.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/.*listening on //p' "$DEV/simulator.out" >"$DEV/simulator.endpoint"
  log "CVM simulator at $(cat "$DEV/simulator.endpoint")"
fi

echo "export KUBECONFIG=$DEV/kubeconfig PATH=$ASSETS:\$PATH"
