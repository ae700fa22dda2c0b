#!/usr/bin/env bash
# Instructions per facts parse of the synthetic 100 KB page (benches/extract.rs),
# counted by valgrind: unlike a time, the count does not move with the
# machine's load, so two versions of the code compare on any machine.
#
#   bash benches/facts_instructions.sh
#
# The bench binary parses the page's canonical text 20 times, then 120
# times; the difference over 100 is one parse without the start-up (page
# built, regexes compiled, the one pass's DFA states first made).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "error: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench --bench extract --no-run 2>&1 | sed -n 's/.*Executable benches\/extract.rs (\(.*\))/\1/p' | tail -1)
[ -x "$bin" ] || { echo "error: no bench binary found for benches/extract.rs" >&2; exit 1; }
count() {
  VISAWATCH_FACTS_PARSES=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 |
    awk '/refs:/ { gsub(",", "", $4); print $4 }'
}
few=$(count 20)
many=$(count 120)
echo "instructions per facts parse: $(( (many - few) / 100 ))"
