#!/usr/bin/env bash
# OURS hook for ../shared/bench: runs one `visawatch check` and prints
# `changed=K` (sources new or changed) for the harness to verify.
# Usage: ours.sh CONFIG DATA
set -uo pipefail
bin="$(dirname "$0")/../target/release/visawatch"
out="$2.report.json"
"$bin" --config "$1" --data "$2" check --json > "$out"
code=$?
jq -r '"changed=" + ([.sources[] | select(.status == "baseline" or .status == "changed")] | length | tostring)' "$out"
exit $code
