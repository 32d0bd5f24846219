#!/usr/bin/env bash
# Stops what dev-up.sh (and demo.sh) started, and removes .dev/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEV=$PWD/.dev
for p in operator simulator kube-apiserver etcd; do
  f=$DEV/$p.pid
  [[ -f $f ]] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
rm -rf "$DEV"
echo "dev-down: stopped"
