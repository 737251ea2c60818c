#!/usr/bin/env python3
"""Summarize the RESULT lines written by the wrk scripts (bench/lua/common.lua).

    python3 bench/summarize.py RESULTS_FILE [--db DB] [--gate sqlite] [--people-gate sqlite
        --people-gate postgres] [--compat-gate sqlite --compat-gate postgres] [--wallet-gate sqlite]
        [--avatar-gate sqlite] [--limits-gate sqlite] [--overall]

For each database (or only --db): the median req/s, p50 and p99 over the runs of each
endpoint, the summed non-2xx responses and socket errors, and PASS/FAIL against the targets:

- organizations (the orgs scenario): the GET-org / healthz ratio, PATCH and POST req/s and p99,
  no non-2xx, no socket errors. They decide the verdict only for the --gate database(s)
  (default: sqlite); for the others they are informational.
- member pages (the people scenario): p99 of GET .../members?page=1 and ?page=5000
  (per_page=15) under 10 ms, no non-2xx, no socket errors. They decide the verdict for the
  --people-gate database(s) (default: sqlite and postgres).
- compatible APIs (the compat scenario, issue 4): p99 of POST /api/v2/updateOrganization (three
  settings) and of PATCH /v1/orgs/{id}/properties under 10 ms, no non-2xx, no socket errors, and
  every 2xx answer a full success (the Lua scripts count the others as "unexpected"). They decide
  the verdict for the --compat-gate database(s) (default: sqlite and postgres). The paced runs
  of the same endpoints (BENCH_PACED; *_paced) are reported with their p99, the rate offered and
  how many requests wrk sent more than 1 ms behind their turn; informational, never gating.
- wallet (the wallet scenario, issue 5): charges against one organization, each with its own
  Idempotency-Key: at least 3,000 req/s with p99 under 20 ms, no non-2xx, no socket errors, every
  2xx a success. They decide the verdict for the --wallet-gate database(s) (default: sqlite).
- wallet ledger (the wallet scenario): after every run the balance equals the ledger's sum
  (credits - charges; and the SMS points), and the ledger gained one charge of 1 per 2xx answer
  (plus at most the requests wrk left in flight when it stopped). bench/wallet.py check decides
  it per run (ledger=pass|fail on the RESULT line). Gating on every database: a mismatch is lost
  or invented money, not a slow machine.
- avatars (the avatars scenario, issue 8): uploads of a 1-megapixel JPEG (32 connections):
  uploads/s, p50, p99 reported, the server's peak RSS (sampled every 100 ms during each run; the
  highest run counts) under 200 MB, no non-2xx, no socket errors, every 2xx a success; uploads of
  a PNG decompression bomb: peak RSS under 200 MB and flat (growing by less than 16 MB during a
  run); a GET of the stored 512-pixel avatar from disk at least 10,000 req/s, no non-2xx, no
  socket errors. They decide the verdict for the --avatar-gate database(s) (default: sqlite).
- the bomb's refusals (the avatars scenario): every answer to the bomb a 422 naming
  image_too_large (avatar_bomb.lua counts the others as non422). Gating on every database: a bomb
  that gets through is a hole, not a slow machine.
- rate limits (the limits scenario; the rate-limit issue's goals): GET /api/organizations/{id}
  of one organization with its own key, on three servers: rate limits off, the limiter in memory,
  the limiter in Redis (get_org_key_off, _memory, _redis). The p50 the limiter adds to off's
  (medians of the runs): under 0.1 ms in memory, under 1 ms with Redis; no non-2xx (the
  organization's rateLimit is the most allowed: a 429 is a bug), no socket errors, and in Redis no
  request let through because Redis could not be asked (failed_open). The p99s and the req/s
  against off's are reported too. They decide the verdict for the --limits-gate database(s)
  (default: sqlite).
- login (the people scenario) has no target: req/s, p50, p99 and non-2xx are reported, with what
  a login costs.

With --overall, a last OVERALL line sums up every gating check. Exit status: 1 if a gating
check fails, else 0.
"""
import argparse
import statistics
import sys

ENDPOINTS = [
    ("healthz", "GET /healthz"),
    ("get_org", "GET /api/organizations/{id}"),
    ("access", "GET /api/organizations/{id}/access"),
    ("patch_org", "PATCH /api/organizations/{id}"),
    ("post_org", "POST /api/organizations"),
]
MEMBER_ENDPOINTS = [
    ("members_p1", "GET …/members?page=1&per_page=15"),
    ("members_p5000", "GET …/members?page=5000&per_page=15"),
]
COMPAT_ENDPOINTS = [
    ("v2_update_org", "POST /api/v2/updateOrganization"),
    ("v1_properties", "PATCH /v1/orgs/{id}/properties"),
]
# The same, paced (BENCH_PACED): each at a fraction of the req/s its run just reached.
COMPAT_PACED_ENDPOINTS = [
    ("v2_update_org_paced", "  the same, paced"),
    ("v1_properties_paced", "  the same, paced"),
]
WALLET_ENDPOINTS = [
    ("charge", "POST /api/admin/organizations/{id}/charge"),
]
AVATAR_ENDPOINTS = [
    ("avatar_upload", "POST …/upload-avatar (1 MP JPEG)"),
    ("avatar_bomb", "POST …/upload-avatar (PNG bomb)"),
    ("avatar_get", "GET /avatars/{org}/{hash}-512.*"),
]
# The limits scenario: one organization's GET with its own key, one server per rate limiter.
LIMITS_MODES = [
    ("off", "rate limits off"),
    ("memory", "limiter in memory"),
    ("redis", "limiter in Redis"),
]
LIMITS_ENDPOINTS = [(f"get_org_key_{m}", f"GET org, org key, {t}") for m, t in LIMITS_MODES]
LOGIN_ENDPOINTS = [
    ("login_low", "POST /api/auth/login"),
    ("login", "POST /api/auth/login"),
]
# Targets.
GET_RATIO_MIN = 0.5  # GET org rps >= 0.5 x healthz rps
ACCESS_RATIO_MIN = 0.7  # the access check (issue 23): rps >= 0.7 x healthz rps
ACCESS_P99_MAX_MS = 5.0  # and p99 < 5 ms at 32 connections
WRITE_RPS_MIN = 4000.0  # PATCH and POST, each
WRITE_P99_MAX_MS = 20.0  # PATCH and POST, each
MEMBERS_P99_MAX_MS = 10.0  # each member page
COMPAT_P99_MAX_MS = 10.0  # each compatible-API endpoint
WALLET_RPS_MIN = 3000.0  # charges against one organization
WALLET_P99_MAX_MS = 20.0
AVATAR_RSS_MAX_MB = 200.0  # peak RSS during an upload run, JPEG or bomb
AVATAR_BOMB_RSS_GROWTH_MAX_MB = 16.0  # "flat": peak - start of a bomb run
AVATAR_GET_RPS_MIN = 10000.0  # GET of a stored avatar from disk
# What the rate limiter may add to the p50 of GET org (one organization, its key) against limits off.
LIMITS_ADDED_P50_MAX_MS = {"memory": 0.1, "redis": 1.0}
# The server's argon2id parameters (for the login cost line).
ARGON2_MIB = 19


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


def aggregate(rows, ep):
    rs = [r for r in rows if r.get("endpoint") == ep]
    if not rs:
        return None
    return {
        "runs": len(rs),
        "rps": statistics.median(float(r["rps"]) for r in rs),
        "p50": statistics.median(float(r["p50_ms"]) for r in rs),
        "p99": statistics.median(float(r["p99_ms"]) for r in rs),
        "rps_all": [float(r["rps"]) for r in rs],
        # The Lua count (every status outside 2xx) and wrk's own (status > 399): take the larger.
        "non2xx": sum(max(int(r["non2xx"]), int(r.get("wrk_non2xx3xx", 0))) for r in rs),
        "errors": sum(int(r["errors"]) for r in rs),
        # 2xx answers whose body lacked what the script expects (e.g. a setting that failed).
        "unexpected": sum(int(r.get("unexpected", 0) or 0) for r in rs),
        "statuses": merge_statuses(r.get("statuses", "-") for r in rs),
        # Answers per second that were 2xx (for login, where fast 429s/503s inflate req/s).
        "ok_rps": statistics.median(ok_rps(r) for r in rs),
        "connections": rs[-1].get("connections"),
        "members": rs[-1].get("members"),
        "children": rs[-1].get("children"),
        "cores": rs[-1].get("cores"),
        "topups": rs[-1].get("topups"),
        # The wallet ledger check of each run (bench/wallet.py check), in run order.
        "ledger": [r for r in rs if "ledger" in r],
        # The avatar endpoints: the server's RSS during each run (bench/avatars.py rss), MiB.
        "rss_peak": [float(r["rss_peak_mb"]) for r in rs if "rss_peak_mb" in r],
        "rss_start": [float(r["rss_start_mb"]) for r in rs if "rss_start_mb" in r],
        "threads_peak": [int(r["threads_peak"]) for r in rs if "threads_peak" in r],
        # avatar_bomb.lua: answers that were not a 422 image_too_large (None: not counted).
        "non422": sum(int(r["non422"]) for r in rs if "non422" in r) if any("non422" in r for r in rs) else None,
        "requests": sum(int(r.get("requests", 0) or 0) for r in rs),
        "body_bytes": rs[-1].get("body_bytes"),
        "photo_bytes": rs[-1].get("photo_bytes"),
        "bomb_bytes": rs[-1].get("bomb_bytes"),
        # Paced runs (common.lua): the rate offered, and the requests sent more than 1 ms after
        # their turn (wrk measures from the send, so that wait is not in the latency).
        "rate": statistics.median(float(r["rate"]) for r in rs) if all("rate" in r for r in rs) else None,
        "late": sum(int(r.get("late", 0) or 0) for r in rs),
        "late_max": max((float(r.get("late_max_ms", 0) or 0) for r in rs), default=0.0),
        # An upper bound of the p99 of lateness + latency: p99.5 of each, summed (common.lua).
        "p99_bound": statistics.median(float(r["p99_bound_ms"]) for r in rs) if all("p99_bound_ms" in r for r in rs) else None,
        # The limits scenario: requests the limiter let through because Redis could not be asked,
        # since the server started (run.sh reads /metrics after each run; None: not counted).
        "failed_open": max((int(r["failed_open"]) for r in rs if r.get("failed_open", "-").isdigit()), default=None),
        "rate_limit": rs[-1].get("rate_limit"),
    }


def ok_rps(r):
    n = int(r.get("requests", 0) or 0)
    bad = max(int(r["non2xx"]), int(r.get("wrk_non2xx3xx", 0)))
    return float(r["rps"]) * (n - bad) / n if n > 0 else 0.0


def table_row(title, a, width):
    if a is None:
        return f"{title:<{width}} {'(no result)':>10}"
    each = ", ".join(f"{x:.0f}" for x in a["rps_all"])
    extra = f"  statuses {' '.join(a['statuses'])}" if a["statuses"] else ""
    if a["unexpected"]:
        extra += f"  unexpected 2xx bodies {a['unexpected']}"
    return (
        f"{title:<{width}} {a['rps']:>10.1f} {a['p50']:>8.2f} {a['p99']:>8.2f} {a['non2xx']:>8d} {a['errors']:>8d}"
        f"  {a['runs']} ({each}){extra}"
    )


def table_header(width):
    return f"{'endpoint':<{width}} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8}  runs (req/s each)"


def org_checks(agg, out):
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
    a = agg.get("access")
    if h and a and h["rps"] > 0:
        ratio = a["rps"] / h["rps"]
        why = tainted("healthz", "access")
        checks.append((f"access check >= {ACCESS_RATIO_MIN} x healthz (ratio {ratio:.3f}{why})", ratio >= ACCESS_RATIO_MIN and not why))
        checks.append((f"access check p99 < {ACCESS_P99_MAX_MS:.0f} ms ({a['p99']:.2f}{why})", a["p99"] < ACCESS_P99_MAX_MS and not why))
    for ep, name in (("patch_org", "PATCH"), ("post_org", "POST")):
        a = agg.get(ep)
        if a is None:
            checks.append((f"{name} results present", False))
            continue
        why = tainted(ep)
        checks.append((f"{name} >= {WRITE_RPS_MIN:.0f} req/s ({a['rps']:.0f}{why})", a["rps"] >= WRITE_RPS_MIN and not why))
        checks.append((f"{name} p99 < {WRITE_P99_MAX_MS:.0f} ms ({a['p99']:.2f}{why})", a["p99"] < WRITE_P99_MAX_MS and not why))
    eps = [ep for ep, _ in ENDPOINTS if ep in agg]
    non = sum(agg[e]["non2xx"] for e in eps)
    err = sum(agg[e]["errors"] for e in eps)
    checks.append((f"no non-2xx responses ({non})", non == 0))
    checks.append((f"no socket errors ({err})", err == 0))
    return checks


def member_checks(agg):
    checks = []
    for ep, title in MEMBER_ENDPOINTS:
        a = agg.get(ep)
        page = ep.removeprefix("members_p")
        if a is None:
            checks.append((f"page {page} results present", False))
            continue
        why = f"; not meaningful: {a['non2xx']} non-2xx" if a["non2xx"] else ""
        conns = f", {a['connections']} connections" if a["connections"] else ""
        checks.append(
            (f"page {page} p99 < {MEMBERS_P99_MAX_MS:.0f} ms ({a['p99']:.2f}{conns}{why})", a["p99"] < MEMBERS_P99_MAX_MS and not why)
        )
    eps = [ep for ep, _ in MEMBER_ENDPOINTS if ep in agg]
    non = sum(agg[e]["non2xx"] for e in eps)
    err = sum(agg[e]["errors"] for e in eps)
    checks.append((f"no non-2xx responses ({non})", non == 0))
    checks.append((f"no socket errors ({err})", err == 0))
    return checks


def compat_checks(agg):
    checks = []
    for ep, title in COMPAT_ENDPOINTS:
        a = agg.get(ep)
        name = title
        if a is None:
            checks.append((f"{name} results present", False))
            continue
        bad = []
        if a["non2xx"]:
            bad.append(f"{a['non2xx']} non-2xx")
        if a["unexpected"]:
            bad.append(f"{a['unexpected']} unexpected 2xx bodies")
        why = f"; not meaningful: {', '.join(bad)}" if bad else ""
        conns = f", {a['connections']} connections" if a["connections"] else ""
        checks.append(
            (f"{name} p99 < {COMPAT_P99_MAX_MS:.0f} ms ({a['p99']:.2f}{conns}{why})", a["p99"] < COMPAT_P99_MAX_MS and not why)
        )
    eps = [ep for ep, _ in COMPAT_ENDPOINTS + COMPAT_PACED_ENDPOINTS if ep in agg]
    non = sum(agg[e]["non2xx"] for e in eps)
    odd = sum(agg[e]["unexpected"] for e in eps)
    err = sum(agg[e]["errors"] for e in eps)
    checks.append((f"no non-2xx responses ({non})", non == 0))
    checks.append((f"every 2xx a full success: all settings updated, errors null ({odd} not)", odd == 0))
    checks.append((f"no socket errors ({err})", err == 0))
    return checks


def paced_checks(agg):
    """The compat endpoints at a load short of saturation. wrk measures from the send, so a
    request that went late (every connection of its thread busy at its turn) waited unmeasured:
    the check is on an upper bound of the p99 of lateness plus latency (common.lua), with wrk's
    own p99 and the late requests shown."""
    checks = []
    for (ep, title), (pep, _) in zip(COMPAT_ENDPOINTS, COMPAT_PACED_ENDPOINTS):
        a = agg.get(pep)
        if a is None:
            continue
        share = a["late"] / a["requests"] if a["requests"] else 0.0
        bound = a["p99_bound"] if a["p99_bound"] is not None else float("inf")
        checks.append((
            f"{title} at {a['rate']:.0f} req/s offered ({a['rps']:.0f} answered): p99 with the wait of late "
            f"requests < {COMPAT_P99_MAX_MS:.0f} ms (at most {bound:.2f}; wrk's p99 {a['p99']:.2f}; "
            f"{100 * share:.2f}% sent >1 ms late, at most {a['late_max']:.1f} ms)",
            bound < COMPAT_P99_MAX_MS and a["non2xx"] == 0 and a["unexpected"] == 0,
        ))
    return checks


def wallet_checks(agg):
    checks = []
    for ep, title in WALLET_ENDPOINTS:
        a = agg.get(ep)
        if a is None:
            checks.append((f"{title} results present", False))
            continue
        bad = []
        if a["non2xx"]:
            bad.append(f"{a['non2xx']} non-2xx")
        if a["unexpected"]:
            bad.append(f"{a['unexpected']} 2xx without success true")
        why = f"; not meaningful: {', '.join(bad)}" if bad else ""
        conns = f", {a['connections']} connections" if a["connections"] else ""
        checks.append((f"charges >= {WALLET_RPS_MIN:.0f} req/s ({a['rps']:.0f}{conns}{why})", a["rps"] >= WALLET_RPS_MIN and not why))
        checks.append((f"charge p99 < {WALLET_P99_MAX_MS:.0f} ms ({a['p99']:.2f}{why})", a["p99"] < WALLET_P99_MAX_MS and not why))
    eps = [ep for ep, _ in WALLET_ENDPOINTS if ep in agg]
    non = sum(agg[e]["non2xx"] for e in eps)
    odd = sum(agg[e]["unexpected"] for e in eps)
    err = sum(agg[e]["errors"] for e in eps)
    statuses = sorted(set(s for e in eps for s in agg[e]["statuses"]))
    st = f": {' '.join(statuses)}; 402 = the balance ran out" if any(x.startswith("402:") for x in statuses) else (
        f": {' '.join(statuses)}" if statuses else "")
    checks.append((f"no non-2xx responses ({non}{st})", non == 0))
    checks.append((f"every 2xx a success (success true; {odd} not)", odd == 0))
    checks.append((f"no socket errors ({err})", err == 0))
    return checks


def ledger_checks(agg):
    """One check per recorded run: bench/wallet.py's verdict, with its figures."""
    checks = []
    for ep, _ in WALLET_ENDPOINTS:
        a = agg.get(ep)
        if a is None:
            continue
        if len(a["ledger"]) < a["runs"]:
            checks.append((f"a ledger check after every run ({len(a['ledger'])} of {a['runs']})", False))
        for i, r in enumerate(a["ledger"], 1):
            try:
                bal, led = int(r["balance"]), int(r["ledger_balance"])
                new, ok2xx, fly = int(r["new_entries"]), int(r["ok2xx"]), int(r["in_flight"])
                sms, led_sms = int(r["sms"]), int(r["ledger_sms"])
                amount = int(r["new_amount"])
            except (KeyError, ValueError):
                checks.append((f"run {i}: incomplete ledger fields", False))
                continue
            ok = r.get("ledger") == "pass"
            late = new - ok2xx
            if late == 0:
                extra = "exactly"
            elif 0 < late <= fly:
                extra = f"{late} of the at most {fly} left in flight committed after wrk stopped"
            else:
                extra = f"MISMATCH: {late:+d}, with at most {fly} in flight"
            checks.append((
                f"run {i}: balance {bal:,} (API) vs ledger {int(r['credits']):,} - {int(r['charges']):,} = {led:,} "
                f"({r.get('via', '?')}): {'equal' if bal == led else 'NOT EQUAL'}; SMS points {sms:,} vs {led_sms:,}"
                f"{'' if sms == led_sms else ' NOT EQUAL'}; charge entries +{new:,} for {ok2xx:,} 2xx answers ({extra}), "
                f"{amount:,} charged{'' if amount == new else ' NOT 1 EACH'}",
                ok,
            ))
    return checks


def avatar_lines(agg, width):
    """The avatar table: the bomb's column is its non-422 count, and each row has its RSS."""
    out = [
        f"{'endpoint':<{width}} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'bad':>8} {'sock err':>8} "
        f"{'RSS MB':>15}  runs (req/s each)"
    ]
    for ep, title in AVATAR_ENDPOINTS:
        a = agg.get(ep)
        if a is None:
            out.append(f"{title:<{width}} {'(no result)':>10}")
            continue
        bad = a["non422"] if ep == "avatar_bomb" else a["non2xx"]
        bad_s = "-" if bad is None else str(bad)
        if a["rss_peak"]:
            rss = f"{statistics.median(a['rss_start']):.0f} -> {statistics.median(a['rss_peak']):.0f}"
        else:
            rss = "-"
        each = ", ".join(f"{x:.0f}" for x in a["rps_all"])
        extra = f"  statuses {' '.join(a['statuses'])}" if a["statuses"] else ""
        if a["unexpected"]:
            extra += f"  unexpected 2xx bodies {a['unexpected']}"
        out.append(
            f"{title:<{width}} {a['rps']:>10.1f} {a['p50']:>8.2f} {a['p99']:>8.2f} {bad_s:>8} {a['errors']:>8d} {rss:>15}"
            f"  {a['runs']} ({each}){extra}"
        )
    out.append("  bad: non-2xx, and for the bomb every answer that was not a 422 image_too_large; "
               "RSS: the server's VmRSS at the start of a run -> its peak during the run (MiB, median of the runs)")
    sizes = []
    up, bomb, get = agg.get("avatar_upload"), agg.get("avatar_bomb"), agg.get("avatar_get")
    if up and up["photo_bytes"]:
        sizes.append(f"JPEG {int(up['photo_bytes']):,} bytes")
    if bomb and bomb["bomb_bytes"]:
        sizes.append(f"bomb {int(bomb['bomb_bytes']):,} bytes")
    if get and get["body_bytes"]:
        b = int(get["body_bytes"])
        sizes.append(f"the 512-pixel file served {b:,} bytes ({b * get['rps'] / 1e6:,.0f} MB/s at the median req/s)")
    if sizes:
        out.append("  " + "; ".join(sizes))
    short = {"avatar_upload": "JPEG uploads", "avatar_bomb": "bomb uploads", "avatar_get": "GET"}
    threads = [f"{short[ep]} {max(agg[ep]['threads_peak'])}" for ep, _ in AVATAR_ENDPOINTS if ep in agg and agg[ep]["threads_peak"]]
    if threads:
        out.append("  the server's threads at most (its blocking pool included): " + "; ".join(threads))
    return out


def avatar_checks(agg):
    checks = []

    def why(a, with_status=True):
        bad = []
        if with_status and a["non2xx"]:
            bad.append(f"{a['non2xx']} non-2xx")
        if a["unexpected"]:
            bad.append(f"{a['unexpected']} 2xx without success true")
        if a["errors"]:
            bad.append(f"{a['errors']} socket errors")
        return f"; not meaningful: {', '.join(bad)}" if bad else ""

    up = agg.get("avatar_upload")
    if up is None:
        checks.append(("JPEG upload results present", False))
    else:
        w = why(up)
        peak = max(up["rss_peak"], default=None)
        checks.append((
            f"JPEG uploads: {up['rps']:.1f} uploads/s, p50 {up['p50']:.0f} ms, p99 {up['p99']:.0f} ms "
            f"({up['connections']} connections; reported, no target){w}",
            not w,
        ))
        if peak is None:
            checks.append(("JPEG uploads: peak RSS measured", False))
        else:
            checks.append((
                f"JPEG uploads: peak RSS < {AVATAR_RSS_MAX_MB:.0f} MB (highest run {peak:.1f}, median "
                f"{statistics.median(up['rss_peak']):.1f})",
                peak < AVATAR_RSS_MAX_MB,
            ))
    bomb = agg.get("avatar_bomb")
    if bomb is None:
        checks.append(("bomb upload results present", False))
    else:
        peak = max(bomb["rss_peak"], default=None)
        if peak is None:
            checks.append(("bomb uploads: peak RSS measured", False))
        else:
            growth = max((p - s for p, s in zip(bomb["rss_peak"], bomb["rss_start"])), default=0.0)
            checks.append((
                f"bomb uploads: peak RSS < {AVATAR_RSS_MAX_MB:.0f} MB (highest run {peak:.1f})",
                peak < AVATAR_RSS_MAX_MB,
            ))
            checks.append((
                f"bomb uploads: RSS flat, growing < {AVATAR_BOMB_RSS_GROWTH_MAX_MB:.0f} MB during a run "
                f"(at most {growth:+.1f})",
                growth < AVATAR_BOMB_RSS_GROWTH_MAX_MB,
            ))
        checks.append((
            f"bomb uploads: {bomb['rps']:.1f} req/s, p99 {bomb['p99']:.1f} ms; no socket errors ({bomb['errors']})",
            bomb["errors"] == 0,
        ))
    get = agg.get("avatar_get")
    if get is None:
        checks.append(("avatar GET results present", False))
    else:
        w = why(get)
        checks.append((
            f"avatar GET >= {AVATAR_GET_RPS_MIN:,.0f} req/s ({get['rps']:,.0f}, p50 {get['p50']:.2f} ms, "
            f"p99 {get['p99']:.2f} ms{w})",
            get["rps"] >= AVATAR_GET_RPS_MIN and not w,
        ))
    return checks


def bomb_checks(agg):
    bomb = agg.get("avatar_bomb")
    if bomb is None:
        return []
    if bomb["non422"] is None:
        return [("every answer to the bomb a 422 (not counted: no non422 on the RESULT lines)", False)]
    st = f"; statuses outside 2xx: {' '.join(bomb['statuses'])}" if bomb["statuses"] else ""
    return [(
        f"every answer to the bomb a 422 image_too_large ({bomb['requests'] - bomb['non422']:,} of "
        f"{bomb['requests']:,}; {bomb['non422']} not{st})",
        bomb["non422"] == 0 and bomb["requests"] > 0,
    )]


def limits_checks(agg, out):
    """The limits scenario: each limiter's p50 and p99 against rate limits off (lines in out), and
    the goals on the p50 the limiter adds. At 32 connections a p50 is mostly queueing, so what the
    limiter adds to it is roughly its server time a request, times the requests queued ahead."""
    checks = []
    off = agg.get("get_org_key_off")
    present = [(m, t, agg[f"get_org_key_{m}"]) for m, t in LIMITS_MODES if f"get_org_key_{m}" in agg]
    if present:
        tw = max(len(t) for _, t, _ in present)
        a0 = present[0][2]
        conns = f", {a0['connections']} connections" if a0["connections"] else ""
        rl = f" (rateLimit {int(a0['rate_limit']):,})" if a0["rate_limit"] else ""
        out.append(f"rate limits: GET org of one organization{rl} with its key{conns}; medians, ms:")
    for m, t, a in present:
        line = f"  {t:<{tw}}  p50 {a['p50']:.3f}"
        if off is not None and m != "off":
            line += f" ({a['p50'] - off['p50']:+.3f})"
        line += f"  p99 {a['p99']:.3f}"
        if off is not None and m != "off":
            line += f" ({a['p99'] - off['p99']:+.3f})"
        line += f"  {a['rps']:,.0f} req/s"
        if off is not None and m != "off" and off["rps"] > 0:
            line += f" ({a['rps'] / off['rps']:.2f} x off)"
        out.append(line)
    if off is not None and len(present) > 1:
        out.append("  (in brackets: what the limiter adds to off's p50 and p99, and its req/s as a share of off's, for information)")

    def tainted(*eps):
        """Speed of failing requests proves nothing: such checks fail, saying why."""
        bad = []
        non = sum(agg[e]["non2xx"] for e in eps if e in agg)
        err = sum(agg[e]["errors"] for e in eps if e in agg)
        if non:
            bad.append(f"{non} non-2xx")
        if err:
            bad.append(f"{err} socket errors")
        fo = agg.get("get_org_key_redis", {}).get("failed_open") if "get_org_key_redis" in eps else None
        if fo:
            bad.append(f"{fo} requests let through without Redis")
        return f"; not meaningful: {', '.join(bad)}" if bad else ""

    for m, t in LIMITS_MODES:
        if m == "off":
            continue
        ep = f"get_org_key_{m}"
        limit = LIMITS_ADDED_P50_MAX_MS[m]
        a = agg.get(ep)
        if a is None:
            checks.append((f"{t}: results present (is {m} in BENCH_LIMITERS?)", False))
            continue
        if off is None:
            checks.append((f"{t} adds < {limit:g} ms to p50 (no rate-limits-off run to compare with: keep off in BENCH_LIMITERS)", False))
            continue
        added = a["p50"] - off["p50"]
        why = tainted("get_org_key_off", ep)
        checks.append((
            f"{t} adds < {limit:g} ms to p50 ({added:+.3f}: {a['p50']:.3f} vs {off['p50']:.3f} off{why})",
            added < limit and not why,
        ))
    r = agg.get("get_org_key_redis")
    if r is not None:
        fo = r["failed_open"]
        if fo is None:
            checks.append(("limiter in Redis: Redis asked for every request (not counted: no failed_open on the RESULT lines)", False))
        else:
            checks.append((f"limiter in Redis: Redis asked for every request ({fo} let through failing open)", fo == 0))
    eps = [ep for ep, _ in LIMITS_ENDPOINTS if ep in agg]
    non = sum(agg[e]["non2xx"] for e in eps)
    err = sum(agg[e]["errors"] for e in eps)
    statuses = sorted(set(s for e in eps for s in agg[e]["statuses"]))
    st = f": {' '.join(statuses)}" if statuses else ""
    if any(x.startswith("429:") for x in statuses):
        st += "; 429 = refused by the limiter, which the rateLimit set should never do"
    checks.append((f"no non-2xx responses ({non}{st})", non == 0))
    checks.append((f"no socket errors ({err})", err == 0))
    return checks


def login_lines(agg, width):
    """Login: no target. The table rows, and what a login costs."""
    out = [table_header(width)]
    for ep, title in LOGIN_ENDPOINTS:
        a = agg.get(ep)
        if a is None:
            continue
        c = f" ({a['connections']} conns)" if a["connections"] else ""
        out.append(table_row(title + c, a, width))
    for ep, _ in LOGIN_ENDPOINTS:
        a = agg.get(ep)
        if a is None:
            continue
        c = f"{a['connections']} connections" if a["connections"] else ep
        if a["non2xx"]:
            out.append(
                f"  {c}: {a['non2xx']} non-2xx ({' '.join(a['statuses']) or 'status > 399'}), so only "
                f"{a['ok_rps']:.1f} successful logins/s of the {a['rps']:.1f} req/s; "
                "503 = the hashing queue was full, 429 = the login throttle (per account, per client address); "
                "its p50 and p99 include these answers"
            )
        if a["errors"]:
            out.append(f"  {c}: {a['errors']} socket errors (timeouts after 5 s count here)")
    # Hashing is the bound: at most max(1, cores - 1) hashes run at once, so with the queue never
    # empty, each login holds one hashing slot for slots / (logins per second).
    # Only from runs with nothing but 2xx: answering a flood of fast 429s or 503s takes CPU too.
    best = max(
        (agg[ep] for ep, _ in LOGIN_ENDPOINTS if ep in agg and not agg[ep]["non2xx"]), key=lambda a: a["ok_rps"], default=None
    )
    if best is None:
        out.append("  cost: n/a (no login run answered only 2xx; the lower connection count, BENCH_LOGIN_LOW_CONNECTIONS, should)")
    elif best["ok_rps"] > 0:
        try:
            cores = int(best["cores"])
        except (TypeError, ValueError):
            cores = None
        if cores:
            slots = max(1, cores - 1)
            ms = slots * 1000.0 / best["ok_rps"]
            out.append(
                f"  cost: about {ms:.0f} ms of one core per login (argon2id m={ARGON2_MIB} MiB t=2 p=1, plus the "
                f"session write), from {best['ok_rps']:.1f} successful logins/s with {slots} hashing slot(s) of {cores} cores busy; "
                f"{ARGON2_MIB} MiB of memory per login while it hashes"
            )
        else:
            out.append(f"  cost: {1000.0 / best['ok_rps']:.0f} ms of server time per login at {best['ok_rps']:.1f} successful logins/s")
        out.append("  latency grows with the connections: each waits for the logins queued ahead of it")
    return out


def summarize(db, rows, gated, people_gated, compat_gated=False, wallet_gated=False, avatar_gated=False, limits_gated=False):
    """(ok, lines, sections): sections is [(name, gating, ok)]; ok covers the gating ones."""
    out = []
    agg = {}
    for ep, _ in (ENDPOINTS + MEMBER_ENDPOINTS + COMPAT_ENDPOINTS + COMPAT_PACED_ENDPOINTS + WALLET_ENDPOINTS + AVATAR_ENDPOINTS
                  + LIMITS_ENDPOINTS + LOGIN_ENDPOINTS):
        a = aggregate(rows, ep)
        if a is not None:
            agg[ep] = a
    has_orgs = any(ep in agg for ep, _ in ENDPOINTS)
    has_members = any(ep in agg for ep, _ in MEMBER_ENDPOINTS)
    has_login = any(ep in agg for ep, _ in LOGIN_ENDPOINTS)
    has_people = has_members or has_login
    has_compat = any(ep in agg for ep, _ in COMPAT_ENDPOINTS)
    has_wallet = any(ep in agg for ep, _ in WALLET_ENDPOINTS)
    has_avatars = any(ep in agg for ep, _ in AVATAR_ENDPOINTS)
    has_limits = any(ep in agg for ep, _ in LIMITS_ENDPOINTS)
    if not has_orgs and not has_people and not has_compat and not has_wallet and not has_avatars and not has_limits:
        has_orgs = True  # no known endpoint at all: fail the organization checks, as before

    titles = (
        ([t for _, t in ENDPOINTS] if has_orgs else [])
        + ([t for _, t in MEMBER_ENDPOINTS] if has_people else [])
        + ([t for _, t in COMPAT_ENDPOINTS] if has_compat else [])
        + ([t for _, t in WALLET_ENDPOINTS] if has_wallet else [])
        + ([t for _, t in AVATAR_ENDPOINTS] if has_avatars else [])
        + ([t for _, t in LIMITS_ENDPOINTS] if has_limits else [])
    )
    width = max([32] + [len(t) + 1 for t in titles if len(t) >= 32])
    out.append(f"=== {db} ===")
    if has_orgs or has_people or has_compat or has_wallet or has_limits:
        out.append(table_header(width))
    if has_orgs:
        for ep, title in ENDPOINTS:
            out.append(table_row(title, agg.get(ep), width))
    if has_people:
        for ep, title in MEMBER_ENDPOINTS:
            out.append(table_row(title, agg.get(ep), width))
    if has_compat:
        for (ep, title), (pep, ptitle) in zip(COMPAT_ENDPOINTS, COMPAT_PACED_ENDPOINTS):
            out.append(table_row(title, agg.get(ep), width))
            if pep in agg:
                out.append(table_row(f"{ptitle} ({agg[pep]['rate']:.0f} req/s offered)", agg[pep], width))
    if has_wallet:
        for ep, title in WALLET_ENDPOINTS:
            out.append(table_row(title, agg.get(ep), width))
    if has_limits:
        for ep, title in LIMITS_ENDPOINTS:
            out.append(table_row(title, agg.get(ep), width))
    if has_avatars:
        out.extend(avatar_lines(agg, width))

    sections = []  # (name, gating, checks)
    if has_orgs:
        sections.append(("organization targets", gated, org_checks(agg, out)))
    if has_people:
        members = next((agg[ep]["members"] for ep, _ in MEMBER_ENDPOINTS if ep in agg and agg[ep]["members"]), None)
        name = "member-page targets" + (f", {int(members):,} members" if members else "")
        sections.append((name, people_gated, member_checks(agg)))
    if has_compat:
        children = next((agg[ep]["children"] for ep, _ in COMPAT_ENDPOINTS if ep in agg and agg[ep]["children"]), None)
        name = "compatible-API targets" + (f", {int(children):,} children of one partner" if children else "")
        sections.append((name, compat_gated, compat_checks(agg)))
        if any(ep in agg for ep, _ in COMPAT_PACED_ENDPOINTS):
            sections.append(("compatible APIs paced short of saturation", False, paced_checks(agg)))
    if has_wallet:
        topups = next((agg[ep]["topups"] for ep, _ in WALLET_ENDPOINTS if ep in agg and agg[ep]["topups"]), None)
        name = "wallet targets, one organization" + (f" topped up {int(topups)} x 100,000,000" if topups else "")
        sections.append((name, wallet_gated, wallet_checks(agg)))
        sections.append(("wallet ledger, balance = ledger sum after each run", True, ledger_checks(agg)))
    if has_avatars:
        sections.append(("avatar targets", avatar_gated, avatar_checks(agg)))
        if "avatar_bomb" in agg:
            sections.append(("bomb refusals, every answer a 422", True, bomb_checks(agg)))
    if has_limits:
        sections.append(("rate-limit targets, one organization with its key", limits_gated, limits_checks(agg, out)))

    results = []
    for name, gating, checks in sections:
        ok = all(p for _, p in checks)
        if len(sections) == 1 and name == "organization targets":
            label = "targets (gating)" if gating else "targets (informational only)"  # as before
        else:
            label = f"{name} ({'gating' if gating else 'informational only'})"
        out.append(f"{label}:")
        for text, passed in checks:
            out.append(f"  [{'PASS' if passed else 'FAIL'}] {text}")
        results.append((name.split(",")[0], gating, ok))

    if has_login:
        out.append("login, argon2-bound (no target; reported only):")
        out.extend("  " + line if not line.startswith("  ") else line for line in login_lines(agg, width))

    gating = [r for r in results if r[1]]
    ok = all(r[2] for r in gating)
    if not gating:
        ok_all = all(r[2] for r in results)
        out.append(f"{db}: {'PASS' if ok_all else 'FAIL'} (informational)")
    else:
        info = [f"{n} {'PASS' if k else 'FAIL'}" for n, g, k in results if not g]
        out.append(f"{db}: {'PASS' if ok else 'FAIL'}" + (f" (informational: {'; '.join(info)})" if info else ""))
    return ok, out, results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--db", action="append", help="only this database (repeatable)")
    p.add_argument("--gate", action="append", help="databases whose organization targets decide the exit status (default: sqlite)")
    p.add_argument(
        "--people-gate", action="append",
        help="databases whose member-page targets decide the exit status (default: sqlite and postgres)",
    )
    p.add_argument(
        "--compat-gate", action="append",
        help="databases whose compatible-API targets decide the exit status (default: sqlite and postgres)",
    )
    p.add_argument(
        "--wallet-gate", action="append",
        help="databases whose wallet targets decide the exit status (default: sqlite; the ledger check gates every database)",
    )
    p.add_argument(
        "--avatar-gate", action="append",
        help="databases whose avatar targets decide the exit status (default: sqlite; the bomb's refusals gate every database)",
    )
    p.add_argument(
        "--limits-gate", action="append",
        help="databases whose rate-limit targets decide the exit status (default: sqlite)",
    )
    p.add_argument("--overall", action="store_true", help="end with an OVERALL line over every gating check")
    args = p.parse_args()
    gates = set(args.gate or ["sqlite"])
    people_gates = set(args.people_gate or ["sqlite", "postgres"])
    compat_gates = set(args.compat_gate or ["sqlite", "postgres"])
    wallet_gates = set(args.wallet_gate or ["sqlite"])
    avatar_gates = set(args.avatar_gate or ["sqlite"])
    limits_gates = set(args.limits_gate or ["sqlite"])
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
    gated_results = []  # (db, section, ok)
    for i, db in enumerate(dbs):
        ok, lines, results = summarize(
            db, [r for r in rows if r.get("db") == db], db in gates, db in people_gates, db in compat_gates,
            db in wallet_gates, db in avatar_gates, db in limits_gates,
        )
        if i:
            print()
        print("\n".join(lines))
        gated_results += [(db, name, k) for name, g, k in results if g]
        if not ok:
            failed = True
    if args.overall:
        print()
        if not gated_results:
            print(
                "OVERALL: n/a (no gating target was measured: organization targets gate "
                f"{', '.join(sorted(gates))}; member-page targets gate {', '.join(sorted(people_gates))}; "
                f"compatible-API targets gate {', '.join(sorted(compat_gates))}; "
                f"wallet targets gate {', '.join(sorted(wallet_gates))}; "
                f"avatar targets gate {', '.join(sorted(avatar_gates))}; "
                f"rate-limit targets gate {', '.join(sorted(limits_gates))})"
            )
        else:
            by_section = {}
            for db, name, k in gated_results:
                by_section.setdefault(name, []).append((db, k))
            if not failed:
                parts = [f"{', '.join(d for d, _ in v)} meet{'s' if len(v) == 1 else ''} the {n}" for n, v in by_section.items()]
                print(f"OVERALL: PASS ({'; '.join(parts)})")
            else:
                missed = [f"{n} on {', '.join(d for d, k in v if not k)}" for n, v in by_section.items() if not all(k for _, k in v)]
                print(f"OVERALL: FAIL (missed: {'; '.join(missed)}; see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
