#!/usr/bin/env bash
# Drives `cvm-operator simulator` with the OFFICIAL Tencent Cloud Python SDK
# (tencentcloud-sdk-python-common + -cvm + -sts, from PyPI) to prove the simulator
# speaks the real wire contract: TC3 signing over POST and GET, response shapes the
# SDK models deserialise without warnings, error envelopes, idempotent RunInstances,
# the in-place actions, the Tag service (through the SDK's generic client), STS and
# the SDK's own credential providers (AssumeRole, TKE OIDC, CVM role).
# Tests: tests/python/test_*.py. See ../shared/reference/cvm-api.md §8.
#
# Usage: hack/python-sdk-test.sh [pytest args...]     e.g.  -k lifecycle -x
# Env:   CVM_OPERATOR_BIN  simulator binary (default target/debug/cvm-operator,
#                          i.e. $CARGO_TARGET_DIR/debug/cvm-operator; built if missing)
#        PYTHON            interpreter used to create the venv (default python3)
#
# The venv lives in .venv (gitignored). Packages are installed once; a marker that
# names the pinned versions makes later runs skip pip entirely.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

COMMON_VERSION=3.1.195   # tencentcloud-sdk-python-common
CVM_VERSION=3.1.178      # tencentcloud-sdk-python-cvm (newest published; it lags common)
STS_VERSION=3.0.1459     # tencentcloud-sdk-python-sts (newest published; needs common >=3.0.1459,<4)
PYTEST_VERSION=9.2.0     # installed only if the venv has no pytest

VENV=$ROOT/.venv
PY=$VENV/bin/python
MARKER=$VENV/.python-sdk-test-common-$COMMON_VERSION-cvm-$CVM_VERSION-sts-$STS_VERSION

log() { printf 'python-sdk-test: %s\n' "$*" >&2; }

if ! [[ -x $PY ]] || ! "$PY" -c 'import sys' >/dev/null 2>&1; then
  log "creating venv $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  rm -f "$VENV"/.python-sdk-test-*
fi

if ! [[ -f $MARKER ]]; then
  log "installing tencentcloud-sdk-python-common==$COMMON_VERSION -cvm==$CVM_VERSION -sts==$STS_VERSION"
  "$PY" -m pip install --disable-pip-version-check -q \
    "tencentcloud-sdk-python-common==$COMMON_VERSION" \
    "tencentcloud-sdk-python-cvm==$CVM_VERSION" \
    "tencentcloud-sdk-python-sts==$STS_VERSION"
  if ! "$PY" -m pytest --version >/dev/null 2>&1; then
    log "installing pytest==$PYTEST_VERSION"
    "$PY" -m pip install --disable-pip-version-check -q "pytest==$PYTEST_VERSION"
  fi
  rm -f "$VENV"/.python-sdk-test-*
  touch "$MARKER"
fi

default_bin=${CARGO_TARGET_DIR:-target}/debug/cvm-operator
BIN=${CVM_OPERATOR_BIN:-$default_bin}
[[ $BIN == /* ]] || BIN=$ROOT/$BIN
if ! [[ -x $BIN ]]; then
  if [[ -n ${CVM_OPERATOR_BIN:-} && $CVM_OPERATOR_BIN != "$default_bin" ]]; then
    log "CVM_OPERATOR_BIN=$CVM_OPERATOR_BIN is not an executable file"
    exit 1
  fi
  log "building $BIN"
  cargo build --bin cvm-operator
fi
[[ -x $BIN ]] || { log "no simulator binary at $BIN"; exit 1; }
export CVM_OPERATOR_BIN=$BIN

log "simulator: $BIN"
exec "$PY" -m pytest tests/python "$@"
