#!/usr/bin/env bash
# Runs the chaos cases (tests/chaos: control-plane restarts, cloud outage,
# clock skew, leader failover, key rotation, a long run) one at a time and
# prints their table in Markdown, ready for the README.
#
#   hack/chaos.sh                        # make chaos: the full profile (< 30 min on 2 cores)
#   CHAOS_PROFILE=short hack/chaos.sh    # the few-minute version make test runs
#   CHAOS_LONG_SECS=3600 CHAOS_LONG_RESOURCES=1000 hack/chaos.sh long_run
#
# Arguments go to the test binary (a case name filters). Knobs: README, "Reliability".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
report=$(mktemp)
trap 'rm -f "$report"' EXIT
KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(hack/setup-envtest.sh)}
export KUBEBUILDER_ASSETS
start=$(date +%s)
status=0
CHAOS_REPORT=$report ${CARGO:-cargo} test --test chaos -- --test-threads 1 "$@" || status=$?
echo
echo "chaos (${CHAOS_PROFILE:-full} profile), $(( $(date +%s) - start )) s on $(nproc) cores:"
echo
awk -F'\t' 'BEGIN { print "| case | load | faults | result | figures |"; print "|---|---|---|---|---|" }
  { printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$report"
exit $status
