#!/usr/bin/env python3
"""Set up the people scenarios of the benchmark (bench/run.sh, BENCH_SCENARIOS=people).

    python3 bench/people.py --url http://127.0.0.1:PORT --key KEY --members 100000 \\
        --db sqlite --sqlite-path WORKDIR/orgbase.db --outbox WORKDIR/mail-outbox --out people.env
    python3 bench/people.py ... --db postgres --pg-db orgbase_bench_123 ...

It needs only the Python standard library (and `psql` for PostgreSQL). It does this, against a
running server:

1. Creates the organization to fill ("Bench People Org") through the API, with the platform key,
   and reads how many members it has (GET .../members?per_page=1, data.total).
2. Adds --members people to it with set-based SQL, straight into the database the server uses:
   users (random UUIDs, e-mails bench-member-N@<run>.bench.example.com, no password), members
   (joined one a second up to now, member ids in that order) and member_roles (role 3, member).
   Only these three tables are written: whatever the schema keeps by triggers on them (such as
   the member_stats table of migration 0003) is kept by those triggers, row by row.
   SQLite: Python's sqlite3 on the server's file (WAL; this second writer process waits on
   busy_timeout for the server's writer and back), a recursive CTE, one transaction; the numbers
   and UUIDs are prepared in a temp table first, so the write lock is held only for the inserts
   (about 2 s for 100,000; a server write waiting meanwhile logs "slow sqlite group commit").
   No ANALYZE (the server runs none either).
   PostgreSQL: psql, generate_series, transactions of --pg-batch people (default 2500), then
   ANALYZE of the three tables (autovacuum would do that within a minute anyway; doing it now keeps
   the plans the same from the first run to the last). Why not one transaction: see
   seed_postgres.
3. Checks through the API that the total went up by exactly --members, and that page 1 and page
   5000 (per_page 15) answer 200.
4. Makes one person who can log in, through the real flow: a second organization
   ("Bench Login Org"), POST .../invite with the platform key, the token read from the e-mail in
   the server's outbox folder, POST /api/organizations/invite/{token}/accept with a password,
   then one POST /api/auth/login that must answer 200 with a token.
5. Writes ORG, LOGIN_ORG, EMAIL, PASSWORD and TOTAL lines (KEY=VALUE) to --out for run.sh.

It exits non-zero, saying what failed, at the first failure.
"""
import argparse
import email
import email.policy
import glob
import http.client
import json
import os
import quopri
import re
import secrets
import sqlite3
import subprocess
import sys
import time
import urllib.parse

PER_PAGE = 15
DEEP_PAGE = 5000


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

    def call(self, method, path, body=None, auth=True):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.key}"
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, self.base + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise Failure(f"{method} {path}: {type(e).__name__}: {e}") from e
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, parsed, raw

    def expect(self, method, path, statuses, body=None, auth=True):
        status, parsed, raw = self.call(method, path, body, auth)
        if status not in statuses:
            raise Failure(f"{method} {path} answered {status}: {raw[:500].decode('utf-8', 'replace')}")
        if parsed is None:
            raise Failure(f"{method} {path} answered {status} without a JSON body")
        return parsed

    def create_org(self, name):
        doc = self.expect("POST", "/api/organizations", (201,), {"name": name, "countryCode": "US"})
        org = doc.get("id") if isinstance(doc, dict) else None
        if not org:
            raise Failure(f"POST /api/organizations: no id in {doc!r:.300}")
        return org

    def members_page(self, org, page, per_page):
        doc = self.expect("GET", f"/api/organizations/{org}/members?page={page}&per_page={per_page}", (200,))
        try:
            return doc["data"]["total"], doc["data"]["data"]
        except (KeyError, TypeError) as e:
            raise Failure(f"GET .../members: no data.total / data.data in {json.dumps(doc)[:300]}") from e


# ---------------------------------------------------------------------------------------------
# Seeding

# Prepared before the write transaction (temp tables need no lock on the main database), so
# that the server's writers wait on the seeding for as short a time as possible.
SQLITE_PREPARE = """
CREATE TEMP TABLE bench_seq (n INTEGER PRIMARY KEY, h TEXT NOT NULL, uid TEXT, at TEXT);
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count)
INSERT INTO temp.bench_seq (n, h) SELECT n, lower(hex(randomblob(16))) FROM seq;
-- A version-4 UUID from the stored random hex (computed in a second step: SQLite would evaluate
-- randomblob() once per reference if the substr() calls read it through a subquery). Joined one
-- a second, up to now.
UPDATE temp.bench_seq SET
    uid = substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3)
        || '-' || substr('89ab', 1 + (n % 4), 1) || substr(h, 18, 3) || '-' || substr(h, 21, 12),
    at = strftime('%Y-%m-%dT%H:%M:%S', 'now', '-' || (:count - n) || ' seconds') || '.000000Z'
"""

# In one write transaction. :first is the member id the new rows start after (max(id) before).
SQLITE_SEED = """
INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
    SELECT uid, 'bench-member-' || n || '@' || :domain, 'Bench Member ' || n, NULL, at, at
    FROM temp.bench_seq ORDER BY n;
INSERT INTO members (organization_id, user_id, created_at, updated_at)
    SELECT :org, uid, at, at FROM temp.bench_seq ORDER BY n;
INSERT INTO member_roles (organization_id, role_id, member_id)
    SELECT :org, 3, id FROM members WHERE organization_id = :org AND id > :first ORDER BY id
"""

# PostgreSQL: the numbers first, then the rows in batches of --pg-batch people, one transaction
# each (see seed_postgres for why not one), then ANALYZE.
PG_PREPARE = r"""
SET synchronous_commit = off;
CREATE TEMP TABLE bench_seq AS
    SELECT n, gen_random_uuid() AS uid,
           date_trunc('second', now()) - (:count - n) * interval '1 second' AS at
    FROM generate_series(1, :count) AS n;
CREATE UNIQUE INDEX ON bench_seq (n);
ANALYZE bench_seq;
"""

PG_BATCH = r"""
BEGIN;
INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
    SELECT uid, 'bench-member-' || n || '@' || :'domain', 'Bench Member ' || n, NULL, at, at
    FROM bench_seq WHERE n BETWEEN {lo} AND {hi} ORDER BY n;
WITH m AS (
    INSERT INTO members (organization_id, user_id, created_at, updated_at)
        SELECT :'org'::uuid, uid, at, at FROM bench_seq WHERE n BETWEEN {lo} AND {hi} ORDER BY n
        RETURNING id
)
INSERT INTO member_roles (organization_id, role_id, member_id) SELECT :'org'::uuid, 3, id FROM m;
COMMIT;
"""

PG_FINISH = r"""
DROP TABLE bench_seq;
ANALYZE users;
ANALYZE members;
ANALYZE member_roles;
"""


def seed_sqlite(path, org, count, domain):
    if not os.path.exists(path):
        raise Failure(f"no SQLite database at {path}")
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. The server holds the file open in WAL
    # mode; BEGIN IMMEDIATE takes the write lock (waiting up to 60 s for the server's writer).
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            raise Failure(f"the server's SQLite database is in journal mode {mode!r}, not WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        # A large page cache keeps the transaction's pages in memory instead of spilling them into
        # the WAL as it goes; this connection only.
        conn.execute("PRAGMA cache_size = -262144")
        params = {"count": count, "org": org, "domain": domain}
        run_script(conn, SQLITE_PREPARE, params)
        t0 = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        try:
            params["first"] = conn.execute("SELECT coalesce(max(id), 0) FROM members").fetchone()[0]
            run_script(conn, SQLITE_SEED, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        locked = time.monotonic() - t0
        conn.execute("DROP TABLE temp.bench_seq")
        return locked
    except sqlite3.Error as e:
        raise Failure(f"SQLite seeding failed: {e}") from e
    finally:
        conn.close()


def split_sql(script):
    """The statements of a script with no ';' inside literals or comments (true of ours)."""
    lines = [ln for ln in script.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def run_script(conn, script, params):
    for stmt in split_sql(script):
        conn.execute(stmt, {k: v for k, v in params.items() if f":{k}" in stmt})


def seed_postgres(psql, db, org, count, domain, batch):
    """One psql session, synchronous_commit off (this session only). Batches, not one
    transaction: migration 0003's row trigger on members updates the organization's one
    member_stats row per member, and within one transaction each update leaves a row version the
    next one has to step over, so the cost grows with the square of the rows per transaction.
    Measured here: 100,000 members in one transaction 143 s; in batches of 1,000 to 2,500 about
    10 s. Every row still goes through the schema's triggers."""
    script = [PG_PREPARE]
    for lo in range(1, count + 1, batch):
        script.append(PG_BATCH.format(lo=lo, hi=min(count, lo + batch - 1)))
    script.append(PG_FINISH)
    cmd = psql + ["-d", db, "-v", f"count={count}", "-v", f"org={org}", "-v", f"domain={domain}"]
    try:
        p = subprocess.run(cmd, input="".join(script), text=True, capture_output=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure(f"psql: {e}") from e
    if p.returncode != 0:
        raise Failure(f"PostgreSQL seeding failed (psql status {p.returncode}): {(p.stderr or p.stdout).strip()[:1000]}")


# ---------------------------------------------------------------------------------------------
# One person who can log in

INVITE_RE = re.compile(r"/invite/(obi_[A-Za-z0-9_-]+)")


def message_texts(raw):
    """Every decoded text part of one .eml (quoted-printable and base64 undone), plus the raw
    text with quoted-printable soft line breaks removed, as a fallback."""
    texts = []
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                payload = part.get_payload(decode=True)
                if payload:
                    texts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
        to = str(msg.get("To", ""))
    except Exception:  # a malformed message still gets the fallback below
        to = ""
    texts.append(quopri.decodestring(raw).decode("utf-8", "replace"))
    return to, texts


def invite_token(outbox, address, deadline_s=15.0):
    deadline = time.monotonic() + deadline_s
    while True:
        # Names sort by the time of writing: newest first.
        for path in sorted(glob.glob(os.path.join(outbox, "*.eml")), reverse=True):
            with open(path, "rb") as f:
                raw = f.read()
            to, texts = message_texts(raw)
            if address not in to.lower() and not any(address in t.lower() for t in texts):
                continue
            for t in texts:
                m = INVITE_RE.search(t)
                if m:
                    return m.group(1), path
            raise Failure(f"the invitation e-mail {path} carries no /invite/obi_... link")
        if time.monotonic() >= deadline:
            raise Failure(f"no invitation e-mail to {address} in {outbox} within {deadline_s:.0f} s")
        time.sleep(0.1)


LOGIN_ACCOUNTS = 32


def make_login(api, outbox, domain, accounts=LOGIN_ACCOUNTS):
    """People who can log in, each made through invite + accept. Several, so that the load is
    spread the way real logins are: the server refuses more than 5 logins in flight on one
    account (each counts as a failure until its password checks), which 32 connections on a
    single account would hit all the time."""
    org = api.create_org("Bench Login Org")
    password = "bench-" + secrets.token_urlsafe(18)
    addresses = []
    path = None
    for i in range(accounts):
        address = f"bench-login-{i}@{domain}"
        api.expect(
            "POST", f"/api/organizations/{org}/invite", (200, 201),
            {"email": address, "name": f"Bench Login {i}", "roles": [3]},
        )
        token, path = invite_token(outbox, address)
        api.expect(
            "POST", f"/api/organizations/invite/{token}/accept", (200, 201),
            {"password": password, "password_confirmation": password}, auth=False,
        )
        addresses.append(address)
    t0 = time.monotonic()
    doc = api.expect("POST", "/api/auth/login", (200,), {"email": addresses[0], "password": password}, auth=False)
    took = time.monotonic() - t0
    if not (isinstance(doc, dict) and str(doc.get("token", "")).startswith("obs_")):
        raise Failure(f"POST /api/auth/login: no obs_ token in the answer: {json.dumps(doc)[:300]}")
    return org, ",".join(addresses), password, path, took


# ---------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True, help="a platform key")
    p.add_argument("--members", type=int, default=100000)
    p.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    p.add_argument("--sqlite-path", help="the server's SQLite file (--db sqlite)")
    p.add_argument("--pg-db", help="the server's PostgreSQL database (--db postgres)")
    p.add_argument("--psql", default="psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1",
                   help="psql command line, without -d (--db postgres)")
    p.add_argument("--pg-batch", type=int, default=2500, help="people per transaction (--db postgres)")
    p.add_argument("--outbox", required=True, help="the server's mail outbox folder")
    p.add_argument("--out", required=True, help="KEY=VALUE file for bench/run.sh")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    if args.members < 1 or args.pg_batch < 1:
        print("people: --members and --pg-batch must be at least 1", file=sys.stderr)
        return 2
    if args.db == "sqlite" and not args.sqlite_path:
        print("people: --db sqlite needs --sqlite-path", file=sys.stderr)
        return 2
    if args.db == "postgres" and not args.pg_db:
        print("people: --db postgres needs --pg-db", file=sys.stderr)
        return 2

    api = Api(args.url, args.key, args.timeout)
    # A domain unique to this run, so that the e-mails cannot collide with earlier rows.
    domain = f"r{secrets.token_hex(4)}.bench.example.com"
    try:
        org = api.create_org("Bench People Org")
        before, _ = api.members_page(org, 1, 1)

        t0 = time.monotonic()
        if args.db == "sqlite":
            locked = seed_sqlite(args.sqlite_path, org, args.members, domain)
            how = f"sqlite, one transaction holding the write lock {locked:.2f} s"
        else:
            seed_postgres(args.psql.split(), args.pg_db, org, args.members, domain, args.pg_batch)
            batches = -(-args.members // args.pg_batch)
            how = f"postgres, {batches} transaction(s) of up to {args.pg_batch}, then ANALYZE"
        took = time.monotonic() - t0
        print(
            f"people: seeded {args.members} members (users, members, member_roles role 3) into "
            f"organization {org} with SQL in {took:.2f} s ({how})"
        )

        total, _ = api.members_page(org, 1, 1)
        if total != before + args.members:
            raise Failure(
                f"GET .../members?per_page=1 answers total={total}; expected {before} + {args.members}"
            )
        for page in (1, DEEP_PAGE):
            t1 = time.monotonic()
            total, rows = api.members_page(org, page, PER_PAGE)
            ms = (time.monotonic() - t1) * 1000
            want = max(0, min(PER_PAGE, total - (page - 1) * PER_PAGE))
            if len(rows) != want:
                raise Failure(f"GET .../members?page={page}&per_page={PER_PAGE}: {len(rows)} members, expected {want}")
            note = "" if want else " (EMPTY: fewer members than the page needs; the figures will flatter it)"
            print(f"people: page {page} answers 200 with {len(rows)} members (first request {ms:.1f} ms){note}")
        print(f"people: the API reports total={total} members ({before} before the seeding)")

        login_org, address, password, path, took = make_login(api, args.outbox, domain)
        print(
            f"people: {address.count(',') + 1} login accounts joined organization {login_org} through invite + accept "
            f"(token read from {os.path.basename(path)}); one login took {took * 1000:.0f} ms"
        )
    except Failure as e:
        print(f"people: FAILED: {e}", file=sys.stderr)
        return 1

    with open(args.out, "w", encoding="utf-8") as f:
        f.write(f"ORG={org}\nLOGIN_ORG={login_org}\nEMAIL={address}\nPASSWORD={password}\nTOTAL={total}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
