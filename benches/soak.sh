#!/usr/bin/env bash
# Soak run of `visawatch daemon` (a benchmark, not a CI test).
#
#   bash benches/soak.sh [N] [SECONDS]        (defaults: 1000 sources, 3600 s)
#
# Serves N generated government-style pages from ../shared/bench with nginx on
# 127.0.0.1 (the "plain" listener: always 200, so every tick fetches every
# page), runs the daemon on `*/10 * * * * *` (every 10 s) for SECONDS, mutates
# 2 % of the pages every 60 s, samples the daemon's resident memory and open
# file descriptors every 30 s, then stops it with SIGTERM and checks that every
# injected change was recorded once and every material change alerted once.
# Output: /tmp/visawatch-soak/samples.csv and a summary on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-1000}"
secs="${2:-3600}"
work=/tmp/visawatch-soak
port=18300

cargo build --release --manifest-path "$root/Cargo.toml"
rm -rf "$work" && mkdir -p "$work"
cp -r "$root/../shared/bench/." "$work/bench/"
cd "$work"
python3 bench/gen_corpus.py gen corpus --n "$n" --seed 7 >/dev/null
python3 bench/server.py corpus --port "$port" --engine auto --rundir "$work/server" > server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; pkill -f "nginx.*$work" 2>/dev/null || true' EXIT
sleep 2

{
  printf '[settings]\nschedule = "*/10 * * * * *"\njitter_secs = 1\nconcurrency = 8\nper_host = 8\n\n'
  for i in $(seq 0 $((n - 1))); do
    printf '[[source]]\nid = "p%05d"\nurl = "http://127.0.0.1:%d/p/%05d.html"\nselect = "main#main-content"\nmaintainers = ["editors@example.org"]\n\n' \
      "$i" $((port + 1)) "$i"
  done
} > sources.toml

"$root/target/release/visawatch" --config sources.toml --data data --init daemon 2> daemon.log &
daemon=$!
echo "t_s,rss_kb,fds" > samples.csv
start=$(date +%s)
next_mutation=$((start + 60))
next_sample=$start
round=0
injected=0
while [ $(( $(date +%s) - start )) -lt "$secs" ]; do
  now=$(date +%s)
  if [ "$now" -ge "$next_sample" ]; then
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
    fds=$(ls "/proc/$daemon/fd" | wc -l)
    echo "$((now - start)),$rss,$fds" >> samples.csv
    next_sample=$((next_sample + 30))
  fi
  # The last mutation lands at least 30 s before the end, so it is checked.
  if [ "$now" -ge "$next_mutation" ] && [ $((now - start)) -lt $((secs - 30)) ]; then
    round=$((round + 1))
    python3 bench/gen_corpus.py mutate corpus --fraction 0.02 --round "$round" --list "mut-$round.txt" >/dev/null
    injected=$((injected + $(wc -l < "mut-$round.txt")))
    next_mutation=$((next_mutation + 60))
  fi
  sleep 1
done
kill -TERM "$daemon"
wait "$daemon" && echo "daemon exited 0 after SIGTERM" || echo "daemon exit status $?"

python3 - "$injected" <<'EOF'
import csv, sqlite3, sys
injected = int(sys.argv[1])
rows = list(csv.DictReader(open("samples.csv")))
rss = [int(r["rss_kb"]) // 1024 for r in rows]
fds = [int(r["fds"]) for r in rows]
db = sqlite3.connect("data/visawatch.db")
q = lambda sql: db.execute(sql).fetchone()[0]
checks = q("select count(*) from checks")
failed = q("select count(*) from checks where status = 'failed'")
changes = q("select count(*) from changes")
material = q("select count(*) from changes where material = 1")
alerts = q("select count(*) from outbox where kind = 'change'")
dup = q("select count(*) from (select change_id from outbox where change_id is not null group by change_id having count(*) > 1)")
print(f"samples: {len(rows)} over {rows[-1]['t_s']} s")
print(f"RSS MiB: first {rss[0]}, after 5 min {rss[min(10, len(rss)-1)]}, last {rss[-1]}, max {max(rss)}")
print(f"open fds: first {fds[0]}, last {fds[-1]}, max {max(fds)}")
print(f"checks {checks} ({failed} failed); injected changes {injected}; recorded changes {changes} "
      f"({material} material); change alerts {alerts}; alerts for one change more than once: {dup}")
EOF
