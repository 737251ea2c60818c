#!/usr/bin/env bash
# Two or more builds (or settings) of Orgbase on PostgreSQL, measured side by side: every server
# runs at once, each on a database of its own, and their `wrk` runs take turns, endpoint by
# endpoint, round by round. On a machine whose speed drifts by a third within minutes (session
# 26's), figures taken minutes apart say little about a 5 % difference; runs seconds apart do.
# Idle servers cost nothing measurable (the one being driven is alone on the CPU).
#
#   bash bench/side-by-side.sh [-r ROUNDS] [-d SECONDS] [-e "ENDPOINTS"] BIN[@THREADS] BIN[@THREADS]...
#
#   BIN       an orgbase binary (build each in its own worktree, or copy target/release/orgbase
#             aside between builds)
#   @THREADS  serve with ORGBASE_HTTP_THREADS=THREADS (without: one shared runtime, the default)
#   -r        rounds (default 5); -d seconds a run (default 4); -e endpoints among healthz, get_org,
#             access, patch_org, v2_update_org, v1_properties (default "healthz get_org access
#             v2_update_org v1_properties")
#
# Each server gets 2,000 organizations (bench/seed.py) and a partner with 1,000 children
# (bench/compat.py). Every run is `wrk -t2 -c32` with the bench/lua script of its endpoint; the
# CPU the server and its PostgreSQL backends spent in it is read from /proc. Prints a line per
# run, then per build and endpoint the medians: req/s, server and PostgreSQL CPU µs a request,
# p99; and access / healthz. Needs wrk, python3, psql, PostgreSQL at 127.0.0.1:5432 (user
# postgres, database test).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=5 secs=4 eps="healthz get_org access v2_update_org v1_properties"
while getopts "r:d:e:" o; do
    case $o in
        r) rounds=$OPTARG ;;
        d) secs=$OPTARG ;;
        e) eps=$OPTARG ;;
        *) sed -n '2,20p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
(($# >= 1)) || { sed -n '2,20p' "$0" >&2; exit 2; }
for tool in wrk python3 psql curl; do
    command -v "$tool" >/dev/null || { echo "side-by-side: $tool is missing" >&2; exit 2; }
done
PSQL=(psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1 -d test)

work=$(mktemp -d /tmp/orgbase-side-by-side.XXXXXX)
pids=() ports=() dbs=() names=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for d in "${dbs[@]}"; do "${PSQL[@]}" -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

i=0
for spec in "$@"; do
    bin=${spec%@*} threads=
    [[ $spec == *@* ]] && threads=${spec##*@}
    [[ -x $bin ]] || { echo "side-by-side: no executable at $bin" >&2; exit 2; }
    dir=$work/s$i
    mkdir "$dir"
    cp "$bin" "$dir/orgbase"
    port=$(free_port)
    db=orgbase_sbs_$$_$i
    "${PSQL[@]}" -c "CREATE DATABASE $db" >/dev/null
    dbs+=("$db")
    key=obk_sbs_$(python3 -c 'import secrets; print(secrets.token_hex(24))')
    (
        cd "$dir"
        export RUST_LOG=warn NO_COLOR=1 ORGBASE_BOOTSTRAP_KEY=$key
        [[ -n $threads ]] && export ORGBASE_HTTP_THREADS=$threads
        exec ./orgbase serve --listen "127.0.0.1:$port" --database-url "postgres://postgres@127.0.0.1:5432/$db"
    ) >"$dir/server.log" 2>&1 &
    pids+=($!)
    ports+=("$port")
    names+=("$i:$(basename "$bin")@${threads:-shared}")
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break
        sleep 0.2
    done
    curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" \
        || { echo "side-by-side: ${names[-1]} did not start: $(tail -5 "$dir/server.log")" >&2; exit 1; }
    python3 "$ROOT/bench/seed.py" --url "http://127.0.0.1:$port" --key "$key" --count 2000 \
        --out "$dir/ids.txt" --threads 4 >/dev/null
    python3 "$ROOT/bench/compat.py" --url "http://127.0.0.1:$port" --key "$key" --children 1000 \
        --threads 4 --ids "$dir/children.txt" --out "$dir/compat.env" >/dev/null
    echo "KEY=$key" >>"$dir/compat.env"
    echo "side-by-side: ${names[-1]} on 127.0.0.1:$port, database $db"
    i=$((i + 1))
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_cpu() { # the PostgreSQL backends of one database
    local p
    for p in $(pgrep -f "postgres: .* $1 " || true); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done \
        | awk '{s += $1} END {print s + 0}'
}

results=$work/results
: >"$results"
for round in $(seq "$rounds"); do
    for ep in $eps; do
        for j in $(seq 0 $((i - 1))); do
            dir=$work/s$j
            KEY= TOKEN= PKEY=
            # shellcheck disable=SC1091
            . "$dir/compat.env"
            ids=$dir/ids.txt
            [[ $ep == v2_update_org || $ep == v1_properties ]] && ids=$dir/children.txt
            t0=$(cpu "${pids[$j]}") p0=$(pg_cpu "${dbs[$j]}")
            out=$(BENCH_KEY=$KEY BENCH_DB=postgres BENCH_ENDPOINT=$ep BENCH_LUA_DIR=$ROOT/bench/lua \
                BENCH_RUN_TAG=sbs$round$j$RANDOM BENCH_IDS_FILE=$ids BENCH_COMPAT_TOKEN=$TOKEN \
                BENCH_COMPAT_PKEY=$PKEY BENCH_WRK_THREADS=2 \
                wrk -t2 -c32 -d"${secs}s" --latency -s "$ROOT/bench/lua/$ep.lua" "http://127.0.0.1:${ports[$j]}")
            t1=$(cpu "${pids[$j]}") p1=$(pg_cpu "${dbs[$j]}")
            line=$(python3 - "$out" "$t0" "$t1" "$p0" "$p1" <<'PY'
import re, sys, os
out, t0, t1, p0, p1 = sys.argv[1], *map(float, sys.argv[2:])
n = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
tick = 1e6 / os.sysconf("SC_CLK_TCK")
print(f"rps={rps:.0f} server_us={(t1 - t0) * tick / n:.1f} pg_us={(p1 - p0) * tick / n:.1f} "
      f"p99={p99} non2xx={bad.group(1) if bad else 0}")
PY
)
            echo "RUN round=$round build=${names[$j]} endpoint=$ep $line" | tee -a "$results"
        done
    done
done

python3 - "$results" <<'PY'
import re, sys, statistics as st
from collections import defaultdict
runs, builds, eps = defaultdict(list), [], []
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    b, e = f["build"], f["endpoint"]
    builds += [b] * (b not in builds)
    eps += [e] * (e not in eps)
    runs[b, e].append(f)
def med(b, e, k, conv=float):
    v = [conv(r[k]) for r in runs[b, e]]
    return st.median(v) if v else float("nan")
ms = lambda s: float(s[:-2]) if s.endswith("ms") else float(s[:-2]) / 1000 if s.endswith("us") else float(s[:-1]) * 1000
print(f"\nmedians of {len(runs[builds[0], eps[0]])} runs: req/s, server µs, PostgreSQL µs a request, p99 ms")
print("endpoint".ljust(15) + "".join(b[:34].ljust(36) for b in builds))
for e in eps:
    print(e.ljust(15) + "".join(
        f"{med(b, e, 'rps'):8.0f} {med(b, e, 'server_us'):6.1f} {med(b, e, 'pg_us'):6.1f} {med(b, e, 'p99', ms):6.2f}".ljust(36)
        for b in builds))
if "access" in eps and "healthz" in eps:
    print("access/healthz".ljust(15) + "".join(
        f"{med(b, 'access', 'rps') / med(b, 'healthz', 'rps'):8.3f}".ljust(36) for b in builds))
PY
