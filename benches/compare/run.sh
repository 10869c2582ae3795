#!/usr/bin/env bash
# Runs the runtime workloads of docs/benchmarks.md (spawn, ping-pong, ring, fan-in, restart)
# on baobab, Erlang/OTP, ractor, kameo and actix, each run in a fresh OS process, and prints
# one table of medians (ns per operation; bytes per process for spawn). RUNS (default 3) runs
# per cell. Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-3}

cargo build --release --quiet
bin=./target/release/baobab-compare

# Sizes per framework: 1M spawns for baobab and Erlang, 100k for the other Rust peers; the
# rest the same for all.
export RING_SIZE=10000 RING_LAPS=${RING_LAPS:-100} FANIN_SENDERS=1000 FANIN_MESSAGES=1000
spawn_n() { case $1 in baobab|erlang) echo 1000000 ;; *) echo 100000 ;; esac; }
pingpong_n() { case $1 in baobab|erlang|actix) echo 500000 ;; *) echo 200000 ;; esac; }

run_once() { # framework workload -> "ns [bytes]"
    local f=$1 w=$2
    if [ "$f" = erlang ]; then
        SPAWN_N=$(spawn_n "$f") PINGPONG_N=$(pingpong_n "$f") escript erlang/bench.escript "$w"
    else
        SPAWN_N=$(spawn_n "$f") PINGPONG_N=$(pingpong_n "$f") "$bin" "$f" "$w"
    fi
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

frameworks="baobab erlang ractor kameo actix"
workloads="spawn ping-pong ring fan-in restart"
echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $RUNS runs each, median; versions: $(escript erlang/bench.escript 2>/dev/null; erl -noshell -eval 'io:format("OTP ~s", [erlang:system_info(otp_release)]), halt().'), ractor 0.16.5, kameo 0.22.2, actix 0.13.5"
printf '%-10s' workload
for f in $frameworks; do printf '%18s' "$f"; done
echo
for w in $workloads; do
    printf '%-10s' "$w"
    for f in $frameworks; do
        # Restart needs a supervisor: baobab's, kameo's own, and a respawning ractor actor.
        if [ "$w" = restart ] && { [ "$f" = erlang ] || [ "$f" = actix ]; }; then
            printf '%18s' "—"
            continue
        fi
        results=$(for _ in $(seq "$RUNS"); do run_once "$f" "$w" | tail -1; done)
        ns=$(echo "$results" | awk '{ print $1 }' | median)
        if [ "$w" = spawn ]; then
            bytes=$(echo "$results" | awk '{ print $2 }' | median)
            printf '%18s' "$(printf '%.0f ns %.0f B' "$ns" "$bytes")"
        else
            printf '%18s' "$(printf '%.0f ns' "$ns")"
        fi
    done
    echo
done
echo "# spawn: ns per spawn and resident bytes per idle process (Erlang: erlang:memory(processes));"
echo "#   1M processes for baobab and Erlang, 100k for ractor, kameo and actix"
echo "# ping-pong: request/reply round trip through each framework's call/ask (Erlang: send + receive)"
echo "# ring: ns per hop, 10k processes x $RING_LAPS laps; fan-in: ns per message, 1000 senders x 1000 messages"
echo "# restart: a supervised child panics, ns until the restarted child answers a call/ask, 20,000 times"
