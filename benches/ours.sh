#!/bin/sh
# OURS hook for ../shared/bench: runs one `visawatch check` and prints
# `changed=K` (sources new or changed) for the harness to verify.
# POSIX sh and grep, not bash and jq: the harness times this whole script.
# Usage: ours.sh CONFIG DATA
bin="$(dirname "$0")/../target/release/visawatch"
out="$2.report.json"
"$bin" --config "$1" --data "$2" --init check --json > "$out"
code=$?
echo "changed=$(grep -cF -e '"status": "baseline"' -e '"status": "changed"' "$out")"
exit $code
