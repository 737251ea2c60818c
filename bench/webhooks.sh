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
# BENCH_PROVIDERS (default "stripe chargebee") runs the same for Chargebee: its events are stored
# at the Chargebee stand-in (tools/chargebee-standin.py), which Orgbase asks for each event
# before applying it (the re-fetch), and delivered with HTTP Basic; payment_failed, then
# payment_succeeded. BENCH_CHARGEBEE_ORGS (default 50000) organizations.
# Prints each run and the medians: events/s, those applied (answers that said
# "duplicate":false, a second), p50/p99, and for Chargebee the stand-in's share of a core (one
# Python process: near 100 % means it caps the rate; BENCH_STANDIN_GC, see below). Targets:
# p99 < 20 ms (Stripe, SQLite); Chargebee >= 1,000 events/s applied exactly once.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
ORGS=${BENCH_WEBHOOK_ORGS:-50000}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
SECRET=whsec_bench_0123456789
KEY=obk_webhook_bench_key_0123456789abcdef
PROVIDERS=${BENCH_PROVIDERS:-stripe chargebee}
CB_ORGS=${BENCH_CHARGEBEE_ORGS:-50000}
CB_AUTH="Basic $(printf 'bench:bench-hook-password' | base64)"
STANDIN_PID=

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
    [[ -n "$STANDIN_PID" ]] && kill "$STANDIN_PID" 2>/dev/null && wait "$STANDIN_PID" 2>/dev/null
    [[ -n "$WORKDIR" ]] && rm -rf "$WORKDIR"
    return 0
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wrk_run() { # endpoint
    BENCH_ENDPOINT=$1 BENCH_DB=sqlite BENCH_KEY= BENCH_WRK_THREADS=$THREADS \
        BENCH_HOOK_PATH="/api/billing/webhooks/$PROVIDER" \
        BENCH_HOOK_HEADER=$([[ $PROVIDER == stripe ]] && echo Stripe-Signature || echo Authorization) \
        BENCH_EVENTS_FILE="$WORKDIR/events.txt" BENCH_LUA_DIR="$ROOT/bench/lua" \
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s --latency \
        -s "$ROOT/bench/lua/webhook.lua" "http://127.0.0.1:$PORT" | grep '^RESULT'
}

field() { # line name
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

TICKS=$(getconf CLK_TCK)
cpu_ticks() { # pid: its user + system CPU so far, in clock ticks (0 when there is none)
    [[ -n "$1" && -r /proc/$1/stat ]] || { echo 0; return; }
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

for PROVIDER in $PROVIDERS; do
[[ $PROVIDER == stripe || $PROVIDER == chargebee ]] || die "BENCH_PROVIDERS: unknown provider $PROVIDER"
N=$([[ $PROVIDER == stripe ]] && echo "$ORGS" || echo "$CB_ORGS")
results=()
for run in $(seq 1 "$RUNS"); do
    WORKDIR=$(mktemp -d /tmp/orgbase-webhooks.XXXXXX)
    PORT=$(free_port)
    if [[ $PROVIDER == chargebee ]]; then
        CB_PORT=$(free_port)
        # The stand-in holds ~2 events per organization (about a million Python objects):
        # CPython's full (generation 2) collections then stop it for ~140 ms each, which became
        # the p99 of every delivery re-fetched meanwhile. Unless BENCH_STANDIN_GC=on, it runs
        # with those collections held off (younger generations are still collected); the
        # stand-in itself is unchanged.
        if [[ ${BENCH_STANDIN_GC:-off} == on ]]; then
            gc_setting=pass
        else
            gc_setting="import gc; gc.set_threshold(700, 10, 1000000)"
        fi
        python3 -c "$gc_setting; import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')" \
            "$ROOT/tools/chargebee-standin.py" "$CB_PORT" >"$WORKDIR/standin.log" 2>&1 &
        STANDIN_PID=$!
        for _ in $(seq 1 100); do
            curl -s -o /dev/null "http://127.0.0.1:$CB_PORT/_test/deliveries" && break
            sleep 0.1
        done
    fi
    (
        cd "$WORKDIR"
        export RUST_LOG=warn NO_COLOR=1 ORGBASE_BOOTSTRAP_KEY=$KEY \
            ORGBASE_STRIPE_SECRET_KEY=sk_test_bench ORGBASE_STRIPE_WEBHOOK_SECRET=$SECRET \
            ORGBASE_STRIPE_API_BASE=http://127.0.0.1:9
        if [[ $PROVIDER == chargebee ]]; then
            export ORGBASE_CHARGEBEE_SITE=bench-test ORGBASE_CHARGEBEE_API_KEY=test_bench \
                ORGBASE_CHARGEBEE_API_BASE=http://127.0.0.1:$CB_PORT \
                ORGBASE_CHARGEBEE_WEBHOOK_USERNAME=bench \
                ORGBASE_CHARGEBEE_WEBHOOK_PASSWORD=bench-hook-password
        fi
        exec "$BIN" serve --listen "127.0.0.1:$PORT" --database-url "sqlite://$WORKDIR/orgbase.db"
    ) >"$WORKDIR/server.out" 2>"$WORKDIR/server.err" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$WORKDIR/server.err"; die "the server did not start"; }

    python3 "$ROOT/bench/seed.py" --url "http://127.0.0.1:$PORT" --key "$KEY" --count "$N" \
        --out "$WORKDIR/ids.txt" >/dev/null || die "seeding failed"
    if [[ $PROVIDER == stripe ]]; then
        python3 "$ROOT/bench/webhooks.py" setup --url "http://127.0.0.1:$PORT" --key "$KEY" \
            --ids "$WORKDIR/ids.txt" --secret "$SECRET" --events "$WORKDIR/events.txt" || die "set-up failed"
        types=()
    else
        python3 "$ROOT/bench/webhooks.py" setup-chargebee --url "http://127.0.0.1:$PORT" \
            --ids "$WORKDIR/ids.txt" --standin "http://127.0.0.1:$CB_PORT" --auth "$CB_AUTH" \
            --events "$WORKDIR/events.txt" || { tail -5 "$WORKDIR/server.err"; die "set-up failed"; }
        types=(--paid-type payment_succeeded --failed-type payment_failed)
    fi

    # The stand-in's CPU during each pass (a core's share): near 100 % means it, one Python
    # process, is what caps the Chargebee rate, not Orgbase.
    t0=$(cpu_ticks "$STANDIN_PID")
    new=$(wrk_run webhook_new)
    t1=$(cpu_ticks "$STANDIN_PID")
    again=$(wrk_run webhook_redelivery)
    t2=$(cpu_ticks "$STANDIN_PID")
    cpu_new=$(( (t1 - t0) * 100 / TICKS / DURATION ))
    cpu_again=$(( (t2 - t1) * 100 / TICKS / DURATION ))
    fresh=$(( $(field "$new" fresh) + $(field "$again" fresh) ))
    # Applied: the answers that said "duplicate":false, a second (the events each applied once).
    applied=$(awk -v r="$(field "$new" rps)" -v f="$(field "$new" fresh)" -v n="$(field "$new" requests)" \
        'BEGIN { printf "%d", (n > 0 ? r * f / n : 0) }')
    check=$(python3 "$ROOT/bench/webhooks.py" check --db "$WORKDIR/orgbase.db" --orgs "$N" --fresh "$fresh" --in-flight $((2 * CONNECTIONS)) --provider "$PROVIDER" "${types[@]}") || true
    echo "$PROVIDER run $run: $new"
    echo "$PROVIDER run $run: $again"
    echo "$PROVIDER run $run: applied=$applied/s$([[ -n "$STANDIN_PID" ]] && echo " standin_cpu=$cpu_new%/$cpu_again% (new/redelivery passes) standin_rss=$(awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$STANDIN_PID/status")MB")"
    echo "$PROVIDER run $run: $check"
    [[ $check == "CHECK ok"* ]] || die "the exactly-once check failed in $PROVIDER run $run"
    results+=("$(field "$new" rps) $(field "$new" p99_ms) $(field "$again" rps) $(field "$again" p99_ms) $(field "$new" non2xx) $(field "$again" non2xx) $(field "$new" p50_ms) $(field "$again" p50_ms) $applied $cpu_new $cpu_again")

    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    if [[ -n "$STANDIN_PID" ]]; then kill "$STANDIN_PID"; wait "$STANDIN_PID" 2>/dev/null || true; STANDIN_PID=; fi
    rm -rf "$WORKDIR"; WORKDIR=
done
printf '%s\n' "${results[@]}" | PROVIDER=$PROVIDER N=$N DURATION=$DURATION python3 -c '
import os, statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = [statistics.median(c) for c in zip(*rows)]
provider = os.environ["PROVIDER"]
print(f"\nSUMMARY {provider} (SQLite, median of {len(rows)} runs, 32 connections):")
print(f"  new events:    {med[0]:,.0f} events/s ({med[8]:,.0f} applied/s), p50 {med[6]:.2f} ms, "
      f"p99 {med[1]:.1f} ms, non-2xx {int(med[4])}")
n, duration = int(os.environ["N"]), int(os.environ["DURATION"])
if med[8] * duration >= 0.99 * n:
    print(f"  (every one of the {n:,} events was applied before the pass ended: "
          "the applied rate is a lower bound; more organizations measure it)")
print(f"  redeliveries:  {med[2]:,.0f} events/s, p50 {med[7]:.2f} ms, p99 {med[3]:.1f} ms, "
      f"non-2xx {int(med[5])}")
if provider == "stripe":
    verdict = "PASS" if med[1] < 20 and med[3] < 20 else "FAIL"
    print(f"  target p99 < 20 ms: {verdict}; every event applied exactly once: PASS (checked each run)")
else:
    print(f"  the stand-in (one Python process) used {med[9]:.0f} % / {med[10]:.0f} % of a core "
          "(new / redelivery passes): each delivery costs it one GET /api/v2/events/{id}")
    verdict = "PASS" if med[8] >= 1000 else "FAIL"
    print(f"  target >= 1,000 events/s applied exactly once (each re-fetched from the stand-in): "
          f"{verdict}; every event applied exactly once: PASS (checked each run)")
    if med[8] < 1000 and med[9] >= 90:
        print("  NOTE: the stand-in was busy the whole pass: the rate is capped by the stand-in "
              "(a single Python process), not by Orgbase")
'
done
