#!/usr/bin/env bash
# Rendered pages: N sources with render = "browser" (a page whose fees are
# written by its script, served by python3's http.server on 127.0.0.1),
# one `visawatch check` from a fresh data folder; prints the wall time, the
# seconds per page, and the peak RSS of the browser's processes (sampled
# every 100 ms). Needs chromium and chromium-driver.
#   cargo build --release && bash benches/render.sh [N]   (default N = 20)
set -euo pipefail
n="${1:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/www" "$work/tmp"
cat >"$work/www/visas.html" <<'HTML'
<!doctype html><html><body><main id="content"></main><script>
document.getElementById('content').innerHTML = '<h2>Consular fees</h2><table><tr><td>Visa C</td><td>35 EUR</td></tr></table><ul><li>Passport</li></ul>';
</script></body></html>
HTML
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work/www" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
server=$!
sleep 0.5
for i in $(seq 1 "$n"); do
  printf '[[source]]\nid = "r%s"\nurl = "http://127.0.0.1:%s/visas.html?%s"\nallow_private = true\nselect = "#content"\nrender = "browser"\n\n' "$i" "$port" "$i"
done >"$work/sources.toml"
peak=0
start=$(date +%s.%N)
TMPDIR="$work/tmp" "$root/target/release/visawatch" --config "$work/sources.toml" --data "$work/data" --init check >/dev/null &
run=$!
while kill -0 $run 2>/dev/null; do
  rss=$(ps -eo rss,args | awk -v m="$work/tmp" 'index($0, m) && /chrom/ { s += $1 } END { print s + 0 }')
  (( rss > peak )) && peak=$rss
  sleep 0.1
done
wait $run || true
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$n" -v p="$peak" 'BEGIN {
  printf "%d rendered pages: %.1f s, %.2f s a page (browser start included), browser peak RSS %.0f MiB\n", n, e - s, (e - s) / n, p / 1024 }'
