#!/usr/bin/env bash
# Instructions a request, counted by valgrind's callgrind: repeatable for the same binary and
# inputs whatever else the machine does, where req/s on a shared two-core machine drift by a
# third within minutes. Use it to compare two builds' CPU on one path; use bench/run.sh and
# bench/side-by-side.sh for throughput.
#
#   bash bench/instructions.sh [BIN]      (default: target/release/orgbase, built if absent)
#
# Starts BIN under callgrind with one HTTP thread (ORGBASE_HTTP_THREADS=1) on a fresh database
# (BENCH_DB=postgres, the default: orgbase_instructions at 127.0.0.1:5432; or sqlite), seeds
# SEED organizations (default 500), and for each endpoint of ENDPOINTS (default "healthz access
# get_org") sends every seeded id once (warming the caches), zeroes the counters, sends N
# requests (default 4000) over C connections (default 4) with bench/instructions.py and dumps
# the counters. Prints the instructions a request of each. Valgrind has no SHA extensions, so
# hashing a key costs more here than on a CPU with them (some 3,000 instructions a request).
# Needs valgrind, python3, curl, and psql for PostgreSQL.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release/orgbase}
DB=${BENCH_DB:-postgres}
SEED=${SEED:-500} N=${N:-4000} C=${C:-4}
ENDPOINTS=${ENDPOINTS:-healthz access get_org}
if [[ ! -x "$BIN" ]]; then
    (cd "$ROOT" && cargo build --release -p orgbase)
fi
command -v valgrind >/dev/null || { echo "instructions: valgrind is not installed" >&2; exit 1; }
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KEY=obk_instructions_$(date +%s)_abcdefghijklmnopqrstuvwxyz0123
PG="psql -h 127.0.0.1 -U postgres -d test -q"
if [[ $DB == postgres ]]; then
    $PG -c "DROP DATABASE IF EXISTS orgbase_instructions" -c "CREATE DATABASE orgbase_instructions" 2>/dev/null
    URL=postgres://postgres@127.0.0.1:5432/orgbase_instructions
else
    URL=sqlite://$WORK/orgbase.db
fi
while read -r v; do unset "$v"; done < <(compgen -e | grep '^ORGBASE_' || true)
(
    cd "$WORK"
    export RUST_LOG=warn NO_COLOR=1 ORGBASE_BOOTSTRAP_KEY=$KEY ORGBASE_HTTP_THREADS=1
    exec valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
        "$BIN" serve --listen "127.0.0.1:$PORT" --database-url "$URL"
) >"$WORK/server.out" 2>"$WORK/server.err" &
VG=$!
cleanup() {
    kill "$VG" 2>/dev/null || true
    wait "$VG" 2>/dev/null || true
    [[ $DB == postgres ]] && $PG -c "DROP DATABASE IF EXISTS orgbase_instructions" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 240); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    kill -0 "$VG" 2>/dev/null || { echo "instructions: the server exited" >&2; tail -20 "$WORK/server.err" >&2; exit 1; }
    sleep 0.5
done
python3 "$ROOT/bench/seed.py" --url "http://127.0.0.1:$PORT" --key "$KEY" --count "$SEED" \
    --out "$WORK/ids.txt" --threads 4 >/dev/null
drive() { python3 "$ROOT/bench/instructions.py" --port "$PORT" --key "$KEY" --ids "$WORK/ids.txt" "$@"; }
echo "instructions a request ($(basename "$BIN"), $DB, one HTTP thread, $N requests over $C connections):"
for ep in $ENDPOINTS; do
    # Warm: enough random picks that nearly every seeded id has been asked once.
    drive --endpoint "$ep" -n $((SEED * 6)) -c "$C"
    callgrind_control -z "$VG" >/dev/null 2>&1
    drive --endpoint "$ep" -n "$N" -c "$C"
    callgrind_control -d "$ep" "$VG" >/dev/null 2>&1
    total=$(grep -h "^totals:" "$WORK"/cg.out.* | tail -1 | awk '{print $2}')
    rm -f "$WORK"/cg.out.*
    printf '  %-8s %8d\n' "$ep" $((total / N))
done
