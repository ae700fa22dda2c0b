#!/usr/bin/env bash
# Whole-run benchmark: visawatch and urlwatch side by side on ../shared/bench
# (N generated government-style pages served by nginx on 127.0.0.1; a
# baseline round, an unchanged round, a round with 10% changed; with the
# server honouring conditional GET and ignoring it).
#
#   bash benches/whole_run.sh [N] [bench.py options]     (default N = 1000)
#
# Needs root for the harness's setup (apt nginx, venvs) and its loopback-only
# network namespace, and jq. Results: /tmp/visawatch-bench/runs/*/table.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-1000}"; shift || true
cargo build --release --manifest-path "$root/Cargo.toml"
work=/tmp/visawatch-bench
mkdir -p "$work"
cp -r "$root/../shared/bench/." "$work/"
cd "$work"
OURS="sh $root/benches/ours.sh {config} {data}" OURS_NAME=visawatch \
  ./run_bench.sh "$n" --rounds 3 --tools urlwatch,ours --no-floor "$@"
python3 summarize.py "$(ls -td runs/*/ | head -1)results.json"
