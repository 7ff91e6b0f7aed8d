"""A real HTTP receiver process for the tests: a connector's endpoint that verifies the SAU's signatures.

Usage: python webhook_receiver.py PORT DIR SECRET MODE, MODE one of: ok, fail:N (the first N calls of each
delivery answer 503), always:500, sleep:SECONDS. Each call is written to DIR as JSON with whether its signature was valid.
Prints "ready" once listening.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
from notifications.webhook import verify

PORT, DIRECTORY, SECRET, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
lock = threading.Lock()
calls = {"n": 0}
per_delivery: dict[str, int] = {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with lock:
            calls["n"] += 1
            n = calls["n"]
            delivery = self.headers.get("X-SAU-Delivery") or ""
            per_delivery[delivery] = per_delivery.get(delivery, 0) + 1
            attempt = per_delivery[delivery]
        valid = verify(SECRET, self.headers.get("X-SAU-Timestamp"), body, self.headers.get("X-SAU-Signature"),
                       tolerance_seconds=10 ** 9)  # the app's clock is frozen in tests; replay window checked in units
        record = {"n": n, "valid": valid, "delivery": self.headers.get("X-SAU-Delivery"),
                  "event": self.headers.get("X-SAU-Event"), "body": json.loads(body or b"{}")}
        status = 200
        if MODE.startswith("fail:") and attempt <= int(MODE[5:]):
            status = 503
        elif MODE.startswith("always:"):
            status = int(MODE[7:])
        elif MODE.startswith("sleep:"):
            time.sleep(float(MODE[6:]))
        if not valid:
            status = 401
        record["status"] = status
        name = os.path.join(DIRECTORY, f"{time.time_ns()}-{uuid.uuid4().hex}")
        with open(name + ".tmp", "w") as fh:
            json.dump(record, fh)
        os.replace(name + ".tmp", name + ".json")
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass  # the sender gave up (timeout)

    def log_message(self, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
