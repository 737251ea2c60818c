#!/usr/bin/env python3
"""Set up and check the wallet scenario of the benchmark (bench/run.sh, BENCH_SCENARIOS=wallet).

    python3 bench/wallet.py setup --url http://127.0.0.1:PORT --key KEY --seconds 32 \\
        --db sqlite --sqlite-path WORKDIR/orgbase.db --state WORKDIR/wallet.state --out wallet.env
    python3 bench/wallet.py check --url ... --key KEY --org ORG --db postgres --pg-db DB \\
        --state WORKDIR/wallet.state --ok2xx 15978 --in-flight 33

Standard library only (and `psql` for PostgreSQL).

setup, through the API with the platform key:

1. Creates one organization ("Bench Wallet Org", POST /api/organizations).
2. Tops its wallet up (POST /api/admin/organizations/{id}/credit, {"amount": 100000000}, the
   per-entry maximum, each with its own Idempotency-Key) as many times as it takes for
   --max-rps charges of 1 a second during --seconds (the warm-up and every run) not to exhaust
   it: the load can never meet a 402.
3. Checks one charge before any load: POST /api/admin/organizations/{id}/charge with an
   Idempotency-Key and {"amount": 1, "service": "voice"} answers 200 with exactly
   {"success":true,"message":"Charge processed successfully","data":null}; the same key and
   body again answers the same and charges nothing more; the same key with another body is a
   422 and charges nothing; {"amount": 1, "service": "sms", "sms_point": 1} under a new key adds
   one SMS point. Each step is read back with GET /api/organizations/{id}/wallet.
4. Pages through the whole ledger with the API (GET .../wallet/transactions?limit=100, cursor
   after cursor) and requires that it sums to the balance, and that the ledger read with SQL
   (below) agrees with it entry for entry in count and sums: the SQL the checks use is checked.
5. Writes the ledger's charge count and sum to --state (the baseline of the first check) and
   ORG, TOPUPS, BALANCE lines (KEY=VALUE) to --out for run.sh.

check, after each wrk run on the charge endpoint:

1. Waits until the ledger stops growing (requests wrk left in flight when it stopped may still
   be committing), then reads the ledger with SQL straight from the server's database:
   SELECT kind, sum(amount), sum(sms_points), count(*) FROM wallet_entries
   WHERE organization_id = ... GROUP BY kind
   (SQLite: Python's sqlite3 on the server's file; PostgreSQL: psql). With --ledger api it pages
   through GET .../wallet/transactions instead (slow: 100 entries a request).
2. Reads the balances with GET /api/organizations/{id}/wallet.
3. Requires: balance = credits - charges; SMS points = the ledger's SMS points; and the charge
   entries this run added (since --state) between --ok2xx (the 2xx answers wrk counted) and
   --ok2xx + --in-flight (the requests wrk had sent but not seen answered when it stopped: the
   server may commit those after wrk has gone, so an exact count cannot be had from outside), each
   of amount 1.
4. Prints what it found, then one machine line
   LEDGER ledger=pass|fail balance=... ledger_balance=... sms=... ledger_sms=... credits=...
   charges=... entries=... new_entries=... ok2xx=... in_flight=... new_amount=... via=sql|api
   and updates --state. It exits 0 whether the check passed or not (the verdict is in the line);
   non-zero only when it could not check.
"""
import argparse
import http.client
import json
import math
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import uuid

MAX_ENTRY = 100_000_000  # the API's largest amount per entry
CHARGE_ANSWER = {"success": True, "message": "Charge processed successfully", "data": None}
VOICE = {"amount": 1, "service": "voice"}
SMS = {"amount": 1, "service": "sms", "sms_point": 1}


class Failure(Exception):
    pass


class Api:
    def __init__(self, url, key, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise Failure(f"--url must be http://host:port (got {url!r})")
        self.host, self.port, self.base = u.hostname, u.port or 80, u.path.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.conn = None

    def call(self, method, path, body=None, idempotency_key=None):
        """(status, parsed JSON or None, raw bytes), over one keep-alive connection."""
        headers = {"Accept": "application/json", "Authorization": f"Bearer {self.key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, self.base + path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (OSError, http.client.HTTPException) as e:
                self.conn.close()
                self.conn = None
                # A keep-alive connection the server closed meanwhile: once more on a new one, but
                # only for reads (a POST may have been acted on).
                if attempt == 2 or method != "GET":
                    raise Failure(f"{method} {path}: {type(e).__name__}: {e}") from e
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, parsed, raw

    def expect(self, method, path, statuses, body=None, idempotency_key=None):
        status, parsed, raw = self.call(method, path, body, idempotency_key)
        if status not in statuses:
            raise Failure(f"{method} {path} answered {status}: {raw[:500].decode('utf-8', 'replace')}")
        if not isinstance(parsed, dict):
            raise Failure(f"{method} {path} answered {status} without a JSON object")
        return parsed, raw

    def wallet(self, org):
        doc, _ = self.expect("GET", f"/api/organizations/{org}/wallet", (200,))
        try:
            return int(doc["balance"]), int(doc["smsPoints"])
        except (KeyError, TypeError, ValueError) as e:
            raise Failure(f"GET .../wallet: no balance / smsPoints in {json.dumps(doc)[:300]}") from e

    def ledger(self, org):
        """The whole ledger through the API, newest first, 100 a page: {kind: (amount, sms, count)}."""
        sums = {}
        cursor = None
        pages = 0
        seen = set()
        while True:
            path = f"/api/organizations/{org}/wallet/transactions?limit=100"
            if cursor is not None:
                path += "&cursor=" + urllib.parse.quote(cursor, safe="")
            doc, _ = self.expect("GET", path, (200,))
            pages += 1
            rows = doc.get("data")
            if not isinstance(rows, list):
                raise Failure(f"GET .../wallet/transactions: no data list in {json.dumps(doc)[:300]}")
            for r in rows:
                if r.get("id") in seen:
                    raise Failure(f"GET .../wallet/transactions: entry {r.get('id')} on two pages")
                seen.add(r.get("id"))
                kind = r.get("kind")
                if kind not in ("credit", "charge"):
                    raise Failure(f"GET .../wallet/transactions: entry of kind {kind!r}")
                a, s, n = sums.get(kind, (0, 0, 0))
                sums[kind] = (a + int(r["amount"]), s + int(r.get("smsPoints") or 0), n + 1)
            cursor = doc.get("nextCursor")
            if cursor is None:
                return sums, pages
            if not rows:
                raise Failure("GET .../wallet/transactions: an empty page with a nextCursor")


# ---------------------------------------------------------------------------------------------
# The ledger with SQL

LEDGER_SQL = (
    "SELECT kind, coalesce(sum(amount), 0), coalesce(sum(sms_points), 0), count(*) "
    "FROM wallet_entries WHERE organization_id = {org} GROUP BY kind"
)


def ledger_sql(args, org):
    """{kind: (amount, sms_points, count)} read straight from the server's database."""
    org = str(uuid.UUID(org))  # a UUID, so safe to quote into the statement below
    if args.db == "sqlite":
        if not os.path.exists(args.sqlite_path):
            raise Failure(f"no SQLite database at {args.sqlite_path}")
        try:
            # Read only; WAL mode lets this read run beside the server's writer.
            conn = sqlite3.connect(args.sqlite_path, timeout=30)
            try:
                conn.execute("PRAGMA busy_timeout = 30000")
                rows = conn.execute(LEDGER_SQL.format(org="?"), (org,)).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise Failure(f"SQLite ledger read: {e}") from e
    else:
        cmd = args.psql.split() + ["-d", args.pg_db, "-A", "-t", "-F", "|", "-c", LEDGER_SQL.format(org=f"'{org}'")]
        try:
            p = subprocess.run(cmd, text=True, capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Failure(f"psql: {e}") from e
        if p.returncode != 0:
            raise Failure(f"PostgreSQL ledger read (psql status {p.returncode}): {(p.stderr or p.stdout).strip()[:500]}")
        rows = [ln.split("|") for ln in p.stdout.splitlines() if ln.strip()]
    out = {}
    for kind, amount, sms, count in rows:
        out[kind] = (int(amount), int(sms), int(count))
    return out


def read_ledger(args, api, org):
    if args.ledger == "api":
        sums, pages = api.ledger(org)
        return sums, f"api, {pages} pages"
    return ledger_sql(args, org), "sql"


def settled_ledger(args, api, org, wait_s=10.0):
    """The ledger once two reads 0.3 s apart agree (the server may still be committing what wrk
    sent last). SQL only: with --ledger api one read after a pause."""
    if args.ledger == "api":
        time.sleep(0.5)
        return read_ledger(args, api, org)
    deadline = time.monotonic() + wait_s
    last, how = read_ledger(args, api, org)
    while True:
        time.sleep(0.3)
        now, how = read_ledger(args, api, org)
        if now == last or time.monotonic() >= deadline:
            return now, how
        last = now


def totals(sums):
    c_amt, c_sms, c_n = sums.get("credit", (0, 0, 0))
    d_amt, d_sms, d_n = sums.get("charge", (0, 0, 0))
    unknown = sorted(set(sums) - {"credit", "charge"})
    if unknown:
        raise Failure(f"the ledger has entries of kind {unknown}")
    return {
        "credits": c_amt, "credit_entries": c_n, "charges": d_amt, "charge_entries": d_n,
        "balance": c_amt - d_amt, "sms": c_sms + d_sms,
    }


def write_state(path, t):
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"charge_entries": t["charge_entries"], "charges": t["charges"]}, f)


# ---------------------------------------------------------------------------------------------
# setup


def charge(api, org, key, body):
    return api.call("POST", f"/api/admin/organizations/{org}/charge", body, key)


def expect_balance(api, org, want_balance, want_sms, after):
    balance, sms = api.wallet(org)
    if (balance, sms) != (want_balance, want_sms):
        raise Failure(
            f"after {after}, GET .../wallet reads balance {balance}, smsPoints {sms}; expected {want_balance}, {want_sms}"
        )


def setup(args):
    api = Api(args.url, args.key, args.timeout)
    run = secrets.token_hex(4)
    doc, _ = api.expect("POST", "/api/organizations", (201,), {"name": "Bench Wallet Org", "countryCode": "US"})
    org = doc.get("id")
    if not org:
        raise Failure("POST /api/organizations: no id in the answer")

    # Enough for --max-rps charges of 1 a second over --seconds, and never less than one top-up.
    bound = args.max_rps * args.seconds + 1000
    topups = max(1, math.ceil(bound / MAX_ENTRY))
    t0 = time.monotonic()
    for i in range(1, topups + 1):
        doc, _ = api.expect(
            "POST", f"/api/admin/organizations/{org}/credit", (200, 201),
            {"amount": MAX_ENTRY, "reason": f"bench top-up {i}"}, idempotency_key=f"bench-topup-{run}-{i}",
        )
        if doc.get("balance") != i * MAX_ENTRY:
            raise Failure(f"top-up {i}: the answer reads balance {doc.get('balance')!r}, expected {i * MAX_ENTRY}")
    total = topups * MAX_ENTRY
    expect_balance(api, org, total, 0, f"{topups} top-up(s)")
    print(
        f"wallet: organization {org} topped up {topups} time(s) with {MAX_ENTRY:,} = {total:,} minor units in "
        f"{time.monotonic() - t0:.2f} s (enough for {args.max_rps:,} charges of 1 a second over {args.seconds} s)"
    )

    # One checked charge, its replay, the key reused for another body, and an SMS charge.
    key = f"bench-check-{run}-1"
    t0 = time.monotonic()
    status, parsed, raw = charge(api, org, key, VOICE)
    ms = (time.monotonic() - t0) * 1000
    if status != 200 or parsed != CHARGE_ANSWER:
        raise Failure(f"POST .../charge {json.dumps(VOICE)} answered {status}: {raw[:300].decode('utf-8', 'replace')}")
    expect_balance(api, org, total - 1, 0, "one charge of 1")
    print(f"wallet: POST .../charge (voice, 1) answers 200 {raw.decode()} ({ms:.1f} ms); balance down by 1")
    status, parsed, raw = charge(api, org, key, VOICE)
    if status != 200 or parsed != CHARGE_ANSWER:
        raise Failure(f"the same charge again under the same Idempotency-Key answered {status}: {raw[:300].decode('utf-8', 'replace')}")
    expect_balance(api, org, total - 1, 0, "the replay of that charge under its Idempotency-Key")
    status, parsed, raw = charge(api, org, key, {"amount": 2, "service": "voice"})
    if status != 422:
        raise Failure(f"another body under a used Idempotency-Key answered {status} (expected 422): {raw[:300].decode('utf-8', 'replace')}")
    expect_balance(api, org, total - 1, 0, "another body under the used Idempotency-Key")
    print("wallet: the same key and body again answers the same and charges nothing; another body under it is a 422")
    status, parsed, raw = charge(api, org, f"bench-check-{run}-2", SMS)
    if status != 200 or parsed != CHARGE_ANSWER:
        raise Failure(f"POST .../charge {json.dumps(SMS)} answered {status}: {raw[:300].decode('utf-8', 'replace')}")
    expect_balance(api, org, total - 2, 1, "an SMS charge of 1 with one SMS point")
    print("wallet: POST .../charge (sms, 1, sms_point 1) answers 200; balance down by 1, one SMS point")

    # The ledger through the API and through SQL: both must sum to the balance, and agree.
    by_api, pages = api.ledger(org)
    by_sql = ledger_sql(args, org)
    t_api, t_sql = totals(by_api), totals(by_sql)
    if t_api["balance"] != total - 2 or t_api["sms"] != 1:
        raise Failure(f"the ledger read through the API sums to {t_api}; the balance is {total - 2}, 1 SMS point")
    if by_api != by_sql:
        raise Failure(f"the ledger read with SQL ({by_sql}) differs from the one read through the API ({by_api})")
    want = {"credit": (total, 0, topups), "charge": (2, 1, 2)}
    if by_sql != want:
        raise Failure(f"the ledger reads {by_sql}; expected {want}")
    print(
        f"wallet: the ledger ({topups} credit(s), 2 charges; API, {pages} page(s), and SQL agree) sums to the balance, "
        f"{total - 2:,}"
    )
    write_state(args.state, t_sql)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(f"ORG={org}\nTOPUPS={topups}\nBALANCE={total - 2}\n")


# ---------------------------------------------------------------------------------------------
# check


def check(args):
    api = Api(args.url, args.key, args.timeout)
    with open(args.state, encoding="utf-8") as f:
        prev = json.load(f)
    sums, how = settled_ledger(args, api, args.org)
    balance, sms = api.wallet(args.org)
    t = totals(sums)
    new_entries = t["charge_entries"] - prev["charge_entries"]
    new_amount = t["charges"] - prev["charges"]
    balance_ok = balance == t["balance"]
    sms_ok = sms == t["sms"]
    count_ok = args.ok2xx <= new_entries <= args.ok2xx + args.in_flight
    amount_ok = new_amount == new_entries  # every charge of the run is 1
    ok = balance_ok and sms_ok and count_ok and amount_ok
    mark = lambda b: "ok" if b else "MISMATCH"  # noqa: E731
    print(
        f"balance {balance:,} (API) vs credits {t['credits']:,} - charges {t['charges']:,} = {t['balance']:,} "
        f"(ledger, {how}): {mark(balance_ok)}; SMS points {sms:,} vs {t['sms']:,}: {mark(sms_ok)}"
    )
    exact = "exactly" if new_entries == args.ok2xx else f"{new_entries - args.ok2xx:+,} answered after wrk stopped"
    print(
        f"charge entries +{new_entries:,} (total {t['charge_entries']:,}) for {args.ok2xx:,} 2xx answers wrk saw, "
        f"with at most {args.in_flight} left in flight: {exact if count_ok else 'MISMATCH'}; "
        f"charged {new_amount:,} for {new_entries:,} charges of 1: {mark(amount_ok)}"
    )
    print(
        f"LEDGER ledger={'pass' if ok else 'fail'} balance={balance} ledger_balance={t['balance']} sms={sms} "
        f"ledger_sms={t['sms']} credits={t['credits']} charges={t['charges']} entries={t['charge_entries']} "
        f"new_entries={new_entries} ok2xx={args.ok2xx} in_flight={args.in_flight} new_amount={new_amount} "
        f"via={args.ledger}"
    )
    write_state(args.state, t)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["setup", "check"])
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True, help="a platform key")
    p.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    p.add_argument("--sqlite-path", help="the server's SQLite file (--db sqlite)")
    p.add_argument("--pg-db", help="the server's PostgreSQL database (--db postgres)")
    p.add_argument("--psql", default="psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1",
                   help="psql command line, without -d (--db postgres)")
    p.add_argument("--state", required=True, help="file holding the ledger's charge count between checks")
    p.add_argument("--ledger", choices=["sql", "api"], default="sql", help="check: how to read the ledger")
    p.add_argument("--timeout", type=float, default=30.0)
    # setup
    p.add_argument("--out", help="setup: KEY=VALUE file for bench/run.sh")
    p.add_argument("--seconds", type=int, default=60, help="setup: seconds of charging to fund (warm-up and runs)")
    p.add_argument("--max-rps", type=int, default=100_000, help="setup: the most charges a second to fund")
    # check
    p.add_argument("--org", help="check: the organization")
    p.add_argument("--ok2xx", type=int, help="check: 2xx answers wrk counted")
    p.add_argument("--in-flight", type=int, default=0, help="check: requests wrk sent but saw no answer to")
    args = p.parse_args()
    if args.db == "sqlite" and not args.sqlite_path:
        p.error("--db sqlite needs --sqlite-path")
    if args.db == "postgres" and not args.pg_db:
        p.error("--db postgres needs --pg-db")
    if args.command == "setup" and (not args.out or args.seconds < 1 or args.max_rps < 1):
        p.error("setup needs --out, and --seconds and --max-rps of at least 1")
    if args.command == "check" and (not args.org or args.ok2xx is None or args.ok2xx < 0 or args.in_flight < 0):
        p.error("check needs --org and --ok2xx (and --in-flight) of at least 0")
    try:
        if args.command == "setup":
            setup(args)
        else:
            check(args)
    except Failure as e:
        print(f"wallet: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
