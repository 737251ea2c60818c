#!/usr/bin/env bash
# The billing webhook benchmark: `bash bench/webhooks.sh`. See bench/README.md.
#
# Per run (BENCH_RUNS, default 3), on a fresh SQLite database: start a release build of
# `orgbase serve` with Stripe configured (a test key; no call reaches Stripe), seed
# BENCH_WEBHOOK_ORGS organizations (bench/seed.py), make each overdue with a customer (one signed
# invoice.payment_failed each, bench/webhooks.py setup), then drive
#   webhook_new:        BENCH_CONNECTIONS connections posting signed invoice.paid events, one per
#                       organization (a thread that runs out of its share starts it again:
#                       those are redeliveries, counted apart), for BENCH_DURATION seconds;
#   webhook_redelivery: the same events again, for BENCH_DURATION seconds: all redeliveries;
# and check in the database that every event was applied exactly once (bench/webhooks.py check).
# Prints each run and the medians. Target: p99 < 20 ms (SQLite).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
ORGS=${BENCH_WEBHOOK_ORGS:-50000}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
SECRET=whsec_bench_0123456789
KEY=obk_webhook_bench_key_0123456789abcdef

die() { echo "webhooks: $*" >&2; exit 1; }

if ! command -v wrk >/dev/null; then
    echo "webhooks: installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    command -v wrk >/dev/null || die "could not install wrk"
fi
BIN=${BENCH_BIN:-}
[[ -z "$BIN" || "$BIN" == /* ]] || BIN=$PWD/$BIN
if [[ -z "$BIN" ]]; then
    (cd "$ROOT" && cargo build --release -q -p orgbase) || die "the release build failed"
    BIN=$ROOT/target/release/orgbase
fi

SERVER_PID=
WORKDIR=
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [[ -n "$WORKDIR" ]] && rm -rf "$WORKDIR"
    return 0
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wrk_run() { # endpoint
    BENCH_ENDPOINT=$1 BENCH_DB=sqlite BENCH_KEY= BENCH_WRK_THREADS=$THREADS \
        BENCH_EVENTS_FILE="$WORKDIR/events.txt" BENCH_LUA_DIR="$ROOT/bench/lua" \
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s --latency \
        -s "$ROOT/bench/lua/webhook.lua" "http://127.0.0.1:$PORT" | grep '^RESULT'
}

field() { # line name
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

results=()
for run in $(seq 1 "$RUNS"); do
    WORKDIR=$(mktemp -d /tmp/orgbase-webhooks.XXXXXX)
    PORT=$(free_port)
    (
        cd "$WORKDIR"
        export RUST_LOG=warn NO_COLOR=1 ORGBASE_BOOTSTRAP_KEY=$KEY \
            ORGBASE_STRIPE_SECRET_KEY=sk_test_bench ORGBASE_STRIPE_WEBHOOK_SECRET=$SECRET \
            ORGBASE_STRIPE_API_BASE=http://127.0.0.1:9
        exec "$BIN" serve --listen "127.0.0.1:$PORT" --database-url "sqlite://$WORKDIR/orgbase.db"
    ) >"$WORKDIR/server.out" 2>"$WORKDIR/server.err" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$WORKDIR/server.err"; die "the server did not start"; }

    python3 "$ROOT/bench/seed.py" --url "http://127.0.0.1:$PORT" --key "$KEY" --count "$ORGS" \
        --out "$WORKDIR/ids.txt" >/dev/null || die "seeding failed"
    python3 "$ROOT/bench/webhooks.py" setup --url "http://127.0.0.1:$PORT" --key "$KEY" \
        --ids "$WORKDIR/ids.txt" --secret "$SECRET" --events "$WORKDIR/events.txt" || die "set-up failed"

    new=$(wrk_run webhook_new)
    again=$(wrk_run webhook_redelivery)
    fresh=$(( $(field "$new" fresh) + $(field "$again" fresh) ))
    check=$(python3 "$ROOT/bench/webhooks.py" check --db "$WORKDIR/orgbase.db" --orgs "$ORGS" --fresh "$fresh" --in-flight $((2 * CONNECTIONS))) || true
    echo "run $run: $new"
    echo "run $run: $again"
    echo "run $run: $check"
    [[ $check == "CHECK ok"* ]] || die "the exactly-once check failed in run $run"
    results+=("$(field "$new" rps) $(field "$new" p99_ms) $(field "$again" rps) $(field "$again" p99_ms) $(field "$new" non2xx) $(field "$again" non2xx)")

    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    rm -rf "$WORKDIR"; WORKDIR=
done

printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = [statistics.median(c) for c in zip(*rows)]
print(f"\nSUMMARY (SQLite, median of {len(rows)} runs, 32 connections):")
print(f"  new events:    {med[0]:,.0f} events/s, p99 {med[1]:.1f} ms, non-2xx {int(med[4])}")
print(f"  redeliveries:  {med[2]:,.0f} events/s, p99 {med[3]:.1f} ms, non-2xx {int(med[5])}")
verdict = "PASS" if med[1] < 20 and med[3] < 20 else "FAIL"
print(f"  target p99 < 20 ms: {verdict}; every event applied exactly once: PASS (checked each run)")
'
