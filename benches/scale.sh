#!/usr/bin/env bash
# Scale benchmark: N sources on one machine (issue 17).
#
#   bash benches/scale.sh [N]          (default N = 1000)
#
# nginx on 127.0.0.1 serves N URLs (/p/<n>) from ten generated
# government-style pages (~100 KB each, ../shared/bench/gen_corpus.py): URL n
# gets page n mod 10, with ETag and Last-Modified. Three `visawatch check`
# rounds, each timed with its peak RSS and the database size after it:
#   baseline   every source new
#   unchanged  every answer a 304
#   changed    one page's requirements edited (gen_corpus.py mutate): 10 %
#              of the sources changed
# then `status`, `sources` and `prune` on the same data folder (one day of
# history: prune finds nothing to remove; it shows the cost of looking).
# With SCALE_DAEMON_SECS=S, then runs `visawatch daemon` over the same
# sources every 30 s for S seconds and prints its resident memory every
# 30 s (flat is the point).
# Work folder: /tmp/visawatch-scale-N (kept for a look afterwards).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-1000}"
port="${SCALE_PORT:-18400}"
work="/tmp/visawatch-scale-$n"
bin="$root/target/release/visawatch"

cargo build --release --manifest-path "$root/Cargo.toml" >&2
rm -rf "$work" && mkdir -p "$work/run"
cd "$work"
gen="$root/../shared/bench/gen_corpus.py"
python3 "$gen" gen corpus --n 10 --seed 17 >/dev/null

cat > run/nginx.conf <<EOF
daemon off;
worker_processes 2;
pid $work/run/nginx.pid;
error_log $work/run/error.log warn;
events { worker_connections 4096; }
http {
    types { text/html html; }
    charset utf-8;
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $work/run/tmp;
    proxy_temp_path $work/run/tmp;
    fastcgi_temp_path $work/run/tmp;
    uwsgi_temp_path $work/run/tmp;
    scgi_temp_path $work/run/tmp;
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $work/corpus/p;
        etag on;
        location ~ "^/p/[0-9]*([0-9])$" { try_files /0000\$1.html =404; }
    }
}
EOF
/usr/sbin/nginx -c "$work/run/nginx.conf" -p "$work/run" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/p/7" >/dev/null && break
  sleep 0.1
done

# One host: per_host as wide as the whole run, no gap (a benchmark of
# visawatch, not of politeness).
{
  printf '[settings]\nconcurrency = 32\nper_host = 32\nper_host_gap_ms = 0\n\n'
  for i in $(seq 0 $((n - 1))); do
    printf '[[source]]\nid = "s%06d"\nurl = "http://127.0.0.1:%d/p/%d"\nselect = "main#main-content"\nallow_private = true\nmaintainers = ["editors@example.org"]\n\n' \
      "$i" "$port" "$i"
  done
} > sources.toml

# Runs a visawatch command; prints wall seconds and peak RSS in MB.
measure() {
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o run/time "$bin" --config sources.toml --data data "$@" > "run/$label.out" 2> "run/$label.err" || {
    echo "$label failed:"; tail -5 "run/$label.err"; exit 1; }
  read -r secs kb < run/time
  local db
  db=$(du -cm data/visawatch.db* | tail -1 | cut -f1)
  printf '| %-9s | %7s s | %5d MB | %5s MB |\n' "$label" "$secs" $((kb / 1024)) "$db"
}

echo "N = $n sources ($(nproc) cores)"
echo "| round     |      time |      RSS | database |"
echo "|-----------|----------:|---------:|---------:|"
measure baseline --init check --json
measure unchanged check --json
python3 "$gen" mutate corpus --fraction 0.1 --round 1 >/dev/null
measure changed check --json
measure status status
measure sources sources
measure prune prune
for round in baseline unchanged changed; do
  echo "$round: $(grep -o '"status": "[a-z]*"' "run/$round.out" | sort | uniq -c | tr -s ' \n' ' ')"
done
echo "expected: $n baseline, $n unchanged, $((n / 10)) changed"

if [ -n "${SCALE_DAEMON_SECS:-}" ]; then
  sed -i 's/^concurrency = 32$/concurrency = 32\nschedule = "*\/30 * * * * *"\njitter_secs = 0/' sources.toml
  "$bin" --config sources.toml --data data daemon 2> run/daemon.log &
  daemon=$!
  echo "daemon RSS (MB) every 30 s over ${SCALE_DAEMON_SECS} s:"
  end=$(( $(date +%s) + SCALE_DAEMON_SECS ))
  while [ "$(date +%s)" -lt "$end" ]; do
    sleep 30
    printf '%s ' $(( $(awk '/VmRSS/ {print $2}' "/proc/$daemon/status") / 1024 ))
  done
  echo
  kill -TERM "$daemon"; wait "$daemon" || true
  echo "runs finished: $(grep -c 'run finished' run/daemon.log)"
fi
