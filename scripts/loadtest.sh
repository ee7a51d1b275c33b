#!/bin/sh
# Load test: a release `hapwatch serve` on one UDP port, the fixture load
# generator on the other core, then sent vs. counted into windows, drops,
# CPU and peak RSS. Usage: scripts/loadtest.sh [SECONDS] [RATE|max]
# HAPWATCH_BIN=path runs another build of hapwatch (to compare two);
# LOADGEN_BIN another generator; LOADGEN_ARGS more of its flags;
# STORE_ARGS another store ("--config pg.toml": bench/postgres.sh).
set -eu
secs=${1:-60}
rate=${2:-max}
# A port of its own, so that two runs do not meet.
port=$((20000 + $$ % 20000))
dir=$(mktemp -d)
store=${STORE_ARGS:-"--db $dir/h.db"}
cargo build --release --quiet --bin hapwatch --example loadgen
bin=${HAPWATCH_BIN:-target/release/hapwatch}
# shellcheck disable=SC2086 # STORE_ARGS is split on purpose
HAPWATCH_LOG=info $bin serve $store --stats-interval 10s --http "" \
    --listen udp://127.0.0.1:$port 2>"$dir/serve.log" &
pid=$!
sleep 1
ticks=$(getconf CLK_TCK)
cpu0=$(awk '{print $14 + $15}' /proc/$pid/stat)
# shellcheck disable=SC2086 # LOADGEN_ARGS is split on purpose
${LOADGEN_BIN:-target/release/examples/loadgen} --to 127.0.0.1:$port --rate "$rate" --seconds "$secs" ${LOADGEN_ARGS:-}
sleep 2
cpu1=$(awk '{print $14 + $15}' /proc/$pid/stat)
grep VmHWM /proc/$pid/status
kill -TERM $pid
wait $pid
echo "hapwatch CPU: $(( (cpu1 - cpu0) * 100 / ticks / secs ))% of one core over ${secs}s"
grep ' totals ' "$dir/serve.log" | sed 's/.*totals //'
# shellcheck disable=SC2086
$bin stats $store --since 3650d --by host --json |
    sed 's/.*"requests":\([0-9]*\).*/counted into windows: \1/'
rm -rf "$dir"
