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

    webhooks.py setup-chargebee --url URL --ids ids.txt --standin STANDIN_URL --auth BASIC
            --events events.txt
        The same for Chargebee: each organization's customer is the organization itself (as
        Orgbase names them); a `payment_failed` then a `payment_succeeded` event each (the
        invoice's resource_version orders them), stored at the stand-in (POST /_test/events/bulk)
        so that Orgbase's re-fetch finds them. The failures are delivered now, with the HTTP
        Basic `Authorization` BASIC; events.txt gets `BASIC<TAB>body` lines of the successes.

    webhooks.py check --db orgbase.db --orgs N --fresh F [--provider P --paid-type T --failed-type T]
        Reads the server's SQLite database and checks that every invoice.paid event applied was
        applied exactly once (--provider chargebee --paid-type payment_succeeded --failed-type
        payment_failed for Chargebee's; only the provider's own events and accounts count): as many events recorded as organizations no longer overdue, each of
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


def cb_event(event_id: str, kind: str, at: int, org: str, due: int) -> dict:
    return {
        "id": event_id, "object": "event", "api_version": "v2", "event_type": kind,
        "occurred_at": at, "source": "system", "webhook_status": "scheduled",
        "content": {
            "invoice": {"id": "inv_" + event_id, "customer_id": org, "object": "invoice",
                        "status": "payment_due" if due else "paid", "amount_due": due,
                        "updated_at": at, "resource_version": at * 1000},
            "customer": {"id": org, "object": "customer", "deleted": False,
                         "meta_data": {"organization_id": org}},
        },
    }


def post_all(url: str, path: str, bodies, headers: dict) -> list:
    """POSTs each body to url+path on 8 connections; answers the failures."""
    u = urllib.parse.urlsplit(url)
    failures = []
    lock = threading.Lock()

    def work(part):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        for body in part:
            conn.request("POST", path, body=body, headers=headers)
            r = conn.getresponse()
            text = r.read()
            if r.status != 200:
                with lock:
                    failures.append(f"{r.status} {text[:200]!r}")
                return

    threads = [threading.Thread(target=work, args=(bodies[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def setup_chargebee(args) -> int:
    ids = [l.strip() for l in open(args.ids) if l.strip()]
    now = int(time.time())
    failed = [cb_event(f"ev_failed_{i}", "payment_failed", now - 3600, org, 100)
              for i, org in enumerate(ids)]
    paid = [cb_event(f"ev_paid_{i}", "payment_succeeded", now - 1800, org, 0)
            for i, org in enumerate(ids)]
    u = urllib.parse.urlsplit(args.standin)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    for chunk in range(0, len(ids), 500):
        body = json.dumps({"events": failed[chunk:chunk + 500] + paid[chunk:chunk + 500]})
        conn.request("POST", "/_test/events/bulk", body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            print(f"webhooks setup: the stand-in refused the events: {r.status}", file=sys.stderr)
            return 1
    started = time.time()
    failures = post_all(args.url, "/api/billing/webhooks/chargebee",
                        [json.dumps(e, separators=(",", ":")).encode() for e in failed],
                        {"Authorization": args.auth, "Content-Type": "application/json"})
    if failures:
        print("webhooks setup: a set-up delivery failed:", failures[0], file=sys.stderr)
        return 1
    print(f"webhooks setup: {len(ids)} organizations overdue through Chargebee events, in "
          f"{time.time() - started:.1f} s")
    with open(args.events, "w") as f:
        for e in paid:
            f.write(args.auth + "\t" + json.dumps(e, separators=(",", ":")) + "\n")
    return 0


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
    # Billing events are keyed by (provider, event_id): count the provider's own.
    recorded = db.execute(
        "SELECT count(*) FROM billing_events WHERE provider = ? AND event_type = ?",
        (args.provider, args.paid_type)).fetchone()[0]
    failed = db.execute(
        "SELECT count(*) FROM billing_events WHERE provider = ? AND event_type = ?",
        (args.provider, args.failed_type)).fetchone()[0]
    # Each organization: created (version 1), then its failed payment applied (2); a paid
    # invoice applied once makes it 3.
    rows = db.execute(
        "SELECT version, billing_overdue FROM organizations WHERE id IN "
        "(SELECT organization_id FROM billing_accounts WHERE provider = ?)",
        (args.provider,)).fetchall()
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
    g = sub.add_parser("setup-chargebee")
    g.add_argument("--url", required=True)
    g.add_argument("--ids", required=True)
    g.add_argument("--standin", required=True)
    g.add_argument("--auth", required=True)
    g.add_argument("--events", required=True)
    c = sub.add_parser("check")
    c.add_argument("--db", required=True)
    c.add_argument("--orgs", type=int, required=True)
    c.add_argument("--fresh", type=int, required=True)
    c.add_argument("--provider", default="stripe", help="billing_events.provider to count")
    c.add_argument("--paid-type", default="invoice.paid")
    c.add_argument("--failed-type", default="invoice.payment_failed")
    c.add_argument("--in-flight", type=int, default=0,
                   help="requests wrk may have left in flight when it stopped: applied, unanswered")
    args = p.parse_args()
    return {"setup": setup, "setup-chargebee": setup_chargebee, "check": check}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
