#!/usr/bin/env python3
"""The billing webhook benchmark's set-up and check (bench/webhooks.sh drives it).

    webhooks.py setup --url URL --key KEY --ids ids.txt --secret WHSEC --events events.txt
        Gives each organization in ids.txt a Stripe customer (cus_bench_{i}) and an unpaid
        invoice: one signed `invoice.payment_failed` (created an hour ago) each, delivered with
        the organization's id in its metadata, so that each organization is overdue and has a
        billing account. Then writes events.txt: for each organization, one signed
        `invoice.paid` (created half an hour ago, after the failure), found by its customer id,
        as `signature<TAB>body` lines. The signatures are fresh (Stripe's tolerance is 5 minutes):
        write the file right before the runs.

    webhooks.py check --db orgbase.db --orgs N --fresh F
        Reads the server's SQLite database and checks that every invoice.paid event applied was
        applied exactly once: as many events recorded as organizations no longer overdue, each of
        those exactly one version further than the set-up left it, none further, and as many as
        the answers that said `"duplicate":false` (F), give or take the requests wrk left in flight
        when it stopped (--in-flight: applied, but their answers never read). Prints CHECK ok|FAIL with the counts.

Standard library only.
"""
import argparse
import hashlib
import hmac
import http.client
import json
import sqlite3
import sys
import threading
import time
import urllib.parse


def sign(secret: str, t: int, payload: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(event_id: str, kind: str, created: int, customer: str, org: str) -> bytes:
    return json.dumps({
        "id": event_id, "object": "event", "type": kind, "created": created, "livemode": False,
        "api_version": "2024-06-20",
        "data": {"object": {
            "id": "in_" + event_id, "object": "invoice", "customer": customer,
            "subscription": "sub_" + customer, "status": "open", "created": created,
            "metadata": {"organization_id": org},
        }},
    }, separators=(",", ":")).encode()


def setup(args) -> int:
    ids = [l.strip() for l in open(args.ids) if l.strip()]
    u = urllib.parse.urlsplit(args.url)
    now = int(time.time())
    failures = []
    lock = threading.Lock()

    def work(part):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        for i in part:
            body = event(f"evt_failed_{i}", "invoice.payment_failed", now - 3600,
                         f"cus_bench_{i}", ids[i])
            conn.request("POST", "/api/billing/webhooks/stripe", body=body, headers={
                "Stripe-Signature": sign(args.secret, int(time.time()), body),
                "Content-Type": "application/json"})
            r = conn.getresponse()
            text = r.read()
            if r.status != 200:
                with lock:
                    failures.append(f"{r.status} {text[:200]!r}")
                return

    threads = [threading.Thread(target=work, args=(range(k, len(ids), 8),)) for k in range(8)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        print("webhooks setup: a set-up delivery failed:", failures[0], file=sys.stderr)
        return 1
    print(f"webhooks setup: {len(ids)} organizations overdue, each with a customer, in "
          f"{time.time() - started:.1f} s")
    t = int(time.time())
    with open(args.events, "w") as f:
        for i, org in enumerate(ids):
            body = event(f"evt_paid_{i}", "invoice.paid", now - 1800, f"cus_bench_{i}", org)
            f.write(sign(args.secret, t, body) + "\t" + body.decode() + "\n")
    return 0


def check(args) -> int:
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    recorded = db.execute(
        "SELECT count(*) FROM billing_events WHERE event_type = 'invoice.paid'").fetchone()[0]
    failed = db.execute(
        "SELECT count(*) FROM billing_events WHERE event_type = 'invoice.payment_failed'"
    ).fetchone()[0]
    # Each organization: created (version 1), then its failed payment applied (2); a paid
    # invoice applied once makes it 3.
    rows = db.execute(
        "SELECT version, billing_overdue FROM organizations WHERE id IN "
        "(SELECT organization_id FROM billing_accounts)").fetchall()
    cleared = sum(1 for v, overdue in rows if not overdue)
    at3 = sum(1 for v, overdue in rows if v == 3 and not overdue)
    beyond = sum(1 for v, _ in rows if v > 3)
    still = sum(1 for v, overdue in rows if overdue and v == 2)
    ok = (failed == args.orgs and len(rows) == args.orgs and recorded == cleared == at3
          and beyond == 0 and still == args.orgs - cleared
          and args.fresh <= recorded <= args.fresh + args.in_flight)
    print(f"CHECK {'ok' if ok else 'FAIL'} orgs={len(rows)} paid_recorded={recorded} "
          f"cleared={cleared} once={at3} more_than_once={beyond} untouched={still} "
          f"fresh_answers={args.fresh} (at most {args.in_flight} applied after wrk stopped)")
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--url", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--ids", required=True)
    s.add_argument("--secret", required=True)
    s.add_argument("--events", required=True)
    c = sub.add_parser("check")
    c.add_argument("--db", required=True)
    c.add_argument("--orgs", type=int, required=True)
    c.add_argument("--fresh", type=int, required=True)
    c.add_argument("--in-flight", type=int, default=0,
                   help="requests wrk may have left in flight when it stopped: applied, unanswered")
    args = p.parse_args()
    return setup(args) if args.cmd == "setup" else check(args)


if __name__ == "__main__":
    sys.exit(main())
