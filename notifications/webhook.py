"""Webhooks to connector endpoints: a JSON body signed with HMAC-SHA256 over "<timestamp>.<body>".

Headers: `X-SAU-Delivery` (the notification's idempotency key: receivers drop a delivery they already
processed), `X-SAU-Event`, `X-SAU-Timestamp` (Unix seconds; receivers refuse old ones against replays) and
`X-SAU-Signature: sha256=<hex>`.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import requests

SIGNATURE_HEADER = "X-SAU-Signature"
TIMESTAMP_HEADER = "X-SAU-Timestamp"
DELIVERY_HEADER = "X-SAU-Delivery"
EVENT_HEADER = "X-SAU-Event"


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str | None, body: bytes, signature: str | None, *, now: float | None = None,
           tolerance_seconds: int = 300) -> bool:
    """Check a received webhook: a valid signature and a timestamp within `tolerance_seconds` of `now`."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


@dataclass(frozen=True)
class WebhookResult:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def post_webhook(url: str, secret: str, payload: dict[str, Any], *, delivery_id: str, event: str,
                 timeout: float = 10.0, timestamp: int | None = None) -> WebhookResult:
    """POST the signed payload. A 2xx answer is a success; anything else (other status, timeout, refused
    connection) a failure to retry. Never raises for network errors."""
    body = encode_body(payload)
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "SAU-Metropole-de-Lyon/1 (webhook)",
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
    }
    started = time.monotonic()
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        return WebhookResult(False, None, f"délai dépassé ({timeout:g} s)", _ms(started))
    except requests.RequestException as exc:
        return WebhookResult(False, None, f"erreur réseau : {type(exc).__name__}", _ms(started))
    ok = 200 <= response.status_code < 300
    return WebhookResult(ok, response.status_code, None if ok else f"réponse HTTP {response.status_code}", _ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
