#!/usr/bin/env bash
# Copies the CRDs from the repository's top-level crds/ (the source of truth,
# written by `make crds`: `cvm-operator crd --kind <Kind> > crds/<plural>.yaml`) into the Helm chart's
# crds/ directory, so Helm installs exactly the same definitions.
#
#   hack/sync-crds.sh          copy (and drop chart CRDs that no longer exist upstream)
#   hack/sync-crds.sh --check  exit 1 if the chart's copy differs; change nothing
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$ROOT/crds"
DST="$ROOT/deploy/helm/cvm-operator/crds"

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

shopt -s nullglob
srcs=("$SRC"/*.yaml)
if ((${#srcs[@]} == 0)); then
  echo "sync-crds: no CRDs in $SRC" >&2
  exit 1
fi

if $check; then
  stale=false
  for f in "${srcs[@]}"; do
    diff -u -- "$f" "$DST/$(basename "$f")" >&2 || stale=true
  done
  for f in "$DST"/*.yaml; do
    [[ -e "$SRC/$(basename "$f")" ]] || { echo "sync-crds: extra $f" >&2; stale=true; }
  done
  if $stale; then
    echo "sync-crds: $DST is stale; run hack/sync-crds.sh" >&2
    exit 1
  fi
  exit 0
fi

mkdir -p "$DST"
for f in "$DST"/*.yaml; do
  [[ -e "$SRC/$(basename "$f")" ]] || rm -f -- "$f"
done
for f in "${srcs[@]}"; do
  cp -- "$f" "$DST/$(basename "$f")"
done
