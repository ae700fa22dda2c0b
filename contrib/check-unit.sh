#!/usr/bin/env bash
# Checks contrib/visawatch.service: `systemd-analyze verify` must be clean and
# `systemd-analyze security` must rate it 3.0 or lower (exit 1 otherwise).
# Prints the rating. Usage: contrib/check-unit.sh [path/to/visawatch]
# (default: target/release/visawatch, else target/debug/visawatch); the unit's
# ExecStart is pointed at that binary in a temporary copy, since verify
# checks that the command exists.
set -euo pipefail
cd "$(dirname "$0")/.."

max=3.0
bin=${1:-}
if [[ -z $bin ]]; then
  for b in target/release/visawatch target/debug/visawatch; do
    [[ -x $b ]] && { bin=$b; break; }
  done
fi
[[ -n $bin && -x $bin ]] || { echo "error: no visawatch binary; build it or pass its path" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "error: systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/visawatch|$(realpath "$bin")|" contrib/visawatch.service >"$tmp/visawatch.service"

if ! out=$(systemd-analyze verify "$tmp/visawatch.service" 2>&1) || [[ -n $out ]]; then
  echo "systemd-analyze verify: not clean:" >&2
  echo "$out" >&2
  exit 1
fi
echo "systemd-analyze verify: clean"

rating=$(systemd-analyze security --offline=true "$tmp/visawatch.service" 2>&1 | sed -n 's/.*Overall exposure level for visawatch.service: \([0-9.]*\).*/\1/p')
[[ -n $rating ]] || { echo "error: no rating from systemd-analyze security" >&2; exit 1; }
echo "systemd-analyze security: exposure $rating (at most $max)"
awk -v r="$rating" -v m="$max" 'BEGIN { exit !(r <= m) }'
