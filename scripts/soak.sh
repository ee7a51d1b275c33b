#!/bin/sh
# Soak: a release `hapwatch serve` under the fixture load generator at a fixed
# rate; every SAMPLE seconds it prints the daemon's RSS, the SQLite size and
# the counters, then the totals. Usage: scripts/soak.sh RATE SECONDS [SAMPLE] [SERVERS]
# With SERVERS, the generator sends lines stamped now over that many servers
# (as production would), so the store grows as it would in a day.
# SOAK_KEEP=1 keeps the store for a look afterwards; SOAK_PORT picks the port.
set -eu
rate=${1:?rate (datagrams/s)}
secs=${2:?seconds}
sample=${3:-10}
servers=${4:+--servers $4}
# A port of its own, so that two runs (or a CI run beside a soak) do not meet.
port=${SOAK_PORT:-$((20000 + $$ % 20000))}
dir=$(mktemp -d)
cargo build --release --quiet --bin hapwatch --example loadgen
bin=target/release/hapwatch
HAPWATCH_LOG=info $bin serve --db "$dir/h.db" --stats-interval "${sample}s" \
    --listen udp://127.0.0.1:$port 2>"$dir/serve.log" &
pid=$!
sleep 1
target/release/examples/loadgen --to 127.0.0.1:$port --rate "$rate" --seconds "$secs" $servers >"$dir/gen.out" &
gen=$!
printf '%8s %10s %12s\n' "t (s)" "RSS (MB)" "SQLite (MB)"
t=0
while kill -0 $gen 2>/dev/null; do
    sleep "$sample"
    t=$((t + sample))
    rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' /proc/$pid/status)
    size=$(du -cm "$dir"/h.db* | awk 'END {print $1}')
    printf '%8s %10s %12s\n' "$t" "$rss" "$size"
done
cat "$dir/gen.out"
peak=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' /proc/$pid/status)
kill -TERM $pid
wait $pid
echo "peak RSS ${peak} MB"
grep ' totals ' "$dir/serve.log" | sed 's/.*totals //'
# The WAL is folded into the file at a clean stop: this is the store's size.
bytes=$(stat -c %s "$dir/h.db")
if [ "$secs" -ge 600 ]; then
    echo "SQLite after ${secs}s: $((bytes / 1024)) KiB; at this rate $((bytes * 86400 / secs / 1048576)) MB a day"
else
    # Each minute's first lines open one window row per server: short runs overstate.
    echo "SQLite after ${secs}s: $((bytes / 1024)) KiB (run 600 s or more for a daily projection)"
fi
# Nothing lost: every datagram sent was received and parsed (exit 1 otherwise).
sent=$(sed -n 's/^sent \([0-9]*\) datagrams.*/\1/p' "$dir/gen.out")
totals=$(grep ' totals ' "$dir/serve.log")
received=$(echo "$totals" | sed 's/.* received=\([0-9]*\).*/\1/')
parsed=$(echo "$totals" | sed 's/.* parsed=\([0-9]*\).*/\1/')
if [ -n "${SOAK_KEEP:-}" ]; then
    echo "kept the store: $dir/h.db"
else
    rm -rf "$dir"
fi
if [ "$sent" != "$received" ] || [ "$sent" != "$parsed" ]; then
    echo "LOSS: sent $sent, received $received, parsed $parsed" >&2
    exit 1
fi
echo "sent = received = parsed = $sent"
