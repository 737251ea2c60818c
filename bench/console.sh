#!/usr/bin/env bash
# The console's render-time benchmark: `bash bench/console.sh`. See bench/README.md.
#
# Per database (BENCH_DBS, default "sqlite"; "postgres" needs PostgreSQL on 127.0.0.1:5432), on a
# fresh database: start a release build of `orgbase serve`, seed BENCH_CONSOLE_ORGS (default
# 100000) organizations (bench/seed.py), then for each page, BENCH_RUNS (default 3) runs of
# BENCH_DURATION (default 10) seconds of wrk with BENCH_CONNECTIONS (default 4) connections,
# signed in with the platform key's console cookie:
#   list:    /console/organizations                     (the first 50, newest first)
#   search:  /console/organizations?q=Org%2012345        (name or slug contains it)
#   status:  /console/organizations?status=active&q=Org%209   (a filter and a search)
#   filter:  /console/organizations?metadata=region%3Deu   (a metadata filter that no seeded
#            organization matches)
#   org:     /console/organizations/{id}                (a random organization's page: details,
#                                                        access check, members, invitations,
#                                                        wallet, audit log)
# BENCH_CONSOLE_PAGES chooses among them (default: all). Prints each run and the medians of req/s, p50 and p99. Target: the list's p99 < 50 ms with
# 100,000 organizations. The latency is wrk's (request to answer, on this machine), so it
# includes the server's whole work for the page, not only rendering.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
ORGS=${BENCH_CONSOLE_ORGS:-100000}
CONNECTIONS=${BENCH_CONNECTIONS:-4}
DBS=${BENCH_DBS:-sqlite}
KEY=obk_console_bench_key_0123456789abcdef

die() { echo "console: $*" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } ||
    die "could not install wrk"
BIN=${BENCH_BIN:-}
[[ -z "$BIN" || "$BIN" == /* ]] || BIN=$PWD/$BIN
if [[ -z "$BIN" ]]; then
    (cd "$ROOT" && cargo build --release -q -p orgbase) || die "the release build failed"
    BIN=$ROOT/target/release/orgbase
fi

SERVER_PID= WORKDIR= PG_DB=
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [[ -n "$PG_DB" ]] && psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1
    [[ -n "$WORKDIR" ]] && rm -rf "$WORKDIR"
    return 0
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

declare -a SUMMARY=()
for db in $DBS; do
    WORKDIR=$(mktemp -d /tmp/console-bench.XXXXXX)
    case $db in
        sqlite) url="sqlite://orgbase.db" ;;
        postgres)
            PG_DB="orgbase_console_bench_$$"
            psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $PG_DB" || die "could not create $PG_DB"
            url="postgres://postgres@127.0.0.1:5432/$PG_DB" ;;
        *) die "unknown database $db (sqlite, postgres)" ;;
    esac
    port=$(free_port)
    (cd "$WORKDIR" && RUST_LOG=warn ORGBASE_BOOTSTRAP_KEY=$KEY ORGBASE_RATE_LIMITS=false \
        exec "$BIN" serve --listen "127.0.0.1:$port" --database-url "$url") \
        >"$WORKDIR/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
    echo "console: [$db] seeding $ORGS organizations"
    python3 "$ROOT/bench/seed.py" --url "http://127.0.0.1:$port" --key "$KEY" --count "$ORGS" \
        --threads 4 --out "$WORKDIR/ids.txt"
    # The planner's statistics, as autovacuum would gather them after a bulk load (this machine
    # runs PostgreSQL with autovacuum off; without them the search plans scan every row).
    if [[ $db == postgres ]]; then psql -h 127.0.0.1 -U postgres -d "$PG_DB" -qc ANALYZE; fi
    # Signed in, the list answers 200 with its table (a cookie refused would answer 303).
    check=$(curl -s -o "$WORKDIR/page.html" -w '%{http_code}' -H "Cookie: orgbase_console=$KEY" \
        "http://127.0.0.1:$port/console/organizations")
    [[ $check == 200 ]] && grep -q "Bench Org" "$WORKDIR/page.html" ||
        die "[$db] the console's list answered $check without the seeded organizations"
    for page in ${BENCH_CONSOLE_PAGES:-list search status filter org}; do
        case $page in
            list) path="/console/organizations" ;;
            search) path="/console/organizations?q=Org%2012345" ;;
            status) path="/console/organizations?status=active&q=Org%209" ;;
            filter) path="/console/organizations?metadata=region%3Deu" ;;
            org) path="/console/organizations/{id}" ;;
        esac
        results=()
        for run in $(seq 1 "$RUNS"); do
            line=$(BENCH_KEY=$KEY BENCH_PATH=$path BENCH_PAGE=$page BENCH_IDS_FILE=$WORKDIR/ids.txt \
                wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s "$ROOT/bench/lua/console.lua" \
                "http://127.0.0.1:$port" | grep '^RESULT')
            echo "console: [$db] run $run: $line"
            [[ $line == *" non2xx=0 errors=0"* ]] || die "[$db] $page: some requests failed: $line"
            results+=("$line")
        done
        field() { printf '%s\n' "${results[@]}" | sed -E "s/.* $1=([0-9.]+).*/\1/" | median; }
        SUMMARY+=("$(printf '%-8s %-7s %10s req/s  p50 %7s ms  p99 %7s ms' "$db" "$page" \
            "$(field rps)" "$(field p50_ms)" "$(field p99_ms)")")
    done
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    rm -rf "$WORKDIR"; WORKDIR=
    if [[ -n "$PG_DB" ]]; then
        psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null; PG_DB=
    fi
done
echo
echo "console: medians of $RUNS run(s) of ${DURATION}s, $CONNECTIONS connections, $ORGS organizations"
printf '%s\n' "${SUMMARY[@]}"
