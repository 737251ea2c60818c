#!/usr/bin/env python3
"""Set up the compat scenario of the benchmark (bench/run.sh, BENCH_SCENARIOS=compat).

    python3 bench/compat.py --url http://127.0.0.1:PORT --key KEY --children 1000 \\
        --ids WORKDIR/children.txt --out WORKDIR/compat.env [--threads 8]

Standard library only, and through the API only (no SQL). Against a running server it:

1. Creates a partner organization ("Bench Partner", "type": "partner", "rateLimit": 100000, so
   that the rate limiter refuses none of the partner key's requests) with the platform key
   (POST /api/organizations).
2. Makes a partner key for it (POST /api/admin/api-keys, {"kind": "partner", "organizationId":
   ...}; the secret is in "key").
3. Creates --children child organizations ("Bench Child N") with the partner key as Bearer
   (POST /api/organizations; their parent is the partner), over keep-alive connections, --threads
   at a time, and writes their ids to --ids, one a line.
4. Checks one answer of each endpoint the scenario loads, on two different children:
   - POST /api/v2/updateOrganization?token=<partner key>&targetOrganizationId=<child> with
     orgName, vidaPremium and externalAccountId: 200, success true, failedSettings null, those
     three in updatedSettings;
   - PATCH /v1/orgs/<child>/properties with "authorization: <partner key>" (no "Bearer ") and
     org_display_name plus preferences.use_bland_url: 200, errors null, the new values in data;
   and, with the platform key, that both children now read back the values written (and have the
   partner as parent).
5. Writes PARTNER, TOKEN (the partner key, percent-encoded for a query string; the key is
   base64url, so normally unchanged), PKEY (the key as is) and CHILDREN lines (KEY=VALUE) to --out
   for run.sh.

It exits non-zero, saying what failed, at the first failure.
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse


class Failure(Exception):
    pass


class Api:
    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise Failure(f"--url must be http://host:port (got {url!r})")
        self.host, self.port, self.base = u.hostname, u.port or 80, u.path.rstrip("/")
        self.timeout = timeout

    def connect(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def call(self, method, path, body=None, authorization=None, conn=None):
        """(status, parsed JSON or None, raw bytes). conn: a keep-alive connection to reuse."""
        own = conn is None
        if own:
            conn = self.connect()
        headers = {"Accept": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, self.base + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise Failure(f"{method} {path_for_log(path)}: {type(e).__name__}: {e}") from e
        finally:
            if own:
                conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, parsed, raw

    def expect(self, method, path, statuses, body=None, authorization=None, conn=None):
        status, parsed, raw = self.call(method, path, body, authorization, conn)
        if status not in statuses:
            raise Failure(f"{method} {path_for_log(path)} answered {status}: {raw[:500].decode('utf-8', 'replace')}")
        if not isinstance(parsed, dict):
            raise Failure(f"{method} {path_for_log(path)} answered {status} without a JSON object")
        return parsed


def path_for_log(path):
    """The path with the token query parameter masked: it is a secret."""
    u = urllib.parse.urlsplit(path)
    if not u.query:
        return path
    q = [(k, "***" if k == "token" else v) for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True)]
    return u.path + "?" + urllib.parse.urlencode(q, safe="*")


def create_children(api, pkey, count, threads):
    """count children through the partner key, keep-alive, `threads` at a time. Returns the ids in
    order of N."""
    ids = [None] * count
    lock = threading.Lock()
    state = {"next": 0, "failure": None}
    stop = threading.Event()

    def take():
        with lock:
            i = state["next"]
            if i >= count:
                return -1
            state["next"] = i + 1
            return i

    def worker():
        conn = api.connect()
        try:
            while not stop.is_set():
                i = take()
                if i < 0:
                    return
                try:
                    doc = api.expect(
                        "POST", "/api/organizations", (201,), {"name": f"Bench Child {i}", "countryCode": "US"},
                        f"Bearer {pkey}", conn,
                    )
                    if not doc.get("id"):
                        raise Failure(f"POST /api/organizations (child {i}): no id in {json.dumps(doc)[:300]}")
                    ids[i] = doc["id"]
                except Failure as e:
                    with lock:
                        if state["failure"] is None:
                            state["failure"] = str(e)
                    stop.set()
                    return
        finally:
            conn.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(min(threads, count))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if state["failure"] is not None:
        raise Failure(state["failure"])
    missing = sum(1 for x in ids if x is None)
    if missing:
        raise Failure(f"{missing} children were not created")
    return ids, len(pool)


def check_v2(api, token_q, child, key):
    body = {"orgName": "Bench Check", "vidaPremium": True, "externalAccountId": "AC_CHECK"}
    path = f"/api/v2/updateOrganization?token={token_q}&targetOrganizationId={child}"
    t0 = time.monotonic()
    doc = api.expect("POST", path, (200,), body)
    ms = (time.monotonic() - t0) * 1000
    want = ["orgName", "vidaPremium", "externalAccountId"]
    if doc.get("success") is not True or doc.get("failedSettings") is not None or sorted(doc.get("updatedSettings") or []) != sorted(want):
        raise Failure(f"POST /api/v2/updateOrganization: expected success true, all of {want} updated and failedSettings null; got {json.dumps(doc)[:500]}")
    org = api.expect("GET", f"/api/organizations/{child}", (200,), authorization=f"Bearer {key}")
    got = (org.get("name"), org.get("premium"), org.get("externalAccountId"))
    if got != ("Bench Check", True, "AC_CHECK"):
        raise Failure(f"after POST /api/v2/updateOrganization, GET /api/organizations/{child} reads (name, premium, externalAccountId) = {got!r}")
    return ms


def check_v1(api, pkey, child, key):
    body = {"updates": {"org_display_name": "Bench Check V1", "preferences": {"use_bland_url": True}}}
    t0 = time.monotonic()
    doc = api.expect("PATCH", f"/v1/orgs/{child}/properties", (200,), body, pkey)  # no "Bearer "
    ms = (time.monotonic() - t0) * 1000
    data = doc.get("data")
    if (
        "errors" not in doc or doc["errors"] is not None or not isinstance(data, dict)
        or data.get("org_display_name") != "Bench Check V1"
        or (data.get("preferences") or {}).get("use_bland_url") is not True
    ):
        raise Failure(f"PATCH /v1/orgs/{{id}}/properties: expected errors null and the new values in data; got {json.dumps(doc)[:500]}")
    org = api.expect("GET", f"/api/organizations/{child}", (200,), authorization=f"Bearer {key}")
    got = (org.get("name"), (org.get("preferences") or {}).get("usePlatformUrl"))
    if got != ("Bench Check V1", True):
        raise Failure(f"after PATCH /v1/orgs/{{id}}/properties, GET /api/organizations/{child} reads (name, preferences.usePlatformUrl) = {got!r}")
    return ms


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True, help="a platform key")
    p.add_argument("--children", type=int, default=1000)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--ids", required=True, help="file to write the children's ids to, one a line")
    p.add_argument("--out", required=True, help="KEY=VALUE file for bench/run.sh")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    if args.children < 2 or args.threads < 1:
        print("compat: --children must be at least 2 and --threads at least 1", file=sys.stderr)
        return 2

    platform = f"Bearer {args.key}"
    try:
        api = Api(args.url, args.timeout)
        # Its rateLimit the most the API allows (a burst of twice that): the partner key makes
        # every request of this scenario, far more than a partner's default 10 a second.
        partner = api.expect(
            "POST", "/api/organizations", (201,),
            {"name": "Bench Partner", "countryCode": "US", "type": "partner", "rateLimit": 100000}, platform,
        ).get("id")
        if not partner:
            raise Failure("POST /api/organizations (the partner): no id in the answer")
        doc = api.expect(
            "POST", "/api/admin/api-keys", (200, 201),
            {"name": "bench-partner", "kind": "partner", "organizationId": partner}, platform,
        )
        pkey = doc.get("key")
        if not isinstance(pkey, str) or not pkey:
            raise Failure("POST /api/admin/api-keys: no key in the answer")
        token_q = urllib.parse.quote(pkey, safe="")
        print(
            f"compat: partner organization {partner} and a partner key "
            f"({'URL-safe' if token_q == pkey else 'percent-encoded for the query string'})"
        )

        t0 = time.monotonic()
        ids, used = create_children(api, pkey, args.children, args.threads)
        took = time.monotonic() - t0
        print(f"compat: created {len(ids)} children with the partner key in {took:.2f} s ({len(ids) / took:.0f}/s, {used} threads)")
        org = api.expect("GET", f"/api/organizations/{ids[0]}", (200,), authorization=platform)
        if org.get("parentId") != partner:
            raise Failure(f"child {ids[0]} has parentId {org.get('parentId')!r}, not the partner {partner}")

        ms = check_v2(api, token_q, ids[0], args.key)
        print(f"compat: POST /api/v2/updateOrganization (3 settings, partner token) answers 200, all three updated, failedSettings null ({ms:.1f} ms); read back")
        ms = check_v1(api, pkey, ids[1], args.key)
        print(f"compat: PATCH /v1/orgs/{{id}}/properties (authorization without Bearer) answers 200, errors null ({ms:.1f} ms); read back")
    except Failure as e:
        print(f"compat: FAILED: {e}", file=sys.stderr)
        return 1

    with open(args.ids, "w", encoding="utf-8") as f:
        f.writelines(f"{i}\n" for i in ids)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(f"PARTNER={partner}\nTOKEN={token_q}\nPKEY={pkey}\nCHILDREN={len(ids)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
