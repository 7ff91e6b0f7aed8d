"""A real SMTP server process for the tests (aiosmtpd): every message received is written to DIR as a .eml file.

Usage: python smtp_sink.py PORT DIR [DELAY_SECONDS]. Prints "ready" once listening. DELAY slows each DATA
answer down (to kill a dispatcher in the middle of a batch).
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory: str, delay: float) -> None:
        self.directory = directory
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{uuid.uuid4().hex}"
        tmp = os.path.join(self.directory, name + ".tmp")
        with open(tmp, "wb") as fh:  # noqa: ASYNC230 (a tiny local write in a test server)
            fh.write(f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode())
            fh.write(envelope.original_content)
        os.replace(tmp, os.path.join(self.directory, name + ".eml"))
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"


def main() -> None:
    port, directory = int(sys.argv[1]), sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    controller = Controller(Sink(directory, delay), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
