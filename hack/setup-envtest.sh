#!/usr/bin/env bash
# Builds the real control-plane binaries our tests and demo run against —
# kube-apiserver, kubectl, etcd and helm — from Go modules, into a per-version
# cache, and prints that directory (usable as KUBEBUILDER_ASSETS).
#
# Why build: there are no download sites on our machines, but the Go module
# proxy is reachable. k8s.io/kubernetes cannot be `go install`ed (its go.mod
# has replace directives), so we build it from a throw-away consumer module that
# replaces each staging module with its published v0.Y.Z tag, read from that
# version's own go.mod. See ../shared/reference/control-plane.md.
#
# Honours an existing KUBEBUILDER_ASSETS that already holds the binaries.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v3.22.0}

need=(kube-apiserver etcd kubectl helm)

have_all() {
  local d=$1 b
  for b in "${need[@]}"; do [[ -x "$d/$b" ]] || return 1; done
}

log() { printf 'setup-envtest: %s\n' "$*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && have_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

CACHE_ROOT=${CVM_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cvm-operator/envtest}
ASSETS="$CACHE_ROOT/$K8S_VERSION"
mkdir -p "$ASSETS"

if have_all "$ASSETS"; then
  echo "$ASSETS"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "error: Go is not installed (needed to build kube-apiserver, etcd, kubectl and helm)."
  log "Install Go >= 1.25 (with access to a Go module proxy), or point KUBEBUILDER_ASSETS at a"
  log "directory that already holds: ${need[*]}"
  exit 1
fi

# One builder at a time per cache; a second caller waits, then finds the cache warm.
exec 9>"$ASSETS/.lock"
if ! flock -n 9; then
  log "another setup-envtest is building into $ASSETS; waiting for it"
  flock 9
fi
if have_all "$ASSETS"; then
  echo "$ASSETS"
  exit 0
fi

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
MINOR=$(cut -d. -f2 <<<"$K8S_VERSION")
STAGING="v0.${K8S_VERSION#v1.}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)

build_k8s() {
  [[ -x "$ASSETS/kube-apiserver" && -x "$ASSETS/kubectl" ]] && return 0
  log "building kube-apiserver and kubectl $K8S_VERSION (cold: 10-25 min on 2 cores)"
  mkdir "$WORK/k8s" && cd "$WORK/k8s"
  go mod init local.invalid/k8sbins >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')
  [[ -f "$gomod" ]] || { log "could not download k8s.io/kubernetes@$K8S_VERSION"; return 1; }
  go mod edit -go="$(sed -n 's/^go //p' "$gomod")"
  grep '^godebug ' "$gomod" >>go.mod || true
  local m
  for m in $(awk '$2=="=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod"); do
    go mod edit -replace="$m=$m@$STAGING"
  done
  go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local c
  for c in kube-apiserver kubectl; do
    go build -mod=mod -trimpath -tags grpcnotrace -ldflags "$ld" -o "$ASSETS/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$ASSETS/$c.tmp" "$ASSETS/$c"
  done
}

build_etcd() {
  [[ -x "$ASSETS/etcd" ]] && return 0
  log "building etcd $ETCD_VERSION"
  # Its own module: sharing one with k8s would let MVS raise the apiserver's deps.
  mkdir "$WORK/etcd" && cd "$WORK/etcd"
  go mod init local.invalid/etcdbin >/dev/null 2>&1
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -mod=mod -trimpath -ldflags "-s -w" -o "$ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

build_helm() {
  [[ -x "$ASSETS/helm" ]] && return 0
  log "building helm $HELM_VERSION"
  mkdir "$WORK/helm" && cd "$WORK/helm"
  GOBIN="$WORK/helm/bin" go install -trimpath -ldflags "-s -w \
    -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$MINOR" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$WORK/helm/bin/helm" "$ASSETS/helm"
}

build_k8s
build_etcd
build_helm
log "binaries ready in $ASSETS ($(( $(date +%s) - start )) s)"
"$ASSETS/kube-apiserver" --version >&2
echo "$ASSETS"
