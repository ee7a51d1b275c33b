#!/usr/bin/env bash
# The benchmark suite: parser ns/line, replay vs halog on the same file, UDP
# ingest's highest rate without loss, alert latency. Prints one Markdown
# table, with the machine it ran on. See bench/README.md.
# Usage: bench/run.sh [--quick]   (--quick: shorter runs, rougher figures)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${1:-}
udp_secs=10; lines=2000000; events=1000; rates="100000 150000 200000 250000"
if [ "$quick" = "--quick" ]; then
    udp_secs=3; lines=500000; events=200; rates="50000 100000"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log() { echo "bench: $*" >&2; }

log "building (release)"
cargo build --release --quiet --bin hapwatch --example loadgen --example alert_latency
cargo build --release --quiet -p hapwatch-parsers --example throughput
bin=target/release/hapwatch
rows=()
row() { rows+=("| $1 | $2 | $3 |"); }

log "parser: real httplog datagrams, one core"
for mode in "" "--body"; do
    out=$(target/release/examples/throughput fixture-httplog 5 $mode 2>&1 | tail -1)
    ns=$(sed 's/.*: \([0-9]*\) ns\/line.*/\1/' <<<"$out")
    mps=$(sed 's/.* \([0-9.]*\) M lines\/s.*/\1/' <<<"$out")
    what=${mode:+message only (header stripped)}
    row "parser, ${what:-whole datagram (syslog header + httplog)}" "$ns ns/line ($mps M lines/s)" "best of 5 over 2 M lines"
done
out=$(target/release/examples/throughput fixture-json 5 2>&1 | tail -1)
ns=$(sed 's/.*: \([0-9]*\) ns\/line.*/\1/' <<<"$out")
mps=$(sed 's/.* \([0-9.]*\) M lines\/s.*/\1/' <<<"$out")
row "parser, HAProxy 3.0 %{+json}o datagram (22 named items)" "$ns ns/line ($mps M lines/s)" "best of 5 over 2 M lines"

log "replay vs halog: $lines rsyslog-format httplog lines"
target/release/examples/loadgen --file "$work/haproxy.log" --lines "$lines" >/dev/null
replay=$($bin replay --db "$work/replay.db" "$work/haproxy.log" 2>/dev/null |
    sed 's/.*(\([0-9]*\) lines\/s).*/\1/')
row "replay (parse + windows + SQLite)" "$((replay / 1000))k lines/s" "$lines lines, default threads"
if command -v halog >/dev/null 2>&1; then
    t0=$(date +%s.%N)
    halog -srv <"$work/haproxy.log" >/dev/null 2>&1
    t1=$(date +%s.%N)
    halog_rate=$(awk -v n="$lines" -v a="$t0" -v b="$t1" 'BEGIN {printf "%d", n / (b - a)}')
    row "halog -srv, same file" "$((halog_rate / 1000))k lines/s" \
        "hapwatch at $(awk -v a="$halog_rate" -v b="$replay" 'BEGIN {printf "%.1f", a / b}')× halog's time"
else
    row "halog -srv, same file" "not run" "halog not installed (Debian: haproxy)"
fi

log "UDP ingest: highest fixed rate without loss, ${udp_secs}s each"
best=0
for rate in $rates max; do
    out=$(scripts/loadtest.sh "$udp_secs" "$rate" 2>&1)
    sent=$(sed -n 's/^sent \([0-9]*\) datagrams.*/\1/p' <<<"$out")
    achieved=$(sed -n 's/^sent .*: \([0-9]*\)\/s$/\1/p' <<<"$out")
    counted=$(sed -n 's/^counted into windows: \([0-9]*\)/\1/p' <<<"$out")
    cpu=$(sed -n 's/^hapwatch CPU: \([0-9]*\)%.*/\1/p' <<<"$out")
    log "  rate $rate: sent $sent ($achieved/s), counted $counted, CPU ${cpu}%"
    if [ "$sent" = "$counted" ]; then
        [ "$achieved" -gt "$best" ] && best=$achieved && best_cpu=$cpu
    fi
done
row "UDP ingest, no datagram lost" "$((best / 1000))k datagrams/s" "sent = counted into windows; hapwatch ${best_cpu:-?}% of one core"

log "alert latency: $events DOWN events under 50k traffic lines/s"
out=$(target/release/examples/alert_latency "$events" 2>/dev/null | tail -1)
p50=$(sed 's/.*p50 \([0-9.]*\) ms.*/\1/' <<<"$out")
p99=$(sed 's/.*p99 \([0-9.]*\) ms.*/\1/' <<<"$out")
row "alert latency, datagram → webhook received" "p50 $p50 ms, p99 $p99 ms" "$events events, group_wait 0"

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo
echo "hapwatch $($bin --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(date -u +%Y-%m-%d)"
echo "machine: $(nproc) cores, $cpu, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
echo
echo "| benchmark | result | notes |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
