#!/usr/bin/env bash
# The console's page times on a store of realistic size: SERVERS servers (10
# per backend) with DAYS days of minute windows and a year of state changes
# (loadgen --history), served by `hapwatch serve`; N requests per page, one at
# a time, each built anew, timed by curl (connect included). Prints Markdown rows.
# Usage: bench/console.sh [SERVERS=200] [DAYS=30] [N=100]   (WORK=DIR keeps the store)
set -euo pipefail
cd "$(dirname "$0")/.."
servers=${1:-200}; days=${2:-30}; n=${3:-100}
work=${WORK:-$(mktemp -d)}
[ -n "${WORK:-}" ] || trap 'rm -rf "$work"' EXIT
log() { echo "console bench: $*" >&2; }

cargo build --release --quiet --bin hapwatch --example loadgen
bin=target/release/hapwatch
db="$work/console-$servers-$days.db"
if [ ! -e "$db" ]; then
    log "writing $days days x $servers servers of history"
    target/release/examples/loadgen --history "$work/history.log" --days "$days" --servers "$servers" >&2
    log "replaying it into $db"
    $bin replay --db "$db" "$work/history.log" >&2
    rm -f "$work/history.log"
fi
windows=$(sqlite3 "$db" "SELECT count(*) FROM windows" 2>/dev/null || echo "?")
events=$(sqlite3 "$db" "SELECT count(*) FROM events" 2>/dev/null || echo "?")
rm -f "$work/ready.json"
HAPWATCH_LOG=warn $bin serve --db "$db" --listen udp://127.0.0.1:0 --http 127.0.0.1:0 \
    --ready-file "$work/ready.json" &
pid=$!
trap 'kill $pid 2>/dev/null; [ -n "${WORK:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 300); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
base="http://$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$work/ready.json")"
incident=$(curl -s "$base/incidents?since=30d&format=json" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["history"] or d["open"]; print(r[len(r)//2]["id"])')

echo "| page ($servers servers, $windows windows, $events events; $n requests) | p50 | p99 | max |"
echo "| --- | --- | --- | --- |"
for page in "/" "/incidents" "/incidents/$incident" "/backends/be_3?range=1h" \
    "/backends/be_3?range=24h" "/backends/be_3?range=7d" "/?format=json"; do
    for _ in 1 2 3; do curl -s -o /dev/null "$base$page"; done
    # A query parameter of its own per request: each one is built, not the
    # second's cached copy (which costs ~0.3 ms).
    case $page in *\?*) sep='&' ;; *) sep='?' ;; esac
    for i in $(seq "$n"); do
        curl -s -o /dev/null -w '%{time_total}\n' "$base$page${sep}nocache=$i"
    done | sort -n | awk -v page="$page" '
        { t[NR] = $1 * 1000 }
        END {
            p50 = t[int(NR * 0.50 + 0.5)]; p99 = t[int(NR * 0.99 + 0.5)]
            printf "| `%s` | %.1f ms | %.1f ms | %.1f ms |\n", page, p50, p99, t[NR]
        }'
done
