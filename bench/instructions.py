#!/usr/bin/env python3
"""Send exactly N requests to one endpoint over C keep-alive connections, then exit.

    python3 bench/instructions.py --port P --key KEY --ids ids.txt --endpoint access -n 4000 -c 4

Endpoints: healthz (no credential, as bench/lua/healthz.lua), get_org, access (channel=voice);
each of the latter on a random id of the file. Used by bench/instructions.sh, which counts the
server's instructions over these requests. Exits non-zero on the first answer that is not 200.
Standard library only.
"""
import argparse
import http.client
import random
import sys
import threading

PATHS = {
    "healthz": lambda ids: "/healthz",
    "get_org": lambda ids: "/api/organizations/" + random.choice(ids),
    "access": lambda ids: "/api/organizations/" + random.choice(ids) + "/access?channel=voice",
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--endpoint", choices=sorted(PATHS), required=True)
    p.add_argument("-n", type=int, default=4000, help="requests in all")
    p.add_argument("-c", type=int, default=4, help="connections, one thread each")
    args = p.parse_args()
    ids = [line.strip() for line in open(args.ids) if line.strip()]
    path_of = PATHS[args.endpoint]
    headers = {} if args.endpoint == "healthz" else {"Authorization": "Bearer " + args.key}
    failures = []

    def work(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=300)
        for _ in range(count):
            path = path_of(ids)
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                failures.append(f"{r.status} {path}")
                return

    threads = [threading.Thread(target=work, args=(args.n // args.c,)) for _ in range(args.c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        print("instructions.py: " + failures[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
