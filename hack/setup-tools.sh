#!/usr/bin/env bash
# Builds (or finds) a Go tool the tests use and prints the path of its binary:
#
#   hack/setup-tools.sh promtool   # Prometheus' promtool: `promtool check rules`
#   hack/setup-tools.sh kstatus    # hack/kstatus: kstatus (Flux's health) of JSON objects
#   hack/setup-tools.sh actionlint # rhysd/actionlint: lints .github/workflows (make test)
#
# Like hack/setup-envtest.sh: built from Go modules through the module proxy
# (no download sites on our machines), cached per version under
# ~/.cache/cvm-operator/tools, one builder at a time (a lock), never committed.
# Cold builds on 2 cores (empty Go module and build caches): promtool 338 s,
# kstatus 81 s, actionlint 15 s.
set -euo pipefail

# Prometheus publishes its Go module as v0.<major*100+minor>.<patch>: v0.316.0 is v3.16.0.
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
ACTIONLINT_VERSION=${ACTIONLINT_VERSION:-v1.7.12}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_ROOT=${CVM_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cvm-operator/tools}
log() { printf 'setup-tools: %s\n' "$*" >&2; }

tool=${1:-}
case "$tool" in
  promtool) key="promtool-$PROMETHEUS_VERSION" ;;
  kstatus)
    # Keyed by the program and its pinned dependencies: an edit rebuilds.
    key="kstatus-$(cat "$ROOT"/hack/kstatus/{go.mod,go.sum,main.go} | sha256sum | cut -c1-12)" ;;
  actionlint) key="actionlint-$ACTIONLINT_VERSION" ;;
  *) log "usage: $0 promtool|kstatus|actionlint"; exit 2 ;;
esac
dir="$CACHE_ROOT/$key"
bin="$dir/$tool"
if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null 2>&1 || { log "error: Go >= 1.25 is needed to build $tool"; exit 1; }
mkdir -p "$dir"
exec 9>"$dir/.lock"
if ! flock -n 9; then
  log "another setup-tools is building $tool; waiting for it"
  flock 9
fi
if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
start=$(date +%s)
case "$tool" in
  promtool)
    log "building promtool $PROMETHEUS_VERSION (cold: ~6 min on 2 cores)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    n=${PROMETHEUS_VERSION#v0.}
    release="$(( ${n%%.*} / 100 )).$(( ${n%%.*} % 100 )).${n#*.}"
    GOBIN="$work" go install -trimpath -ldflags "-s -w \
      -X github.com/prometheus/common/version.Version=$release" \
      "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
    mv "$work/promtool" "$bin.tmp"
    ;;
  kstatus)
    log "building hack/kstatus"
    (cd "$ROOT/hack/kstatus" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$bin.tmp" .)
    ;;
  actionlint)
    log "building actionlint $ACTIONLINT_VERSION"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    GOBIN="$work" go install -trimpath -ldflags "-s -w \
      -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION" \
      "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
    mv "$work/actionlint" "$bin.tmp"
    ;;
esac
mv "$bin.tmp" "$bin"
log "$tool ready in $dir ($(( $(date +%s) - start )) s)"
echo "$bin"
