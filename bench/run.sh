#!/usr/bin/env bash
# Orgbase HTTP benchmark. Run from anywhere: `bash bench/run.sh`. See bench/README.md.
#
# For each database (BENCH_DBS, default "sqlite sqlite-pool postgres"): start a release build of
# `orgbase serve` on a free 127.0.0.1 port in a fresh temp dir, then, per scenario
# (BENCH_SCENARIOS, default "orgs people compat wallet"):
#   orgs:   seed BENCH_SEED_COUNT organizations (bench/seed.py); drive GET /healthz,
#           GET/PATCH /api/organizations/{id}, GET .../{id}/access?channel=voice (the access
#           check) and POST /api/organizations.
#   people: fill one organization with BENCH_MEMBERS members by SQL and make one person who can
#           log in (bench/people.py); drive GET .../members?page=1 and ?page=5000 (per_page=15),
#           and POST /api/auth/login at BENCH_CONNECTIONS and at BENCH_LOGIN_LOW_CONNECTIONS.
#   compat: through the API, a partner organization, a partner key and BENCH_CHILDREN children
#           made with that key (bench/compat.py); drive POST /api/v2/updateOrganization (three
#           settings, the partner key as token) and PATCH /v1/orgs/{id}/properties (authorization
#           without Bearer), each request on the next child.
#   wallet: through the API, one organization topped up enough for the whole run, one checked
#           charge (bench/wallet.py setup); drive POST /api/admin/organizations/{id}/charge (1 minor
#           unit, each request its own Idempotency-Key) on that one organization, and after each
#           wrk run check that the balance equals the ledger's sum and the ledger holds a charge for
#           each 2xx answer (bench/wallet.py check).
#   webhooks: the orgs scenario's seeded organizations, a receiver (bench/hooks_receiver.py) and
#           one platform webhook endpoint pointing at it, enabled only for this scenario's runs;
#           drive PATCH /api/organizations/{id} as patch_org does, with the endpoint subscribed:
#           hooked_patch (as fast as it goes: compare its req/s with patch_org's; the rate the
#           receiver got the events at over the whole run, delivery_rate, and over the backlog's
#           drain once the writes stopped, drain_rate) and hooked_paced
#           (BENCH_HOOKS_RATE changes a second, steady: the lag from each change to its receipt,
#           p50 and p99). Each run waits for every event to arrive before the next.
#   avatars: fixtures and one organization, through the API (bench/avatars.py setup): a 1200 x 850
#           JPEG and a PNG decompression bomb (50000 x 50000 declared), each a prebuilt multipart
#           body, one checked upload of each and one checked GET of the stored avatar; drive
#           POST /api/organizations/{id}/upload-avatar with the JPEG (avatar_upload) and with the
#           bomb (avatar_bomb: every answer must be a 422, else the run fails loudly), and
#           GET /avatars/{org}/{hash}-512.jpg from disk (avatar_get). The server's VmRSS is
#           sampled every 100 ms during each run on an avatar endpoint (bench/avatars.py rss).
#   limits: not on the server above but on one server per rate limiter (BENCH_LIMITERS, default
#           "off memory redis"; each started after the other scenarios' server stopped, with
#           ORGBASE_RATE_LIMITS=false, nothing, or ORGBASE_REDIS_URL=redis://127.0.0.1:6379), set
#           up through the API: one organization whose rateLimit is the most allowed (100,000 a
#           second: never refused, so what is measured is the limiter's cost) and a viewer key of
#           it; one checked GET (200, RateLimit header present unless off); drive
#           GET /api/organizations/{id} of that one organization with its key (one hot bucket),
#           reported as get_org_key_off, get_org_key_memory, get_org_key_redis. In redis mode,
#           Redis must answer `redis-cli -h 127.0.0.1 ping` first.
# wrk runs BENCH_CONNECTIONS connections, BENCH_THREADS threads, BENCH_DURATION seconds,
# BENCH_RUNS runs per endpoint; bench/summarize.py reports medians against the targets.
# Everything printed also goes to bench/results/latest.txt.
#
# Knobs (environment):
#   BENCH_DURATION=10     seconds per wrk run
#   BENCH_RUNS=3          runs per (database, endpoint); the summary takes the median
#   BENCH_DBS="sqlite sqlite-pool postgres"   which databases (space or comma separated)
#   BENCH_WARMUP=2        seconds of unrecorded warm-up per endpoint per database (0 = none)
#   BENCH_SEED_COUNT=10000, BENCH_SEED_THREADS=8
#   BENCH_CONNECTIONS=32, BENCH_THREADS=2
#   BENCH_SCENARIOS="orgs people compat wallet"   which scenarios (space or comma separated; also
#                         avatars, webhooks and limits, not in the default set)
#   BENCH_MEMBERS=100000  members of the people scenario's organization
#   BENCH_LOGIN_LOW_CONNECTIONS=4   connections of the second login run, login_low (0 = skip it)
#   BENCH_CHILDREN=1000   the compat scenario's partner's children (the requests take turns on them)
#   BENCH_PACED=0.5       after each run of a compat endpoint, a paced run of it at this fraction
#                         of the req/s the run reached (same connections; bench/lua/common.lua
#                         spaces the requests evenly), reported as <endpoint>_paced (0 = none)
#   BENCH_WALLET_LEDGER=sql   how the wallet check reads the ledger: sql (the server's database) or
#                         api (GET .../wallet/transactions, 100 entries a request: slow)
#   BENCH_BIN=PATH        use this orgbase binary instead of `cargo build --release -p orgbase`
#   BENCH_HTTP_THREADS=N  start the server with ORGBASE_HTTP_THREADS=N (one single-threaded runtime
#                         per thread, docs/deploying.md#threads); unset: the default shared runtime
#   BENCH_HOOKS_RATE=1000 changes a second of the webhooks scenario's paced run
#   BENCH_LIMITERS="off memory redis"   the limits scenario's rate limiters, a server each, in this
#                         order (space or comma separated; the summary compares memory and redis
#                         with off, so keep off)
#   BENCH_STRICT=1        exit 1 when a gating target fails (default: report only, exit 0)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR=$ROOT/bench/results
mkdir -p "$RESULTS_DIR"

# Re-run ourselves with all output copied to bench/results/latest.txt. `tee -i` ignores Ctrl-C
# so the cleanup messages of the inner run still reach the file.
if [[ -z "${_ORGBASE_BENCH_INNER:-}" ]]; then
    export _ORGBASE_BENCH_INNER=1
    set +e
    bash "$ROOT/bench/run.sh" "$@" 2>&1 | tee -i "$RESULTS_DIR/latest.txt"
    rc=${PIPESTATUS[0]}
    exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# Configuration

DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
DBS=${BENCH_DBS:-sqlite sqlite-pool postgres}
DBS=${DBS//,/ }
WARMUP=${BENCH_WARMUP:-2}
SEED_COUNT=${BENCH_SEED_COUNT:-10000}
SEED_THREADS=${BENCH_SEED_THREADS:-8}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
STRICT=${BENCH_STRICT:-0}
SCENARIOS=${BENCH_SCENARIOS:-orgs people compat wallet}
SCENARIOS=${SCENARIOS//,/ }
MEMBERS=${BENCH_MEMBERS:-100000}
LOGIN_LOW_CONNECTIONS=${BENCH_LOGIN_LOW_CONNECTIONS:-4}
CHILDREN=${BENCH_CHILDREN:-1000}
WALLET_LEDGER=${BENCH_WALLET_LEDGER:-sql}
PACED=${BENCH_PACED:-0.5}
READY_TIMEOUT=20
PG_PSQL=(psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1)

die() {
    echo "bench: ERROR: $*" >&2
    exit 1
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$DURATION" && ((DURATION >= 1)) || die "BENCH_DURATION must be a whole number of seconds >= 1 (got '$DURATION')"
is_uint "$RUNS" && ((RUNS >= 1)) || die "BENCH_RUNS must be >= 1 (got '$RUNS')"
is_uint "$WARMUP" || die "BENCH_WARMUP must be a whole number of seconds (got '$WARMUP')"
is_uint "$SEED_COUNT" && ((SEED_COUNT >= 1)) || die "BENCH_SEED_COUNT must be >= 1 (got '$SEED_COUNT')"
is_uint "$SEED_THREADS" && ((SEED_THREADS >= 1)) || die "BENCH_SEED_THREADS must be >= 1 (got '$SEED_THREADS')"
is_uint "$CONNECTIONS" && ((CONNECTIONS >= 1)) || die "BENCH_CONNECTIONS must be >= 1 (got '$CONNECTIONS')"
is_uint "$THREADS" && ((THREADS >= 1 && THREADS <= CONNECTIONS)) ||
    die "BENCH_THREADS must be between 1 and BENCH_CONNECTIONS (got '$THREADS')"
for db in $DBS; do
    case $db in
        sqlite | sqlite-pool | postgres) ;;
        *) die "BENCH_DBS: unknown database '$db' (use sqlite, sqlite-pool, postgres)" ;;
    esac
done
[[ -n "${DBS// /}" ]] || die "BENCH_DBS selects no database"
is_uint "$MEMBERS" && ((MEMBERS >= 1)) || die "BENCH_MEMBERS must be >= 1 (got '$MEMBERS')"
is_uint "$LOGIN_LOW_CONNECTIONS" ||
    die "BENCH_LOGIN_LOW_CONNECTIONS must be a whole number (got '$LOGIN_LOW_CONNECTIONS'; 0 = skip login_low)"
is_uint "$CHILDREN" && ((CHILDREN >= 2)) || die "BENCH_CHILDREN must be >= 2 (got '$CHILDREN')"
[[ $PACED =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || die "BENCH_PACED must be a fraction from 0 to 1 (got '$PACED'; 0 = no paced runs)"
[[ $WALLET_LEDGER == sql || $WALLET_LEDGER == api ]] || die "BENCH_WALLET_LEDGER must be sql or api (got '$WALLET_LEDGER')"
ORGS=0 PEOPLE=0 COMPAT=0 WALLET=0 AVATARS=0 WEBHOOKS=0 LIMITS=0
for sc in $SCENARIOS; do
    case $sc in
        orgs) ORGS=1 ;;
        people) PEOPLE=1 ;;
        compat) COMPAT=1 ;;
        wallet) WALLET=1 ;;
        avatars) AVATARS=1 ;;
        webhooks) WEBHOOKS=1 ;;
        limits) LIMITS=1 ;;
        *) die "BENCH_SCENARIOS: unknown scenario '$sc' (use orgs, people, compat, wallet, avatars, webhooks, limits)" ;;
    esac
done
((ORGS + PEOPLE + COMPAT + WALLET + AVATARS + WEBHOOKS + LIMITS > 0)) || die "BENCH_SCENARIOS selects no scenario"
HOOKS_RATE=${BENCH_HOOKS_RATE:-1000}
is_uint "$HOOKS_RATE" && ((HOOKS_RATE >= 1)) || die "BENCH_HOOKS_RATE must be >= 1 (got '$HOOKS_RATE')"
# The limits scenario: one server per rate limiter. off: ORGBASE_RATE_LIMITS=false; memory: the
# default (limits on, buckets in the server's memory); redis: buckets in this machine's Redis.
LIMITERS=${BENCH_LIMITERS:-off memory redis}
LIMITERS=${LIMITERS//,/ }
LIMITS_REDIS=0
if ((LIMITS)); then
    [[ -n "${LIMITERS// /}" ]] || die "BENCH_LIMITERS selects no rate limiter (use off, memory, redis)"
    for lm in $LIMITERS; do
        case $lm in
            off | memory) ;;
            redis) LIMITS_REDIS=1 ;;
            *) die "BENCH_LIMITERS: unknown rate limiter '$lm' (use off, memory, redis)" ;;
        esac
    done
fi
LIMITS_REDIS_HOST=127.0.0.1 LIMITS_REDIS_PORT=6379
LIMITS_REDIS_URL=redis://$LIMITS_REDIS_HOST:$LIMITS_REDIS_PORT
# The organization's own rateLimit: the most the API allows (a burst of twice that), far above
# what wrk reaches on this machine, so that no request is refused.
LIMITS_RATE=100000
# The endpoints, in the order each run takes them. Login comes last: it is CPU-bound (argon2),
# and each login run is followed by a drain (see drain_logins). The limits scenario's endpoint is
# not here: it runs on servers of its own (bench_limits).
ENDPOINTS=()
if ((ORGS)); then ENDPOINTS+=(healthz get_org access patch_org post_org); fi
if ((PEOPLE)); then ENDPOINTS+=(members_p1 members_p5000); fi
if ((COMPAT)); then ENDPOINTS+=(v2_update_org v1_properties); fi
if ((WALLET)); then ENDPOINTS+=(charge); fi
# The bomb first: its run's RSS then starts from what the previous run's uploads left.
if ((AVATARS)); then ENDPOINTS+=(avatar_bomb avatar_upload avatar_get); fi
# Without the orgs scenario, patch_org runs here too: the baseline of hooked_patch.
if ((WEBHOOKS)); then
    ((ORGS)) || ENDPOINTS+=(patch_org)
    ENDPOINTS+=(hooked_patch hooked_paced)
fi
if ((PEOPLE)); then
    if ((LOGIN_LOW_CONNECTIONS > 0)); then ENDPOINTS+=(login_low); fi
    ENDPOINTS+=(login)
fi

# Settings from the caller's environment or an orgbase.toml must not leak into the servers.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^ORGBASE_' || true)

command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"

# The limits scenario's redis mode measures this machine's Redis: it must answer, checked before
# anything is measured (so a long run does not fail at its end) and again before that server starts.
check_redis() {
    local pong
    command -v redis-cli >/dev/null ||
        die "the limits scenario's redis mode needs redis-cli (apt-get install redis-tools) to check Redis on $LIMITS_REDIS_HOST:$LIMITS_REDIS_PORT (or leave redis out of BENCH_LIMITERS)"
    pong=$(timeout 5 redis-cli -h "$LIMITS_REDIS_HOST" -p "$LIMITS_REDIS_PORT" ping 2>&1) || true
    [[ $pong == PONG ]] ||
        die "the limits scenario's redis mode needs Redis on $LIMITS_REDIS_HOST:$LIMITS_REDIS_PORT, but \`redis-cli -h $LIMITS_REDIS_HOST -p $LIMITS_REDIS_PORT ping\` answered '${pong:-nothing}', not PONG (start Redis, or leave redis out of BENCH_LIMITERS)"
}
if ((LIMITS && LIMITS_REDIS)); then check_redis; fi

# ---------------------------------------------------------------------------------------------
# State and cleanup

SERVER_PID=""
CHILD_PID=""
RSS_PID=""
WORKDIR=""
PG_DB=""
TMPDIRS=()
RAW=""

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench: server $SERVER_PID did not stop within 10 s of SIGTERM; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

drop_pg_db() {
    [[ -n "$PG_DB" ]] || return 0
    # WITH (FORCE) needs PostgreSQL 13+; fall back to a plain DROP.
    "${PG_PSQL[@]}" -d test -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 ||
        "${PG_PSQL[@]}" -d test -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 ||
        echo "bench: warning: could not drop database $PG_DB" >&2
    PG_DB=""
}

cleanup() {
    local rc=$?
    set +e
    if [[ -n "$CHILD_PID" ]]; then
        kill -TERM "$CHILD_PID" 2>/dev/null
        wait "$CHILD_PID" 2>/dev/null
    fi
    if [[ -n "$RSS_PID" ]]; then
        kill -TERM "$RSS_PID" 2>/dev/null
        wait "$RSS_PID" 2>/dev/null
    fi
    stop_server
    stop_receiver
    drop_pg_db
    for d in ${TMPDIRS[@]+"${TMPDIRS[@]}"}; do
        [[ -n "$d" && -d "$d" ]] && rm -rf -- "$d"
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench: interrupted; cleaning up" >&2; exit 130' INT
trap 'echo "bench: terminated; cleaning up" >&2; exit 143' TERM

# Sets NEW_TMPDIR (not echoed: a $(...) subshell would lose the TMPDIRS entry).
new_tmpdir() {
    NEW_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/orgbase-bench.XXXXXX")
    TMPDIRS+=("$NEW_TMPDIR")
}

strip_ansi() { sed 's/\x1b\[[0-9;]*[A-Za-z]//g'; }

# The first panic, if any, and the count: one panic can poison state and fail all later requests.
server_panics() {
    local f=$WORKDIR/server.err n
    n=$(grep -c 'panicked at' "$f" || true)
    if ((n > 0)); then
        echo "bench: the server panicked $n time(s); the first:"
        grep -m1 -A1 'panicked at' "$f" | strip_ansi | sed 's/^/    ! /'
    fi
}

server_tail() {
    if [[ -n "$WORKDIR" && -s "$WORKDIR/server.err" ]]; then
        server_panics >&2
        echo "---- server stderr (last 40 lines) ----" >&2
        tail -n 40 "$WORKDIR/server.err" | strip_ansi >&2
        echo "---------------------------------------" >&2
    else
        echo "(the server wrote nothing to stderr)" >&2
    fi
}

# ---------------------------------------------------------------------------------------------
# Tools and binary

if ! command -v wrk >/dev/null; then
    echo "bench: installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    command -v wrk >/dev/null || die "could not install wrk"
fi

if [[ -n "${BENCH_BIN:-}" ]]; then
    SRC_BIN=$BENCH_BIN
    echo "bench: using BENCH_BIN=$SRC_BIN (no build)"
else
    echo "bench: cargo build --release -p orgbase"
    (cd "$ROOT" && cargo build --release -p orgbase)
    SRC_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/orgbase
fi
[[ -x "$SRC_BIN" ]] || die "no executable orgbase binary at $SRC_BIN"
# Run a private copy so a concurrent build cannot replace the binary mid-benchmark.
new_tmpdir
BINDIR=$NEW_TMPDIR
BIN=$BINDIR/orgbase
cp "$SRC_BIN" "$BIN"

KEY="obk_bench_$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
RAW=$BINDIR/results.raw
: >"$RAW"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------------------------------------
# Server

start_server() { # db [limiter: off|memory|redis, the limits scenario's; none = the default, memory]
    local db=$1 limiter=${2:-} url mode=""
    new_tmpdir
    WORKDIR=$NEW_TMPDIR
    PORT=$(free_port)
    case $db in
        sqlite) url="sqlite://orgbase.db" mode=group ;;
        sqlite-pool) url="sqlite://orgbase.db" mode=pool ;;
        postgres)
            PG_DB="orgbase_bench_$$_$RANDOM"
            "${PG_PSQL[@]}" -d test -c "CREATE DATABASE $PG_DB" >/dev/null || {
                PG_DB=""
                die "could not create PostgreSQL database"
            }
            url="postgres://postgres@127.0.0.1:5432/$PG_DB"
            ;;
    esac
    local limits_env=""
    case $limiter in
        off) limits_env="ORGBASE_RATE_LIMITS=false" ;;
        redis) limits_env="ORGBASE_REDIS_URL=$LIMITS_REDIS_URL" ;;
    esac
    echo "bench: [$db] starting server on 127.0.0.1:$PORT (database $url${mode:+, ORGBASE_SQLITE_WRITE_MODE=$mode}${limiter:+, rate limiter $limiter}${limits_env:+: $limits_env}${BENCH_HTTP_THREADS:+, ORGBASE_HTTP_THREADS=$BENCH_HTTP_THREADS}) in $WORKDIR"
    (
        cd "$WORKDIR"
        # Backtraces would flood the log (and slow the server) if a handler panics per request.
        export RUST_LOG=warn RUST_BACKTRACE=0 NO_COLOR=1 ORGBASE_BOOTSTRAP_KEY="$KEY"
        # The webhooks scenario's receiver listens on 127.0.0.1.
        ((WEBHOOKS)) && export ORGBASE_WEBHOOK_ALLOW_PRIVATE=true
        [[ -n "$mode" ]] && export ORGBASE_SQLITE_WRITE_MODE="$mode"
        [[ -n "$limits_env" ]] && export "$limits_env"
        [[ -n "${BENCH_HTTP_THREADS:-}" ]] && export ORGBASE_HTTP_THREADS="$BENCH_HTTP_THREADS"
        exec "$BIN" serve --listen "127.0.0.1:$PORT" --database-url "$url"
    ) >"$WORKDIR/server.out" 2>"$WORKDIR/server.err" &
    SERVER_PID=$!

    local deadline=$((SECONDS + READY_TIMEOUT))
    until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/readyz" 2>/dev/null; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            local status=0
            wait "$SERVER_PID" || status=$?
            SERVER_PID=""
            server_tail
            die "[$db] the server exited (status $status) before becoming ready"
        fi
        if ((SECONDS >= deadline)); then
            server_tail
            die "[$db] the server did not answer GET /readyz with 200 within ${READY_TIMEOUT} s"
        fi
        sleep 0.2
    done
    echo "bench: [$db] ready"
}

# Quick correctness check before measuring: one GET and one PATCH on a seeded id.
preflight() { # db ids_file
    local db=$1 id code
    id=$(head -n1 "$2")
    code=$(curl -sS -o "$WORKDIR/preflight.body" -w '%{http_code}' --max-time 5 \
        -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/api/organizations/$id")
    [[ "$code" == 200 ]] || { cat "$WORKDIR/preflight.body" >&2; echo >&2; die "[$db] preflight GET organization answered $code"; }
    code=$(curl -sS -o "$WORKDIR/preflight.body" -w '%{http_code}' --max-time 5 -X PATCH \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        --data '{"name":"Preflight rename"}' "http://127.0.0.1:$PORT/api/organizations/$id")
    [[ "$code" == 200 ]] || { cat "$WORKDIR/preflight.body" >&2; echo >&2; die "[$db] preflight PATCH organization answered $code"; }
}

# ---------------------------------------------------------------------------------------------
# wrk

# Per endpoint: the wrk script, the connections, and (members) the page.
ep_script() {
    case $1 in
        hooked_*) echo patch_org ;;
        members_p1 | members_p5000) echo members ;;
        login | login_low) echo login ;;
        *_paced) echo "${1%_paced}" ;;
        get_org_key_*) echo get_org_key ;;
        *) echo "$1" ;;
    esac
}
ep_connections() {
    case $1 in
        login_low) echo "$LOGIN_LOW_CONNECTIONS" ;;
        *) echo "$CONNECTIONS" ;;
    esac
}
# wrk's per-request timeout. An upload waits its turn for a decode slot (one a core) behind the
# other connections' uploads: at tens of uploads a second, 32 connections queue for about a second.
ep_timeout() {
    case $1 in
        avatar_upload | avatar_bomb) echo 30s ;;
        *) echo 5s ;;
    esac
}

# The server's VmRSS, sampled every 100 ms while an avatar endpoint runs (bench/avatars.py rss).
rss_start() {
    python3 "$ROOT/bench/avatars.py" rss --pid "$SERVER_PID" --out "$WORKDIR/rss.out" &
    RSS_PID=$!
    sleep 0.3 # its first sample before the load starts
}
rss_stop() { # sets RSS_FIELDS
    kill -TERM "$RSS_PID" 2>/dev/null || true
    wait "$RSS_PID" 2>/dev/null || true
    RSS_PID=""
    RSS_FIELDS=$(sed -n 's/^RSS //p' "$WORKDIR/rss.out" 2>/dev/null | tail -n1)
}

run_wrk() { # db endpoint tag seconds record(0|1) [rate: requests a second in all, paced]
    local db=$1 ep=$2 tag=$3 secs=$4 record=$5 rate=${6:-0} out rc=0 line wrk_non conns threads page="" ids=$WORKDIR/ids.txt
    local avatar_body=""
    W_SEQ=$((W_SEQ + 1))
    conns=$(ep_connections "$ep")
    threads=$((THREADS < conns ? THREADS : conns))
    case $ep in
        members_p1) page=1 ;;
        members_p5000) page=5000 ;;
        v2_update_org* | v1_properties*) ids=$WORKDIR/children.txt ;;
        avatar_upload) avatar_body=$A_PHOTO_BODY ;;
        avatar_bomb) avatar_body=$A_BOMB_BODY ;;
    esac
    RSS_FIELDS=""
    [[ $ep != avatar_* ]] || rss_start
    [[ $ep != hooked_* ]] || hooks_on
    # In the background plus `wait`, so that Ctrl-C runs the INT trap at once (bash defers
    # traps while a foreground command runs, and skips them if that command exits normally).
    BENCH_DB=$db BENCH_ENDPOINT=$ep BENCH_RUN_TAG=$tag BENCH_KEY=$KEY \
        BENCH_IDS_FILE=$ids BENCH_LUA_DIR=$ROOT/bench/lua BENCH_WRK_THREADS=$threads \
        BENCH_MEMBERS_ORG=$P_ORG BENCH_MEMBERS_PAGE=$page BENCH_MEMBERS_PER_PAGE=15 \
        BENCH_LOGIN_EMAIL=$P_EMAIL BENCH_LOGIN_PASSWORD=$P_PASSWORD \
        BENCH_COMPAT_TOKEN=$C_TOKEN BENCH_COMPAT_PKEY=$C_PKEY \
        BENCH_WALLET_ORG=$W_ORG BENCH_WALLET_SEQ=$W_SEQ \
        BENCH_AVATAR_ORG=$A_ORG BENCH_AVATAR_BOUNDARY=$A_BOUNDARY BENCH_AVATAR_BODY=$avatar_body \
        BENCH_AVATAR_PATH=$A_PATH BENCH_LIMITS_ORG=$L_ORG BENCH_LIMITS_KEY=$L_KEY BENCH_RATE=$rate \
        timeout --foreground --signal=INT --kill-after=10 $((secs + 60)) \
        wrk --threads "$threads" --connections "$conns" --duration "${secs}s" \
        --timeout "$(ep_timeout "$ep")" --latency --script "$ROOT/bench/lua/$(ep_script "$ep").lua" "http://127.0.0.1:$PORT" \
        >"$WORKDIR/wrk.out" 2>&1 &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    [[ -z "$RSS_PID" ]] || rss_stop
    # The load stopped: the receiver times the backlog's drain from here.
    [[ $ep != hooked_* ]] || curl -fsS -o /dev/null "http://127.0.0.1:$H_PORT/_mark"
    H_FIELDS=""
    [[ $ep != hooked_* ]] || hooks_off "$db"
    out=$(<"$WORKDIR/wrk.out")
    if ((record)); then
        grep -v '^RESULT ' <<<"$out" | sed 's/^/    | /' || true
    fi
    line=$(grep '^RESULT ' <<<"$out" | tail -n1 || true)
    if ((rc != 0)) || [[ -z "$line" ]]; then
        ((record)) || sed 's/^/    | /' <<<"$out"
        server_tail
        die "[$db] wrk on $ep exited with status $rc${line:+: $line}${line:- and printed no RESULT line}"
    fi
    if [[ "$line" =~ \ requests=0\  ]]; then
        server_tail
        die "[$db] wrk on $ep completed no requests"
    fi
    # wrk's own count (status > 399), as a cross-check of the Lua count.
    wrk_non=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9][0-9]*\).*/\1/p' <<<"$out" | tail -n1)
    line="$line wrk_non2xx3xx=${wrk_non:-0} tag=$tag"
    # The people and compat endpoints' lines also say under what load and on what they ran.
    case $ep in
        members_*) line="$line connections=$conns members=$P_TOTAL page=$page" ;;
        v2_update_org* | v1_properties*) line="$line connections=$conns children=$C_CHILDREN" ;;
        login*) line="$line connections=$conns cores=$(nproc)" ;;
        charge)
            check_wallet "$db" "$line" "$record"
            line="$line connections=$conns topups=$W_TOPUPS $W_FIELDS"
            ;;
        avatar_upload) line="$line connections=$conns photo_bytes=$A_PHOTO_BYTES $RSS_FIELDS" ;;
        avatar_bomb)
            line="$line connections=$conns bomb_bytes=$A_BOMB_BYTES $RSS_FIELDS"
            check_bomb "$db" "$line" "$record"
            ;;
        avatar_get) line="$line connections=$conns body_bytes=$A_AVATAR_BYTES $RSS_FIELDS" ;;
        hooked_*) line="$line connections=$conns $H_FIELDS" ;;
        get_org_key_*) line="$line connections=$conns limiter=${ep#get_org_key_} rate_limit=$LIMITS_RATE failed_open=$(failed_open)" ;;
    esac
    LAST_LINE=$line
    if ((record)); then
        echo "$line" >>"$RAW"
        echo "$line"
    else
        echo "    warm-up: $line"
    fi
    [[ $ep != login* ]] || drain_logins "$db"
}

# After a login run, logins wrk left in flight may still be hashing, on the cores the next
# endpoint will want. One more login waits its turn behind them (the hashing queue is first come,
# first served), so when it answers the server is idle again.
drain_logins() { # db
    local code
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
        --data "$(python3 -c 'import json, sys; print(json.dumps({"email": sys.argv[1].split(",")[0], "password": sys.argv[2]}))' "$P_EMAIL" "$P_PASSWORD")" \
        "http://127.0.0.1:$PORT/api/auth/login" || true)
    [[ "$code" == 200 ]] || echo "bench: [$1] warning: the login after the login run answered ${code:-nothing} (expected 200)" >&2
}

# Every answer to the bomb must be a 422 naming image_too_large (avatar_bomb.lua counts the
# others as non422). Anything else is a safety failure, not a slow machine: say so at once, in
# capitals, and make the whole benchmark exit 1 at the end (BENCH_STRICT or not).
check_bomb() { # db result-line record(0|1)
    local db=$1 line=$2 record=$3 non422
    [[ $line =~ \ non422=([0-9]+) ]] && non422=${BASH_REMATCH[1]} || die "[$db] no non422= in: $line (bench/lua/avatar_bomb.lua)"
    if ((non422 > 0)); then
        AVATAR_BOMB_FAILED=1
        local st
        st=$(sed -n 's/.* statuses=\([^ ]*\).*/\1/p' <<<"$line")
        echo "bench: [$db] !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
        echo "bench: [$db] FAIL: $non422 answer(s) to the decompression bomb were not a 422 image_too_large" >&2
        echo "bench: [$db]       (statuses outside 2xx: ${st:--}; the rest were 2xx or a 422 for another reason)" >&2
        echo "bench: [$db] !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
        server_tail
    fi
}

# The avatars scenario's set-up (bench/avatars.py setup): the fixtures (a 1200 x 850 JPEG, a PNG
# bomb, each as a multipart body with a fixed boundary), one organization, one checked upload of
# each and one checked GET of the stored avatar. Sets A_ORG, A_BOUNDARY, A_PHOTO_BODY, A_BOMB_BODY,
# A_PATH (the 512-pixel avatar's path), A_PHOTO_BYTES, A_BOMB_BYTES, A_AVATAR_BYTES.
setup_avatars() { # db
    local db=$1 rc=0 k v
    echo "bench: [$db] avatars: a 1-megapixel JPEG and a PNG bomb, one organization, one checked upload of each"
    python3 "$ROOT/bench/avatars.py" setup --url "http://127.0.0.1:$PORT" --key "$KEY" \
        --dir "$WORKDIR/avatar-fixtures" --out "$WORKDIR/avatars.env" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    if ((rc != 0)); then
        server_tail
        die "[$db] the avatars set-up failed (status $rc)"
    fi
    while IFS='=' read -r k v; do
        case $k in
            ORG) A_ORG=$v ;;
            BOUNDARY) A_BOUNDARY=$v ;;
            PHOTO_BODY) A_PHOTO_BODY=$v ;;
            BOMB_BODY) A_BOMB_BODY=$v ;;
            AVATAR_PATH) A_PATH=$v ;;
            PHOTO_BYTES) A_PHOTO_BYTES=$v ;;
            BOMB_BYTES) A_BOMB_BYTES=$v ;;
            AVATAR_BYTES) A_AVATAR_BYTES=$v ;;
        esac
    done <"$WORKDIR/avatars.env"
    [[ -n "$A_ORG" && -n "$A_BOUNDARY" && -s "$A_PHOTO_BODY" && -s "$A_BOMB_BODY" && -n "$A_PATH" ]] ||
        die "[$db] bench/avatars.py wrote an incomplete $WORKDIR/avatars.env"
}

# The people scenario's set-up (bench/people.py): one organization with MEMBERS members by SQL,
# one person who can log in. Sets P_ORG, P_EMAIL, P_PASSWORD, P_TOTAL.
setup_people() { # db
    local db=$1 kind=sqlite rc=0 k v
    [[ $db == postgres ]] && kind=postgres
    echo "bench: [$db] people: one organization with $MEMBERS members (SQL), one person who can log in"
    python3 "$ROOT/bench/people.py" --url "http://127.0.0.1:$PORT" --key "$KEY" --members "$MEMBERS" \
        --db "$kind" --sqlite-path "$WORKDIR/orgbase.db" --pg-db "${PG_DB:-none}" --psql "${PG_PSQL[*]}" \
        --outbox "$WORKDIR/mail-outbox" --out "$WORKDIR/people.env" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    if ((rc != 0)); then
        server_tail
        die "[$db] the people set-up failed (status $rc)"
    fi
    while IFS='=' read -r k v; do
        case $k in
            ORG) P_ORG=$v ;;
            EMAIL) P_EMAIL=$v ;;
            PASSWORD) P_PASSWORD=$v ;;
            TOTAL) P_TOTAL=$v ;;
        esac
    done <"$WORKDIR/people.env"
    [[ -n "$P_ORG" && -n "$P_EMAIL" && -n "$P_PASSWORD" && -n "$P_TOTAL" ]] ||
        die "[$db] bench/people.py wrote an incomplete $WORKDIR/people.env"
}

# The compat scenario's set-up (bench/compat.py), through the API: a partner organization, a
# partner key, CHILDREN children made with it (ids in children.txt), one checked answer of each
# endpoint. Sets C_TOKEN (the key, percent-encoded for a query string), C_PKEY, C_CHILDREN.
setup_compat() { # db
    local db=$1 rc=0 k v
    echo "bench: [$db] compat: a partner organization, a partner key and $CHILDREN children (API)"
    python3 "$ROOT/bench/compat.py" --url "http://127.0.0.1:$PORT" --key "$KEY" --children "$CHILDREN" \
        --threads "$SEED_THREADS" --ids "$WORKDIR/children.txt" --out "$WORKDIR/compat.env" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    if ((rc != 0)); then
        server_tail
        die "[$db] the compat set-up failed (status $rc)"
    fi
    while IFS='=' read -r k v; do
        case $k in
            TOKEN) C_TOKEN=$v ;;
            PKEY) C_PKEY=$v ;;
            CHILDREN) C_CHILDREN=$v ;;
        esac
    done <"$WORKDIR/compat.env"
    [[ -n "$C_TOKEN" && -n "$C_PKEY" && -n "$C_CHILDREN" && -s "$WORKDIR/children.txt" ]] ||
        die "[$db] bench/compat.py wrote an incomplete $WORKDIR/compat.env or no children.txt"
}

# The wallet scenario's set-up (bench/wallet.py setup), through the API: one organization, topped
# up for the most charges the runs could make (100,000/s over the warm-up and every run), one
# checked charge (and its replay), the ledger read through the API and with SQL. Sets W_ORG,
# W_TOPUPS; the ledger's charge count goes to wallet.state, the baseline of check_wallet.
setup_wallet() { # db
    local db=$1 kind=sqlite rc=0 k v
    [[ $db == postgres ]] && kind=postgres
    echo "bench: [$db] wallet: one organization, topped up through the API, one checked charge"
    python3 "$ROOT/bench/wallet.py" setup --url "http://127.0.0.1:$PORT" --key "$KEY" \
        --db "$kind" --sqlite-path "$WORKDIR/orgbase.db" --pg-db "${PG_DB:-none}" --psql "${PG_PSQL[*]}" \
        --seconds $((WARMUP + RUNS * DURATION)) --state "$WORKDIR/wallet.state" --out "$WORKDIR/wallet.env" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    if ((rc != 0)); then
        server_tail
        die "[$db] the wallet set-up failed (status $rc)"
    fi
    while IFS='=' read -r k v; do
        case $k in
            ORG) W_ORG=$v ;;
            TOPUPS) W_TOPUPS=$v ;;
        esac
    done <"$WORKDIR/wallet.env"
    [[ -n "$W_ORG" && -n "$W_TOPUPS" && -s "$WORKDIR/wallet.state" ]] ||
        die "[$db] bench/wallet.py wrote an incomplete $WORKDIR/wallet.env or no wallet.state"
}

# After each wrk run on the charge endpoint (warm-up too, so each check covers one run): the
# balance against the ledger's sum, and the charge entries the run added against the 2xx answers
# wrk saw (plus at most the requests it left in flight). Sets W_FIELDS for the RESULT line.
check_wallet() { # db result-line record(0|1)
    local db=$1 line=$2 record=$3 requests non2xx sent rc=0 out
    [[ $line =~ \ requests=([0-9]+) ]] && requests=${BASH_REMATCH[1]} || die "[$db] no requests= in: $line"
    [[ $line =~ \ non2xx=([0-9]+) ]] && non2xx=${BASH_REMATCH[1]} || die "[$db] no non2xx= in: $line"
    [[ $line =~ \ sent=([0-9]+) ]] && sent=${BASH_REMATCH[1]} || die "[$db] no sent= in: $line (bench/lua/charge.lua)"
    local kind=sqlite
    [[ $db == postgres ]] && kind=postgres
    python3 "$ROOT/bench/wallet.py" check --url "http://127.0.0.1:$PORT" --key "$KEY" --org "$W_ORG" \
        --db "$kind" --sqlite-path "$WORKDIR/orgbase.db" --pg-db "${PG_DB:-none}" --psql "${PG_PSQL[*]}" \
        --state "$WORKDIR/wallet.state" --ledger "$WALLET_LEDGER" \
        --ok2xx $((requests - non2xx)) --in-flight $((sent > requests ? sent - requests : 0)) \
        >"$WORKDIR/wallet.check" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    out=$(<"$WORKDIR/wallet.check")
    if ((rc != 0)); then
        [[ -z "$out" ]] || sed 's/^/    | /' <<<"$out"
        server_tail
        die "[$db] the wallet ledger check failed to run (status $rc)"
    fi
    W_FIELDS=$(sed -n 's/^LEDGER //p' <<<"$out" | tail -n1)
    [[ -n "$W_FIELDS" ]] || die "[$db] bench/wallet.py check printed no LEDGER line"
    local what=ledger
    ((record)) || what="warm-up ledger"
    grep -v '^LEDGER ' <<<"$out" | sed "s/^/    $what: /" || true
    if [[ $W_FIELDS != *ledger=pass* ]]; then
        echo "bench: [$db] WARNING: the wallet $what check failed (see above)" >&2
    fi
}

# The webhooks scenario: a receiver, and a platform endpoint at it, disabled between its runs.
H_RECEIVER_PID=""
setup_webhooks() { # db
    local db=$1 body
    H_PORT=$(free_port)
    # uvloop runs the receiver at a fraction of the CPU, which it shares with the server here.
    python3 -c 'import uvloop' 2>/dev/null || python3 -m pip install -q uvloop 2>/dev/null ||
        python3 -m pip install -q --break-system-packages uvloop 2>/dev/null ||
        echo "bench: uvloop could not be installed; the receiver runs on asyncio's own loop" >&2
    python3 "$ROOT/bench/hooks_receiver.py" "$H_PORT" >"$WORKDIR/receiver.log" 2>&1 &
    H_RECEIVER_PID=$!
    local deadline=$((SECONDS + 10))
    until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$H_PORT/_stats" 2>/dev/null; do
        ((SECONDS < deadline)) || die "[$db] the webhook receiver did not start: $(tail -5 "$WORKDIR/receiver.log")"
        sleep 0.1
    done
    body=$(curl -fsS -X POST "http://127.0.0.1:$PORT/api/admin/webhooks" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' \
        --data "{\"url\":\"http://127.0.0.1:$H_PORT/hook\",\"disabled\":true,\"eventTypes\":[\"organization.updated\"]}") ||
        die "[$db] could not create the webhook endpoint"
    H_ENDPOINT=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$body")
    echo "bench: [$db] webhook receiver on 127.0.0.1:$H_PORT, platform endpoint $H_ENDPOINT (enabled for the hooked_* runs)"
}
hooks_set() { # disabled(true|false)
    curl -fsS -o /dev/null -X PATCH "http://127.0.0.1:$PORT/api/admin/webhooks/$H_ENDPOINT" \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data "{\"disabled\":$1}" ||
        die "could not switch the webhook endpoint (disabled=$1)"
}
hooks_on() {
    curl -fsS -o /dev/null "http://127.0.0.1:$H_PORT/_reset"
    hooks_set false
}
# After a hooked_* run: wait until the receiver has had nothing new for 2 s (the backlog
# delivered; at most 120 s), read its figures into H_FIELDS, then disable the endpoint.
hooks_off() { # db
    local db=$1 count last=-1 still=0 deadline=$((SECONDS + 120)) stats
    while ((SECONDS < deadline)); do
        count=$(curl -fsS "http://127.0.0.1:$H_PORT/_stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')
        if ((count == last)); then
            still=$((still + 1))
            ((still < 4)) || break
        else
            still=0 last=$count
        fi
        sleep 0.5
    done
    hooks_set true
    stats=$(curl -fsS "http://127.0.0.1:$H_PORT/_stats")
    H_FIELDS=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print(" ".join(f"{k}={s.get(k)}" for k in ("count", "distinct", "rate", "drain_rate", "lag_p50_ms", "lag_p99_ms", "lag_max_ms")).replace("count=", "delivered=").replace(" rate=", " delivery_rate="))
' "$stats")
}
stop_receiver() {
    if [[ -n "$H_RECEIVER_PID" ]]; then
        kill "$H_RECEIVER_PID" 2>/dev/null || true
        wait "$H_RECEIVER_PID" 2>/dev/null || true
        H_RECEIVER_PID=""
    fi
}

bench_db() { # db
    local db=$1
    echo
    echo "=============================================================================="
    echo "bench: [$db]"
    echo "=============================================================================="
    start_server "$db"

    if ((ORGS || WEBHOOKS)); then
        echo "bench: [$db] seeding $SEED_COUNT organizations"
        local rc=0
        python3 "$ROOT/bench/seed.py" --url "http://127.0.0.1:$PORT" --key "$KEY" \
            --count "$SEED_COUNT" --threads "$SEED_THREADS" --out "$WORKDIR/ids.txt" &
        CHILD_PID=$!
        wait "$CHILD_PID" || rc=$?
        CHILD_PID=""
        if ((rc != 0)); then
            server_tail
            die "[$db] seeding failed (status $rc)"
        fi
        preflight "$db" "$WORKDIR/ids.txt"
    fi
    P_ORG="" P_EMAIL="" P_PASSWORD="" P_TOTAL=""
    if ((PEOPLE)); then setup_people "$db"; fi
    C_TOKEN="" C_PKEY="" C_CHILDREN=""
    if ((COMPAT)); then setup_compat "$db"; fi
    W_ORG="" W_TOPUPS="" W_FIELDS="" W_SEQ=0
    if ((WALLET)); then setup_wallet "$db"; fi
    A_ORG="" A_BOUNDARY="" A_PHOTO_BODY="" A_BOMB_BODY="" A_PATH="" A_PHOTO_BYTES="" A_BOMB_BYTES="" A_AVATAR_BYTES=""
    if ((AVATARS)); then setup_avatars "$db"; fi
    H_ENDPOINT="" H_PORT=""
    if ((WEBHOOKS)); then setup_webhooks "$db"; fi

    local ep run
    if ((WARMUP > 0)); then
        echo "bench: [$db] warm-up, ${WARMUP} s per endpoint (not recorded)"
        for ep in "${ENDPOINTS[@]}"; do
            if [[ $ep == hooked_paced ]]; then
                run_wrk "$db" "$ep" "w$RANDOM" "$WARMUP" 0 "$HOOKS_RATE"
            else
                run_wrk "$db" "$ep" "w$RANDOM" "$WARMUP" 0
            fi
        done
    fi
    # Runs interleave the endpoints so slow drift (WAL growth, caches) spreads over all of them.
    for run in $(seq 1 "$RUNS"); do
        for ep in "${ENDPOINTS[@]}"; do
            local c
            c=$(ep_connections "$ep")
            echo "bench: [$db] run $run/$RUNS: $ep (${DURATION} s, $c connections, $((THREADS < c ? THREADS : c)) threads)"
            if [[ $ep == hooked_paced ]]; then
                run_wrk "$db" "$ep" "r$run$RANDOM" "$DURATION" 1 "$HOOKS_RATE"
            else
                run_wrk "$db" "$ep" "r$run$RANDOM" "$DURATION" 1
            fi
            # The compat endpoints again, paced at a fraction of the rate just reached: the
            # latency of a load the server carries, rather than of 32 requests always queued.
            if [[ $ep == v2_update_org || $ep == v1_properties ]] && [[ $PACED =~ [1-9] ]]; then
                local rate
                rate=$(python3 -c 'import sys; print(int(float(sys.argv[1]) * float(sys.argv[2])))' \
                    "$(sed -n 's/.* rps=\([0-9.]*\) .*/\1/p' <<<"$LAST_LINE")" "$PACED")
                if ((rate > 0)); then
                    echo "bench: [$db] run $run/$RUNS: ${ep}_paced ($rate req/s offered, ${DURATION} s, $c connections)"
                    run_wrk "$db" "${ep}_paced" "r$run$RANDOM" "$DURATION" 1 "$rate"
                fi
            fi
            # SQLite's WAL should stay bounded under load (the writer starts it over).
            if [[ -f "$WORKDIR/orgbase.db-wal" ]]; then
                echo "bench: [$db] WAL after the run: $(($(stat -c %s "$WORKDIR/orgbase.db-wal") / 1048576)) MiB"
            fi
        done
    done

    finish_server "$db"
}

# After a server's last run: it must still be alive. Stop it (and the webhook receiver, if any),
# show what it logged at warn or above, drop its PostgreSQL database and remove its directory.
finish_server() { # db [what, for the messages]
    local db=$1 what=${2:+ ($2)}
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        server_tail
        die "[$db] the server$what died during the benchmark"
    fi
    stop_server
    stop_receiver
    if [[ -s "$WORKDIR/server.err" ]]; then
        echo "bench: [$db] the server$what logged $(wc -l <"$WORKDIR/server.err") line(s) at warn or above; last 10:"
        tail -n 10 "$WORKDIR/server.err" | strip_ansi | sed 's/^/    ! /'
        server_panics
    fi
    drop_pg_db
    rm -rf -- "$WORKDIR"
    WORKDIR=""
}

# ---------------------------------------------------------------------------------------------
# The limits scenario: what the rate limiter adds to GET /api/organizations/{id}

L_ORG="" L_KEY=""

# A call of the limits set-up with the platform key (not limited by default); the answer's body
# goes to limits.body. Prints the status (000: no answer).
limits_api() { # method path json-body
    rm -f -- "$WORKDIR/limits.body"
    curl -sS -o "$WORKDIR/limits.body" -w '%{http_code}' --max-time 10 -X "$1" \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data "$3" \
        "http://127.0.0.1:$PORT$2" || true
}

# One field of the JSON object in limits.body ("" if it is not there, or not JSON).
limits_field() { # name
    python3 -c '
import json, sys
try:
    v = json.load(open(sys.argv[1], encoding="utf-8")).get(sys.argv[2])
except Exception:
    v = None
print("" if v is None else v)
' "$WORKDIR/limits.body" "$1"
}

limits_fail() { # db limiter message
    if [[ -s "$WORKDIR/limits.body" ]]; then
        echo "bench: [$1] the answer's body:" >&2
        head -c 2000 "$WORKDIR/limits.body" | sed 's/^/    | /' >&2
        echo >&2
    fi
    server_tail
    die "[$1] limits ($2): $3"
}

# Through the API, with the platform key: one organization; its own rateLimit set to LIMITS_RATE
# (the answer must say so: rateLimit $LIMITS_RATE, source organization); a viewer key of it
# (role 5: enough to read it). Sets L_ORG and L_KEY (the key is never printed).
setup_limits() { # db limiter
    local db=$1 limiter=$2 code
    echo "bench: [$db] limits ($limiter): one organization, its rateLimit set to $LIMITS_RATE, a viewer key of it (API)"
    code=$(limits_api POST /api/organizations '{"name":"Bench Limits Org","countryCode":"US"}')
    [[ $code == 201 ]] || limits_fail "$db" "$limiter" "POST /api/organizations answered $code (expected 201)"
    L_ORG=$(limits_field id)
    [[ -n $L_ORG ]] || limits_fail "$db" "$limiter" "POST /api/organizations answered 201 without an id"
    code=$(limits_api PATCH "/api/organizations/$L_ORG" "{\"rateLimit\":$LIMITS_RATE}")
    [[ $code == 200 ]] || limits_fail "$db" "$limiter" "PATCH /api/organizations/$L_ORG {\"rateLimit\":$LIMITS_RATE} answered $code (expected 200)"
    [[ $(limits_field rateLimit) == "$LIMITS_RATE" && $(limits_field rateLimitSource) == organization ]] ||
        limits_fail "$db" "$limiter" "the PATCH answered 200 but not with rateLimit $LIMITS_RATE from the organization (rateLimit '$(limits_field rateLimit)', rateLimitSource '$(limits_field rateLimitSource)')"
    code=$(limits_api POST "/api/organizations/$L_ORG/api-keys" '{"name":"bench","roles":[5]}')
    [[ $code == 201 ]] || limits_fail "$db" "$limiter" "POST /api/organizations/$L_ORG/api-keys answered $code (expected 201)"
    L_KEY=$(limits_field key)
    rm -f -- "$WORKDIR/limits.body" # it holds the key
    [[ $L_KEY == obk_* ]] || limits_fail "$db" "$limiter" "POST …/api-keys answered 201 without an obk_ key"
}

# One request as the wrk script sends it, before measuring: it must answer 200, and carry the
# RateLimit headers when the limiter is on (RateLimit-Policy with the burst of 2 x LIMITS_RATE: the
# limiter counts against the rateLimit just set) and not when it is off (else off would be no
# baseline). Without them in redis mode, Redis could not be asked and the limiter let the request
# through (it fails open): the figures would not be Redis's.
limits_preflight() { # db limiter
    local db=$1 limiter=$2 code hdr=$WORKDIR/limits.headers policy state
    code=$(curl -sS -D "$hdr" -o "$WORKDIR/limits.body" -w '%{http_code}' --max-time 5 \
        -H "Authorization: Bearer $L_KEY" "http://127.0.0.1:$PORT/api/organizations/$L_ORG") || true
    [[ $code == 200 ]] ||
        limits_fail "$db" "$limiter" "preflight GET /api/organizations/$L_ORG with the organization's key answered $code (expected 200)"
    policy=$(tr -d '\r' <"$hdr" | grep -i '^ratelimit-policy:' | sed 's/^[^:]*: *//' | tail -n1) || true
    state=$(tr -d '\r' <"$hdr" | grep -i '^ratelimit:' | sed 's/^[^:]*: *//' | tail -n1) || true
    if [[ $limiter == off ]]; then
        [[ -z $policy && -z $state ]] ||
            limits_fail "$db" "$limiter" "with ORGBASE_RATE_LIMITS=false the answer still carries RateLimit headers (RateLimit: '$state', RateLimit-Policy: '$policy'): the limiter is not off"
    else
        [[ -n $state ]] ||
            limits_fail "$db" "$limiter" "the answer carries no RateLimit header: the limiter did not count the request$([[ $limiter == redis ]] && echo " (Redis could not be asked, so it let the request through)")"
        [[ $policy == *";q=$((2 * LIMITS_RATE));"* ]] ||
            limits_fail "$db" "$limiter" "RateLimit-Policy is '$policy', not the burst of $((2 * LIMITS_RATE)) of rateLimit $LIMITS_RATE: the runs could be refused"
    fi
    if [[ -n $state ]]; then
        echo "bench: [$db] limits ($limiter): preflight GET with the organization's key: 200, RateLimit: $state, RateLimit-Policy: $policy"
    else
        echo "bench: [$db] limits ($limiter): preflight GET with the organization's key: 200, no RateLimit headers"
    fi
}

# The server's count of requests the limiter let through because Redis could not be asked, since
# it started (warm-up included): in redis mode anything but 0 means some requests skipped Redis.
# "-" when /metrics does not say.
failed_open() {
    local n
    n=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
        sed -n 's/^orgbase_rate_limit_failed_open_total \([0-9][0-9]*\)$/\1/p' | tail -n1) || true
    echo "${n:--}"
}

# For each rate limiter (LIMITERS, in order): a server of its own (the limiter is chosen when it
# starts) on a fresh database, the set-up and the preflight, then get_org_key_<limiter> as the
# other endpoints run (warm-up, then RUNS runs), and the server stopped. One limiter after the
# other, each with the whole machine.
bench_limits() { # db
    local db=$1 limiter ep run c
    for limiter in $LIMITERS; do
        echo
        echo "=============================================================================="
        echo "bench: [$db] limits, rate limiter $limiter"
        echo "=============================================================================="
        [[ $limiter != redis ]] || check_redis
        start_server "$db" "$limiter"
        # run_wrk passes every scenario's settings on: only the limits scenario's are set here.
        P_ORG="" P_EMAIL="" P_PASSWORD="" P_TOTAL="" C_TOKEN="" C_PKEY="" C_CHILDREN=""
        W_ORG="" W_TOPUPS="" W_FIELDS="" W_SEQ=0 H_ENDPOINT="" H_PORT=""
        A_ORG="" A_BOUNDARY="" A_PHOTO_BODY="" A_BOMB_BODY="" A_PATH="" A_PHOTO_BYTES="" A_BOMB_BYTES="" A_AVATAR_BYTES=""
        L_ORG="" L_KEY=""
        setup_limits "$db" "$limiter"
        limits_preflight "$db" "$limiter"
        ep=get_org_key_$limiter
        c=$(ep_connections "$ep")
        if ((WARMUP > 0)); then
            echo "bench: [$db] warm-up, ${WARMUP} s (not recorded)"
            run_wrk "$db" "$ep" "w$RANDOM" "$WARMUP" 0
        fi
        for run in $(seq 1 "$RUNS"); do
            echo "bench: [$db] run $run/$RUNS: $ep (${DURATION} s, $c connections, $((THREADS < c ? THREADS : c)) threads)"
            run_wrk "$db" "$ep" "r$run$RANDOM" "$DURATION" 1
        done
        finish_server "$db" "rate limiter $limiter"
        L_ORG="" L_KEY=""
    done
}

# ---------------------------------------------------------------------------------------------
# Main

echo "Orgbase benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
if rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || rev="$rev (uncommitted changes)"
else
    rev=unknown
fi
echo "commit:   $rev"
echo "machine:  $(nproc) cores, $(uname -sr); wrk shares the cores with the server"
echo "wrk:      $(wrk --version 2>&1 | head -n1 || true)"
settings="databases=[$DBS] scenarios=[$SCENARIOS] duration=${DURATION}s runs=$RUNS warmup=${WARMUP}s connections=$CONNECTIONS threads=$THREADS"
if ((ORGS)); then settings+=" seed=$SEED_COUNT"; fi
if ((PEOPLE)); then settings+=" members=$MEMBERS login_low_connections=$LOGIN_LOW_CONNECTIONS"; fi
if ((COMPAT)); then settings+=" children=$CHILDREN"; fi
if ((WALLET)); then settings+=" wallet_ledger=$WALLET_LEDGER"; fi
if ((AVATARS)); then settings+=" avatar_rss_interval=100ms"; fi
if ((LIMITS)); then settings+=" limiters=[$LIMITERS] rate_limit=$LIMITS_RATE"; fi
echo "settings: $settings"

RAN=()
AVATAR_BOMB_FAILED=0
for db in $DBS; do
    if [[ "$db" == postgres ]]; then
        if ! command -v psql >/dev/null ||
            ! PGCONNECT_TIMEOUT=5 "${PG_PSQL[@]}" -d test -c 'select 1' >/dev/null 2>&1; then
            echo
            echo "bench: [postgres] SKIPPED: \`psql -h 127.0.0.1 -U postgres -d test -c 'select 1'\` failed (no PostgreSQL on 127.0.0.1:5432?)"
            continue
        fi
    fi
    # The limits scenario needs servers of its own: the others' server first, if any.
    if ((${#ENDPOINTS[@]} > 0)); then bench_db "$db"; fi
    if ((LIMITS)); then bench_limits "$db"; fi
    echo
    python3 "$ROOT/bench/summarize.py" "$RAW" --db "$db" || true
    if ((WEBHOOKS)); then python3 "$ROOT/bench/hooks_receiver.py" --summary "$RAW" "$db" || true; fi
    RAN+=("$db")
done

echo
echo "=============================================================================="
echo "SUMMARY (median of $RUNS run(s) of ${DURATION} s each; organization, wallet, avatar and rate-limit targets gate sqlite, member-page and compatible-API targets gate sqlite and postgres, the wallet ledger check and the bomb's refusals every database)"
echo "=============================================================================="
((${#RAN[@]} > 0)) || die "no database was benchmarked"
rc=0
python3 "$ROOT/bench/summarize.py" "$RAW" --gate sqlite --people-gate sqlite --people-gate postgres \
    --compat-gate sqlite --compat-gate postgres --wallet-gate sqlite --avatar-gate sqlite --limits-gate sqlite --overall || rc=$?
echo "full output: $RESULTS_DIR/latest.txt"
if ((AVATAR_BOMB_FAILED)); then
    echo "bench: FAIL: the decompression bomb was not refused with 422 every time (see above)" >&2
    exit 1
fi
if ((rc != 0)) && [[ "$STRICT" == 1 ]]; then
    exit 1
fi
exit 0
