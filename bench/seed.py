#!/usr/bin/env python3
"""Seed Orgbase with organizations for the benchmark.

    python3 bench/seed.py --url http://127.0.0.1:PORT --key KEY --count 10000 --out ids.txt [--threads 8]

POSTs `Bench Org {i}` (countryCode US) for i in 0..count-1 over keep-alive connections (one per
thread), writes the created ids one per line (in order of i) and prints how long it took.
Exits non-zero, printing the first failure, if any request fails. Standard library only.
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--key", required=True, help="API key (platform)")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--out", required=True, help="file to write the ids to, one per line")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    args = p.parse_args()

    u = urllib.parse.urlsplit(args.url)
    if u.scheme != "http" or not u.hostname:
        print(f"seed: --url must be http://HOST:PORT, got {args.url!r}", file=sys.stderr)
        return 2
    if args.count < 1 or args.threads < 1:
        print("seed: --count and --threads must be at least 1", file=sys.stderr)
        return 2
    host, port = u.hostname, u.port or 80
    base = u.path.rstrip("/")
    headers = {
        "Authorization": f"Bearer {args.key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Connection": "keep-alive",
    }

    ids = [None] * args.count
    lock = threading.Lock()
    state = {"next": 0, "failure": None}
    stop = threading.Event()

    def take() -> int:
        with lock:
            i = state["next"]
            if i >= args.count:
                return -1
            state["next"] = i + 1
            return i

    def fail(msg: str) -> None:
        with lock:
            if state["failure"] is None:
                state["failure"] = msg
        stop.set()

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
        try:
            while not stop.is_set():
                i = take()
                if i < 0:
                    return
                body = json.dumps({"name": f"Bench Org {i}", "countryCode": "US"})
                try:
                    conn.request("POST", f"{base}/api/organizations", body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    fail(f"request {i}: {type(e).__name__}: {e}")
                    return
                if resp.status != 201:
                    fail(f"request {i}: HTTP {resp.status}: {data[:500].decode('utf-8', 'replace')}")
                    return
                try:
                    org_id = json.loads(data)["id"]
                except (ValueError, KeyError, TypeError) as e:
                    fail(f"request {i}: no id in response ({e}): {data[:500].decode('utf-8', 'replace')}")
                    return
                ids[i] = org_id
        finally:
            conn.close()

    start = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(args.threads, args.count))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start

    if state["failure"] is not None:
        print(f"seed: FAILED: {state['failure']}", file=sys.stderr)
        return 1
    missing = sum(1 for x in ids if x is None)
    if missing:
        print(f"seed: FAILED: {missing} organizations were not created", file=sys.stderr)
        return 1
    with open(args.out, "w", encoding="utf-8") as f:
        for org_id in ids:
            f.write(f"{org_id}\n")
    rate = args.count / elapsed if elapsed > 0 else float("inf")
    print(
        f"seed: created {args.count} organizations in {elapsed:.2f} s "
        f"({rate:.0f}/s, {len(threads)} threads); ids in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
