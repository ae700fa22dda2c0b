#!/usr/bin/env bash
# A day of `visawatch daemon` at scale, compressed or not (issue 17: the
# daemon's resident memory stays flat over a day at 100,000 sources).
#
#   bash benches/scale.sh 100000                  # first: the pages, the catalog, a baseline
#   bash benches/daemon_day.sh 100000 6000        # then: N sources, seconds
#   DAY_SCHEDULE="0 0 * * * *" DAY_DIGEST="0 0 8 * * *" DAY_CHANGES="240 720" \
#     DAY_WEEKLY="" bash benches/daemon_day.sh 100000 86400   # a real day, hourly
#
# Runs the daemon over the folder `scale.sh N` left (/tmp/visawatch-scale-N,
# its nginx started again if it is not running) with:
#   DAY_SCHEDULE  the checks' schedule        (default every minute: a round
#                                              a minute stands for an hour)
#   DAY_DIGEST    the digest's schedule       (default every 15 minutes)
#   DAY_CHANGES   minutes at which a tenth of the pages change, so a tenth
#                 of the sources alert: 10,000 alerts at N = 100,000
#                 (default "30 70")
#   DAY_WEEKLY    minutes at which the weekly integrity check and prune are
#                 made due (default "45 80")
# Alerts are written as .eml files (an [email] section without smtp_url).
# Prints the resident memory, its peak so far and the open descriptors
# every 30 s, the events as they happen, and at the end what the log says
# the daemon did. Output also in /tmp/visawatch-scale-N/run/day-rss.log.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-100000}"
secs="${2:-6000}"
work="/tmp/visawatch-scale-$n"
port="${SCALE_PORT:-18400}"
schedule="${DAY_SCHEDULE:-0 * * * * *}"
digest="${DAY_DIGEST:-0 */15 * * * *}"
changes="${DAY_CHANGES:-30 70}"
weekly="${DAY_WEEKLY:-45 80}"
bin="$root/target/release/visawatch"
gen="$root/../shared/bench/gen_corpus.py"
[ -f "$work/sources.toml" ] || { echo "run bash benches/scale.sh $n first" >&2; exit 1; }
cargo build --release --manifest-path "$root/Cargo.toml" >&2
cd "$work"
server=""
if ! curl -sf -o /dev/null "http://127.0.0.1:$port/p/7"; then
  /usr/sbin/nginx -c "$work/run/nginx.conf" -p "$work/run" &
  server=$!
  sleep 1
fi
# The catalog scale.sh wrote, with this run's schedules and an [email] section.
sed -e '/^schedule = /d' -e '/^jitter_secs = /d' -e "s|^per_host_gap_ms = 0$|per_host_gap_ms = 0\nschedule = \"$schedule\"\njitter_secs = 0\ndigest_schedule = \"$digest\"|" \
  sources.toml > sources-day.toml
printf '\n[email]\nfrom = "visawatch <alerts@example.org>"\nto = ["desk@example.org"]\n' >> sources-day.toml
find data/outbox -name '*.eml' -delete 2>/dev/null || true
log=run/day.log
out=run/day-rss.log
: > "$out"
"$bin" --config sources-day.toml --data data daemon 2> "$log" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null || true; [ -z "$server" ] || kill $server 2>/dev/null || true' EXIT
start=$(date +%s)
say() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$out"; }
say "daemon $daemon started: $n sources, schedule \"$schedule\", digest \"$digest\", for $secs s"
done_changes="" done_weekly=""
while [ $(( $(date +%s) - start )) -lt "$secs" ] && kill -0 "$daemon" 2>/dev/null; do
  sleep 30
  minute=$(( ($(date +%s) - start) / 60 ))
  for at in $changes; do
    if [ "$minute" -ge "$at" ] && [[ " $done_changes " != *" $at "* ]]; then
      done_changes="$done_changes $at"
      python3 "$gen" mutate corpus --fraction 0.1 --round $((at + 100)) > /dev/null
      say "a tenth of the pages changed (minute $at)"
    fi
  done
  for at in $weekly; do
    if [ "$minute" -ge "$at" ] && [[ " $done_weekly " != *" $at "* ]]; then
      done_weekly="$done_weekly $at"
      sqlite3 -cmd ".timeout 30000" data/visawatch.db \
        "DELETE FROM meta WHERE key IN ('last_verified_at', 'last_pruned_at')"
      say "weekly integrity check and prune made due (minute $at)"
    fi
  done
  status="/proc/$daemon/status"
  say "minute $minute rss $(( $(awk '/VmRSS/ {print $2}' "$status") / 1024 )) MB" \
    "peak $(( $(awk '/VmHWM/ {print $2}' "$status") / 1024 )) MB fds $(ls "/proc/$daemon/fd" | wc -l)"
done
kill -TERM "$daemon"
wait "$daemon" && code=0 || code=$?
trap - EXIT
[ -z "$server" ] || kill "$server" 2>/dev/null || true
say "exit $code; rounds $(grep -c 'run finished' "$log"), digests $(grep -c 'digest queued' "$log")," \
  "integrity checks $(grep -c 'database integrity verified' "$log"), prunes $(grep -c 'history pruned' "$log")," \
  "alerts written $(find data/outbox -name '*.eml' | wc -l)"
