#!/usr/bin/env bash
# `make demo`: a local control plane, the operator on its in-process CVM
# simulator, the manifests of examples/ (account.yaml lets the namespace
# `default` use the operator's own credentials), and `kubectl get cvm` once
# they are Ready. Everything keeps running for you to play with; `make dev-down` stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DEV=$ROOT/.dev
log() { printf 'demo: %s\n' "$*" >&2; }

ASSETS=$(hack/setup-envtest.sh)
export PATH=$ASSETS:$PATH
log "building cvm-operator"
cargo build --bin cvm-operator
DEV_UP_SIMULATOR=0 hack/dev-up.sh >/dev/null
export KUBECONFIG=$DEV/kubeconfig

if [[ -f $DEV/operator.pid ]] && kill -0 "$(cat "$DEV/operator.pid")" 2>/dev/null; then
  log "operator already running"
else
  nohup target/debug/cvm-operator run --simulator --simulator-listen 127.0.0.1:18081 \
    --metrics-addr 127.0.0.1:18080 --poll-interval 60 >"$DEV/operator.log" 2>&1 &
  echo $! >"$DEV/operator.pid"
  for _ in $(seq 1 100); do curl -fs 127.0.0.1:18080/readyz >/dev/null 2>&1 && break; sleep 0.1; done
  log "operator running (log: .dev/operator.log, metrics: http://127.0.0.1:18080/metrics, simulator: http://127.0.0.1:18081)"
fi

kubectl apply -f examples/
log "waiting for the instances to become Ready"
kubectl wait --for=condition=Ready cvmset --all --timeout=120s >/dev/null
kubectl wait --for=condition=Ready cvm --all --timeout=120s >/dev/null
kubectl get cvm
cat <<MSG

Try it:
  export KUBECONFIG=$DEV/kubeconfig PATH=$ASSETS:\$PATH
  kubectl patch cvm web-1 --type merge -p '{"spec":{"instanceType":"S5.LARGE8"}}'   # resize (stop, resize, start)
  kubectl patch cvm batch-worker --type merge -p '{"spec":{"runState":"Running"}}'  # start it
  kubectl scale cvmset/workers --replicas=10                                          # a fleet: one RunInstances
  kubectl get cvm -w
  kubectl describe cvm web-1                                                          # conditions and events
  kubectl get cvmaccount                                                              # the account examples/account.yaml lets namespace default use
  curl -s 127.0.0.1:18081/_sim/stats                                                  # API calls seen by the simulator
Stop everything with: make dev-down
MSG
