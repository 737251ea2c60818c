#!/usr/bin/env python3
"""Summarize the RESULT lines written by the wrk scripts (bench/lua/common.lua).

    python3 bench/summarize.py RESULTS_FILE [--db DB] [--gate sqlite]

For each database (or only --db): the median req/s, p50 and p99 over the runs of each
endpoint, the summed non-2xx responses and socket errors, the GET-org / healthz ratio, and
PASS/FAIL against the targets. The targets decide the verdict only for the --gate database(s)
(default: sqlite); for the others they are informational. Exit status: 1 if a gated database
fails, else 0.
"""
import argparse
import statistics
import sys

ENDPOINTS = [
    ("healthz", "GET /healthz"),
    ("get_org", "GET /api/organizations/{id}"),
    ("patch_org", "PATCH /api/organizations/{id}"),
    ("post_org", "POST /api/organizations"),
]
# Targets.
GET_RATIO_MIN = 0.5  # GET org rps >= 0.5 x healthz rps
WRITE_RPS_MIN = 4000.0  # PATCH and POST, each
WRITE_P99_MAX_MS = 20.0  # PATCH and POST, each


def parse(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("RESULT "):
                continue
            kv = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
            rows.append(kv)
    return rows


def merge_statuses(values):
    """'500:3,404:1' strings from several runs -> ['404:1', '500:3'] summed per status."""
    total = {}
    for v in values:
        if not v or v == "-":
            continue
        for part in v.split(","):
            code, _, n = part.partition(":")
            total[code] = total.get(code, 0) + int(n or 0)
    return [f"{c}:{n}" for c, n in sorted(total.items())]


def summarize(db, rows, gated):
    out = []
    agg = {}
    for ep, _ in ENDPOINTS:
        rs = [r for r in rows if r.get("endpoint") == ep]
        if not rs:
            continue
        agg[ep] = {
            "runs": len(rs),
            "rps": statistics.median(float(r["rps"]) for r in rs),
            "p50": statistics.median(float(r["p50_ms"]) for r in rs),
            "p99": statistics.median(float(r["p99_ms"]) for r in rs),
            "rps_all": [float(r["rps"]) for r in rs],
            # The Lua count (every status outside 2xx) and wrk's own (status > 399): take the larger.
            "non2xx": sum(max(int(r["non2xx"]), int(r.get("wrk_non2xx3xx", 0))) for r in rs),
            "errors": sum(int(r["errors"]) for r in rs),
            "statuses": merge_statuses(r.get("statuses", "-") for r in rs),
        }
    label = "targets (gating)" if gated else "targets (informational only)"
    out.append(f"=== {db} ===")
    out.append(
        f"{'endpoint':<32} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8}  runs (req/s each)"
    )
    for ep, title in ENDPOINTS:
        a = agg.get(ep)
        if a is None:
            out.append(f"{title:<32} {'(no result)':>10}")
            continue
        each = ", ".join(f"{x:.0f}" for x in a["rps_all"])
        extra = f"  statuses {' '.join(a['statuses'])}" if a["statuses"] else ""
        out.append(
            f"{title:<32} {a['rps']:>10.1f} {a['p50']:>8.2f} {a['p99']:>8.2f} {a['non2xx']:>8d} {a['errors']:>8d}  {a['runs']} ({each}){extra}"
        )

    checks = []

    def tainted(*eps):
        """Speed of failing requests proves nothing: such checks fail, saying why."""
        bad = sum(agg[e]["non2xx"] for e in eps if e in agg)
        return f"; not meaningful: {bad} non-2xx" if bad else ""

    h, g = agg.get("healthz"), agg.get("get_org")
    if h and g and h["rps"] > 0:
        ratio = g["rps"] / h["rps"]
        out.append(f"GET org / healthz req/s ratio: {ratio:.3f}")
        why = tainted("healthz", "get_org")
        checks.append((f"GET org >= {GET_RATIO_MIN} x healthz (ratio {ratio:.3f}{why})", ratio >= GET_RATIO_MIN and not why))
    else:
        out.append("GET org / healthz req/s ratio: n/a")
        checks.append((f"GET org >= {GET_RATIO_MIN} x healthz (missing results)", False))
    for ep, name in (("patch_org", "PATCH"), ("post_org", "POST")):
        a = agg.get(ep)
        if a is None:
            checks.append((f"{name} results present", False))
            continue
        why = tainted(ep)
        checks.append((f"{name} >= {WRITE_RPS_MIN:.0f} req/s ({a['rps']:.0f}{why})", a["rps"] >= WRITE_RPS_MIN and not why))
        checks.append((f"{name} p99 < {WRITE_P99_MAX_MS:.0f} ms ({a['p99']:.2f}{why})", a["p99"] < WRITE_P99_MAX_MS and not why))
    non = sum(a["non2xx"] for a in agg.values())
    err = sum(a["errors"] for a in agg.values())
    checks.append((f"no non-2xx responses ({non})", non == 0))
    checks.append((f"no socket errors ({err})", err == 0))
    ok = all(p for _, p in checks)
    out.append(f"{label}:")
    for text, passed in checks:
        out.append(f"  [{'PASS' if passed else 'FAIL'}] {text}")
    verdict = "PASS" if ok else "FAIL"
    out.append(f"{db}: {verdict}" + ("" if gated else " (informational)"))
    return ok, out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--db", action="append", help="only this database (repeatable)")
    p.add_argument("--gate", action="append", help="databases whose targets decide the exit status (default: sqlite)")
    args = p.parse_args()
    gates = set(args.gate or ["sqlite"])
    rows = parse(args.results)
    dbs = []
    for r in rows:
        if r.get("db") not in dbs:
            dbs.append(r.get("db"))
    if args.db:
        dbs = [d for d in dbs if d in args.db]
    if not dbs:
        print("summarize: no RESULT lines" + (f" for {', '.join(args.db)}" if args.db else ""), file=sys.stderr)
        return 1
    failed = False
    for i, db in enumerate(dbs):
        gated = db in gates
        ok, lines = summarize(db, [r for r in rows if r.get("db") == db], gated)
        if i:
            print()
        print("\n".join(lines))
        if gated and not ok:
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
