"""The webhooks scenario's receiver (bench/run.sh): a small asyncio HTTP/1.1 server (a protocol
parsing requests from its buffer, on uvloop when installed) that answers
every delivery 204 at once and keeps, per delivery, when it arrived and its lag behind the event
(arrival minus the event's `occurredAt`, which the server stamps as it makes the change, before
it commits: so the lag is commit-to-receipt plus the commit itself). Signatures are not checked
here (the tests check every one with the reference library); the work of checking would slow the
receiver, not Orgbase.

    python3 bench/hooks_receiver.py PORT

GET /_reset forgets what came; GET /_mark notes that the load stopped; GET /_stats answers
{"count", "distinct", "first", "last", "rate", "lag_p50_ms", "lag_p99_ms", "lag_max_ms",
"drained", "drain_rate"}: `rate` over every delivery from the first to the last, `drain_rate` over
those after the mark (the backlog left by a saturating run, delivered with the node otherwise
idle: the delivery pipeline's own speed; during the run it yields to the requests).
"""
import asyncio
import json
import sys
import time
from datetime import datetime

arrivals = []  # (arrival time, lag in ms, event id)
mark = [None]  # when the load stopped (GET /_mark): the drain after it is timed apart


def occurred(body):
    try:
        event = json.loads(body)
        t = datetime.fromisoformat(event["occurredAt"].replace("Z", "+00:00")).timestamp()
        return t, event.get("id")
    except Exception:
        return None, None


def stats():
    if not arrivals:
        return {"count": 0, "distinct": 0}
    lags = sorted(a[1] for a in arrivals if a[1] is not None)
    first, last = arrivals[0][0], arrivals[-1][0]
    span = last - first
    pick = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 1) if lags else None
    # The backlog's drain: what arrived after the mark, over the time from the mark to the last.
    drained = [a for a in arrivals if mark[0] is not None and a[0] >= mark[0]]
    drain_span = drained[-1][0] - mark[0] if drained else 0
    return {
        "count": len(arrivals),
        "distinct": len({a[2] for a in arrivals}),
        "first": first,
        "last": last,
        "rate": round(len(arrivals) / span, 1) if span > 0 else None,
        "lag_p50_ms": pick(0.50),
        "lag_p99_ms": pick(0.99),
        "lag_max_ms": round(lags[-1], 1) if lags else None,
        "drained": len(drained),
        "drain_rate": round(len(drained) / drain_span, 1) if drain_span > 1 else None,
    }


class Receiver(asyncio.Protocol):
    """One connection: HTTP/1.1 requests parsed from the buffer as they come (no stream
    reader, no coroutine per request: the receiver's CPU is the bench's, not Orgbase's)."""

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                if line[:15].lower() == "content-length:":
                    length = int(line[15:])
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            method, path = head.split(" ", 2)[:2]
            if method == "POST":
                now = time.time()
                t, eid = occurred(body)
                arrivals.append((now, (now - t) * 1000 if t else None, eid))
                self.transport.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            else:
                if path.startswith("/_reset"):
                    arrivals.clear()
                    mark[0] = None
                    out = b"{}"
                elif path.startswith("/_mark"):
                    mark[0] = time.time()
                    out = b"{}"
                else:
                    out = json.dumps(stats()).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: " + str(len(out)).encode() + b"\r\n\r\n" + out)


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def summary(raw, db):
    """The scenario's figures for `db` from bench/run.sh's RESULT lines: medians over the runs,
    against the targets (issue 22): deliveries >= 2,000 events/s, lag p99 < 250 ms at the paced
    rate, and writes with the endpoint subscribed within 15 % of patch_org's without."""
    import statistics
    runs = {}
    for line in open(raw):
        if not line.startswith("RESULT "):
            continue
        f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        if f.get("db") != db or f.get("tag", "").startswith("w"):
            continue
        runs.setdefault(f.get("endpoint"), []).append(f)

    def med(ep, key):
        vals = []
        for f in runs.get(ep, []):
            try:
                vals.append(float(f[key]))
            except (KeyError, ValueError):
                pass
        return statistics.median(vals) if vals else None

    base, hooked = med("patch_org", "rps"), med("hooked_patch", "rps")
    rate = med("hooked_patch", "delivery_rate")
    drain = med("hooked_patch", "drain_rate")
    p50, p99 = med("hooked_paced", "lag_p50_ms"), med("hooked_paced", "lag_p99_ms")
    offered = med("hooked_paced", "rps")
    lost = [f for ep in ("hooked_patch", "hooked_paced") for f in runs.get(ep, [])
            if f.get("delivered") != f.get("distinct")]
    print(f"webhooks [{db}] (medians of {len(runs.get('hooked_patch', []))} run(s))")
    if base and hooked:
        ratio = hooked / base
        print(f"  PATCH with one endpoint subscribed: {hooked:,.0f} req/s vs {base:,.0f} without "
              f"({ratio:.0%}); target within 15 %: {'met' if ratio >= 0.85 else 'NOT met'}")
    if drain:
        print(f"  deliveries to one local receiver, the backlog once the writes stop: {drain:,.0f} "
              f"events/s; target >= 2,000: {'met' if drain >= 2000 else 'NOT met'}")
    if rate:
        print(f"  the same over the whole run, writes and all (delivery yields to them): "
              f"{rate:,.0f} events/s")
    if p99 is not None:
        print(f"  lag, change to receipt, at {offered:,.0f} changes/s: p50 {p50:.1f} ms, p99 "
              f"{p99:.1f} ms; target p99 < 250 ms: {'met' if p99 < 250 else 'NOT met'}")
    print(f"  repeats: {'none' if not lost else f'{len(lost)} run(s) with deliveries != distinct events'}")


if __name__ == "__main__":
    if sys.argv[1] == "--summary":
        summary(sys.argv[2], sys.argv[3])
    else:
        try:
            # uvloop (pip), when present: the same receiver at a fraction of the CPU.
            import uvloop
            uvloop.run(main(int(sys.argv[1])))
        except ImportError:
            asyncio.run(main(int(sys.argv[1])))
