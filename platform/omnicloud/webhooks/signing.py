"""Webhook signatures: ``Omnicloud-Signature: t=<unix seconds>,v1=<hex>`` where the hex is
``HMAC-SHA256(secret, f"{t}.{body}")`` over the exact request body bytes.

Receivers call :func:`verify_signature`; docs/webhooks.md shows how.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Omnicloud-Signature"


def compute(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the ``Omnicloud-Signature`` header."""
    return f"t={timestamp},v1={compute(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str | None, body: bytes, tolerance: float = 300.0, *, now: float | None = None
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is at most ``tolerance`` seconds
    away from ``now`` (default: the current time), which stops replays of old deliveries.

    Several ``v1=`` entries are accepted (one matching is enough), so a sender may sign with
    an old and a new secret while the receiver rotates.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = compute(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)
