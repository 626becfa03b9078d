"""What a delivery looks like on the wire: its JSON body, its headers, and their HMAC-SHA256 signature.

What is signed is exactly what is sent: the raw body bytes, prefixed with the
timestamp that is also sent (`X-Marketplace-Timestamp`), so a captured delivery
cannot be replayed later with a new timestamp. Every event has a stable id
(body `id`, header `X-Marketplace-Event-Id`) that partners deduplicate on, since
delivery is at least once (app.partners.webhooks.delivery).
"""
import hashlib
import hmac
import json
import time

from app.catalog.models import ListingEvent

SIGNATURE_VERSION = "v1"
USER_AGENT = "marketplace-webhooks/1"


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """`v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>" keyed with the endpoint's secret (as UTF-8)>`."""
    if isinstance(body, str):
        body = body.encode()
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify_signature(
    secret: str,
    timestamp: str | int | None,
    body: bytes | str,
    signature: str | None,
    tolerance: float = 300,
    now: float | None = None,
) -> bool:
    """Whether a delivery is authentic and fresh; partners can copy this function as it is.

    `timestamp` and `signature` are the X-Marketplace-Timestamp and
    X-Marketplace-Signature headers, `body` the raw request body (bytes, not
    re-serialized JSON). A timestamp more than `tolerance` seconds away from
    now is rejected (replays). The comparison is constant-time.
    """
    if timestamp is None:  # the header is missing
        return False
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance:
        return False
    if isinstance(body, str):
        body = body.encode()
    expected = sign(secret, ts, body)
    # Several comma-separated signatures are accepted, so a future secret rotation can send old and new.
    candidates = [part.strip() for part in str(signature or "").split(",")]
    return any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates)


def event_body(event: ListingEvent) -> bytes:
    """The JSON body of an event, as bytes (what is signed is exactly what is sent)."""
    return json.dumps(
        {
            "id": str(event.id), "type": event.event_type, "created_at": event.created_at.isoformat(),
            "data": event.payload,
        },
        separators=(",", ":"), sort_keys=True,
    ).encode()


def signed_headers(secret: str, event_id: int, body: bytes, timestamp: float | None = None) -> dict[str, str]:
    """The headers of one POST: the event id, the time it is sent, and the signature of both with the body."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Marketplace-Event-Id": str(event_id),
        "X-Marketplace-Timestamp": str(timestamp),
        "X-Marketplace-Signature": sign(secret, timestamp, body),
    }
