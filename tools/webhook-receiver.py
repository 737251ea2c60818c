"""A webhook receiver for tests: it verifies every delivery with the Standard Webhooks reference
library (pip: standardwebhooks) and keeps what it got.

    python3 tools/webhook-receiver.py PORT

- POST /_config/NAME  {"secrets": ["whsec_…"], "status": 204, "retryAfter": null, "delayMs": 0}
  sets what endpoint NAME verifies with and answers (a status per delivery can be queued with
  {"then": [500, 500, 204]}: each delivery takes the next, then `status`), and how long it takes
  to answer (a delivery is kept at once, answered after `delayMs`).
- POST /hook/NAME     a delivery: verified with each configured secret (the delivery must carry a
  valid signature for every one of them), kept, answered as configured.
- GET  /_deliveries/NAME  what NAME got: [{id, timestamp, type, verified, errors, body}].
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

lock = threading.Lock()
config = {}
deliveries = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/_deliveries/"):
            name = self.path[len("/_deliveries/"):]
            with lock:
                body = json.dumps(deliveries.get(name, [])).encode()
            return self.answer(200, body, [("Content-Type", "application/json")])
        self.answer(404)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/_config/"):
            name = self.path[len("/_config/"):]
            with lock:
                config[name] = json.loads(raw)
                deliveries.setdefault(name, [])
            return self.answer(204)
        if not self.path.startswith("/hook/"):
            return self.answer(404)
        name = self.path[len("/hook/"):]
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            conf = dict(config.get(name) or {})
        errors = []
        for secret in conf.get("secrets", []):
            try:
                Webhook(secret).verify(raw, headers)
            except Exception as e:  # the library's WebhookVerificationError, or a bad secret
                errors.append(f"{type(e).__name__}: {e}")
        try:
            kind = json.loads(raw).get("type")
        except ValueError:
            kind = None
        with lock:
            deliveries.setdefault(name, []).append({
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "type": kind,
                "verified": bool(conf.get("secrets")) and not errors,
                "errors": errors,
                "body": raw.decode("utf-8", "replace"),
            })
            queued = (config.get(name) or {}).get("then") or []
            status = queued.pop(0) if queued else conf.get("status", 204)
        extra = []
        if conf.get("retryAfter") is not None:
            extra.append(("Retry-After", str(conf["retryAfter"])))
        # A 204 has no body: bytes after it would be read as the next answer on the connection.
        body = b"" if status in (204, 304) else (b"ok" if status < 300 else b"not now")
        if conf.get("delayMs"):
            time.sleep(conf["delayMs"] / 1000)
        self.answer(status, body, extra)


class Server(ThreadingHTTPServer):
    # The default backlog (5) drops connections when a worker opens dozens at once.
    request_queue_size = 1024
    daemon_threads = True


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
