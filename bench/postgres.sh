#!/usr/bin/env bash
# PostgreSQL figures on this box: replay into SQLite and into PostgreSQL, and
# UDP ingest into PostgreSQL at fixed rates (scripts/loadtest.sh), with the
# database on the same two cores. A throwaway cluster with Debian's defaults
# (fsync on): a real durability cost, not the tests' fsync=off.
# Usage: bench/postgres.sh [LINES] [SECONDS] ["RATE …"]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-2000000}; secs=${2:-10}; rates=${3:-"50000 100000"}
work=$(mktemp -d)
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() {
    if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --clear-groups "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$work"
as_pg "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
as_pg "$bindir/pg_ctl" -D "$work/data" -l "$work/pg.log" -w start \
    -o "-k $work -c listen_addresses= -c max_connections=50" >/dev/null
trap 'as_pg "$bindir/pg_ctl" -D "$work/data" -m fast stop >/dev/null; rm -rf "$work"' EXIT
psql() { "$bindir/psql" -h "$work" -U postgres -tAq "$@"; }
config() { # a database and a config naming it
    psql -d postgres -c "CREATE DATABASE $1"
    printf '[storage]\npostgres = "host=%s user=postgres dbname=%s"\n[http]\nlisten = ""\n' \
        "$work" "$1" >"$work/$1.toml"
    echo "$work/$1.toml"
}
cargo build --release --quiet --bin hapwatch --example loadgen
bin=target/release/hapwatch
echo "| measure | figure | conditions |"
echo "|---|---|---|"
target/release/examples/loadgen --file "$work/haproxy.log" --lines "$lines" >/dev/null
rate() { sed 's/.*(\([0-9]*\) lines\/s).*/\1/'; }
sqlite=$($bin replay --db "$work/replay.db" "$work/haproxy.log" 2>/dev/null | rate)
echo "| replay into SQLite | $((sqlite / 1000))k lines/s | $lines lines |"
cfg=$(config replay)
pg=$($bin replay --config "$cfg" "$work/haproxy.log" 2>/dev/null | rate)
echo "| replay into PostgreSQL | $((pg / 1000))k lines/s | $lines lines, same file |"
# Every line its own window: bound by inserts, not parsing.
target/release/examples/loadgen --history "$work/history.log" --days 30 --servers 20 >/dev/null
hlines=$(wc -l <"$work/history.log")
t0=$(date +%s.%N); $bin replay --db "$work/history.db" "$work/history.log" >/dev/null 2>&1; t1=$(date +%s.%N)
echo "| replay of a 30-day history (every line a window) into SQLite | $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s | $hlines lines |"
cfg=$(config history)
t0=$(date +%s.%N); $bin replay --config "$cfg" "$work/history.log" >/dev/null 2>&1; t1=$(date +%s.%N)
size=$(psql -d postgres -c "SELECT pg_database_size('history') / 1024 / 1024")
echo "| the same into PostgreSQL | $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s | database ${size} MiB |"
for r in $rates; do
    cfg=$(config "udp_$r")
    out=$(STORE_ARGS="--config $cfg" scripts/loadtest.sh "$secs" "$r" 2>&1)
    sent=$(sed -n 's/^sent \([0-9]*\) datagrams.*/\1/p' <<<"$out")
    counted=$(sed -n 's/^counted into windows: \([0-9]*\)/\1/p' <<<"$out")
    cpu=$(sed -n 's/^hapwatch CPU: \([0-9]*\)%.*/\1/p' <<<"$out")
    size=$(psql -d postgres -c "SELECT pg_database_size('udp_$r') / 1024 / 1024")
    echo "| UDP ingest into PostgreSQL at $r/s | $counted of $sent counted, hapwatch at $cpu % of a core | ${secs} s, database ${size} MiB after |"
done
# An HA pair: two nodes on the one database, every datagram sent to both.
psql -d postgres -c "CREATE DATABASE pair"
pids=""; ports=""
for n in a b; do
    printf '[storage]\npostgres = "host=%s user=postgres dbname=pair"\npath = "%s/%s.db"\n[http]\nlisten = ""\n[cluster]\nnode = "%s"\n' \
        "$work" "$work" "$n" "$n" >"$work/pair_$n.toml"
    port=$((21000 + RANDOM % 20000))
    $bin serve --config "$work/pair_$n.toml" --listen "udp://127.0.0.1:$port" 2>"$work/pair_$n.log" &
    pids="$pids $!"; ports="$ports --to 127.0.0.1:$port"
done
sleep 2
cpu() { for p in $pids; do awk '{print $14 + $15}' "/proc/$p/stat"; done | paste -sd' '; }
c0=$(cpu)
# shellcheck disable=SC2086 # two --to flags
sent=$(target/release/examples/loadgen $ports --rate 100000 --seconds "$secs" | sed -n 's/^sent \([0-9]*\) datagrams.*/\1/p')
sleep 2
c1=$(cpu)
# shellcheck disable=SC2086
kill -TERM $pids; wait $pids 2>/dev/null || true
counted=$($bin stats --config "$work/pair_a.toml" --since 3650d --by host --json | sed 's/.*"requests":\([0-9]*\).*/\1/')
ticks=$(getconf CLK_TCK)
loads=$(awk -v a="$c0" -v b="$c1" -v t="$ticks" -v s="$secs" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%d %% and %d %%", (y[1]-x[1])*100/t/s, (y[2]-x[2])*100/t/s}')
echo "| UDP ingest of an HA pair into one PostgreSQL at 100000/s each | $counted of $sent counted once, the nodes at $loads of a core | ${secs} s, every datagram to both nodes |"
cfg=$(config latency)
cargo build --release --quiet --example alert_latency
lat=$(HAPWATCH_STORAGE="$(sed -n 's/^postgres = /postgres = /p' "$cfg")" \
    target/release/examples/alert_latency 1000 2>&1 | grep -E 'p50|p99' | tr '\n' ' ')
echo "| datagram → webhook received, on PostgreSQL | $lat | 1,000 DOWN events, group_wait 0s |"
