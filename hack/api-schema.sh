#!/usr/bin/env bash
# Prints the directory of the OFFICIAL Tencent Cloud API schemas (tccli's
# `services/`, holding e.g. cvm/v20170312/api.json and examples.json), after
# installing the pinned `tccli` from PyPI into the project's venv (.venv, the one
# hack/python-sdk-test.sh uses) if it is not there yet.
#
# The schema conformance test (src/sim/conformance.rs) reads it through
# CVM_API_SCHEMA_DIR; `make test` and `make unit` set that from this script.
# Only tccli's data files are used, so it is installed without its dependencies
# (the full SDK of every product), which keeps the venv small and the pinned
# cvm/common SDK versions of the interop test untouched.
#
# Usage: CVM_API_SCHEMA_DIR=$(hack/api-schema.sh)
# Env:   PYTHON  interpreter used to create the venv (default python3)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TCCLI_VERSION=3.1.189.1

VENV=$PWD/.venv
PY=$VENV/bin/python
log() { printf 'api-schema: %s\n' "$*" >&2; }

if ! [[ -x $PY ]] || ! "$PY" -c 'import sys' >/dev/null 2>&1; then
  log "creating venv $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi

# Finds the installed package without importing it (its __init__ would need the
# dependencies we skip); fails unless the pinned version is installed.
locate='
import importlib.metadata, importlib.util, os, sys
spec = importlib.util.find_spec("tccli")
if spec is None or importlib.metadata.version("tccli") != sys.argv[1]:
    sys.exit(1)
print(os.path.join(list(spec.submodule_search_locations)[0], "services"))
'
if ! dir=$("$PY" -c "$locate" "$TCCLI_VERSION" 2>/dev/null); then
  log "installing tccli==$TCCLI_VERSION (data files only, --no-deps)"
  "$PY" -m pip install --disable-pip-version-check -q --no-deps "tccli==$TCCLI_VERSION" >&2
  dir=$("$PY" -c "$locate" "$TCCLI_VERSION")
fi
for f in cvm/v20170312/api.json tag/v20180813/api.json sts/v20180813/api.json; do
  [[ -f $dir/$f ]] || { log "missing $dir/$f"; exit 1; }
done
echo "$dir"
