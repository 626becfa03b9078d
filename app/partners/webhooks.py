"""Partner webhooks: the outbox (catalog.ListingEvent) turned into signed HTTP POSTs to partners' endpoints.

Two steps, both run by `manage.py maintenance` (settings.MAINTENANCE_TASKS):

1. `dispatch_events`: on each worker, undispatched outbox events become one
   WebhookDelivery per subscribed active endpoint, on the event's shard, and
   the events are marked dispatched, all in one local transaction
   (`SELECT ... FOR UPDATE SKIP LOCKED`, so two maintenance processes never
   dispatch the same event).
2. `deliver_due`: on each worker, due pending deliveries are claimed with a
   lease (a short transaction pushes `next_attempt_at` ahead), POSTed outside
   any transaction (endpoints in parallel, each endpoint's deliveries one
   after the other), and their outcome recorded only if the claim is still
   ours. An endpoint's first failure in a run holds its other deliveries back
   (without spending their attempts) for as long as its failures in a row say,
   and a run stops sending after settings.WEBHOOK_RUN_SECONDS (10), so a down
   or slow endpoint costs one timeout per run and cannot stall the
   maintenance loop (which also settles in-doubt transactions).

Delivery is **at least once**: a crash after the POST and before the outcome
is recorded, or a lease that runs out during a slow POST, sends the event
again. Every event has a stable id (body `id`, header `X-Marketplace-Event-Id`)
that partners deduplicate on. Deliveries are not ordered: a retried event can
arrive after a later one about the same listing (compare `created_at`).

Failures are retried with exponential backoff (2**attempts seconds, at most an
hour, with jitter), at most settings.WEBHOOK_MAX_ATTEMPTS times per delivery.
An endpoint that fails settings.WEBHOOK_DISABLE_AFTER times in a row (over all
its deliveries) is disabled; its remaining deliveries are not sent: each is
marked failed ("endpoint disabled") when it comes due, like those of a deleted
endpoint, and events that happen while it is disabled are not queued for it.
"""
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from app.catalog.models import ListingEvent
from app.core.errors import NotFound, ServiceError
from sharding.placement import all_workers, node_for_id
from sharding.transactions import retry_when_moved

from .http import PostFailed, is_public_address, post_bounded
from .models import EVENTS, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger("app.partners.webhooks")

SIGNATURE_VERSION = "v1"
MAX_BACKOFF_SECONDS = 3600
ENDPOINT_DISABLED = "endpoint disabled"
USER_AGENT = "marketplace-webhooks/1"


def _setting(name, default):
    return getattr(settings, name, default)


# --- signatures -------------------------------------------------------------------------------------------------

def sign(secret, timestamp, body):
    """`v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>" keyed with the endpoint's secret (as UTF-8)>`."""
    if isinstance(body, str):
        body = body.encode()
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify_signature(secret, timestamp, body, signature, tolerance=300, now=None):
    """Whether a delivery is authentic and fresh; partners can copy this function as it is.

    `timestamp` and `signature` are the X-Marketplace-Timestamp and
    X-Marketplace-Signature headers, `body` the raw request body (bytes, not
    re-serialized JSON). A timestamp more than `tolerance` seconds away from
    now is rejected (replays). The comparison is constant-time.
    """
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


def event_body(event):
    """The JSON body of an event, as bytes (what is signed is exactly what is sent)."""
    return json.dumps(
        {"id": str(event.id), "type": event.event_type, "created_at": event.created_at.isoformat(), "data": event.payload},
        separators=(",", ":"), sort_keys=True,
    ).encode()


def signed_headers(secret, event_id, body, timestamp=None):
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Marketplace-Event-Id": str(event_id),
        "X-Marketplace-Timestamp": str(timestamp),
        "X-Marketplace-Signature": sign(secret, timestamp, body),
    }


# --- endpoints (the API's services) -----------------------------------------------------------------------------

def allowed_ports():
    """The ports webhooks may be sent to: settings.WEBHOOK_ALLOWED_PORTS in production, any elsewhere (None)."""
    if not _setting("PRODUCTION", False):
        return None
    return frozenset(_setting("WEBHOOK_ALLOWED_PORTS", (443, 80)))


def _refuse_url(message):
    raise ServiceError(f"url {message}.", code="validation_error", details={"url": [f"{message[0].upper()}{message[1:]}."]})


def check_endpoint_url(url):
    """http(s) only; in production https and an allowed port; a public host unless private addresses are allowed.

    A host name is checked again at every send, where it is resolved (app.partners.http): a name that resolves
    to a private address is refused there, also when its DNS answer changes after registration.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _refuse_url("must be an http or https URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        _refuse_url("has an invalid port")
    if _setting("PRODUCTION", False) and parts.scheme != "https":
        _refuse_url("must be https")
    ports = allowed_ports()
    if ports is not None and port not in ports:
        _refuse_url(f"must use port {' or '.join(map(str, sorted(ports, reverse=True)))}")
    if not _setting("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False):
        host = parts.hostname.lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if host == "localhost" or host.endswith(".localhost") or (address is not None and not is_public_address(address)):
            _refuse_url("must point to a public host")
    return url


def create_endpoint(partner, *, url, events):
    """A new active endpoint with a fresh signing secret (returned once, by the API that creates it)."""
    check_endpoint_url(url)
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise ServiceError(
            f"events must be some of {', '.join(EVENTS)}.", code="validation_error", details={"events": unknown or ["empty"]}
        )
    return WebhookEndpoint.objects.create(
        partner=partner, url=url, events=[e for e in EVENTS if e in set(events)], secret=secrets.token_hex(32),
    )


def endpoints_of(partner):
    return WebhookEndpoint.objects.filter(partner=partner).order_by("id")


def delete_endpoint(partner, endpoint_id):
    """Delete one of the partner's endpoints; NotFound for anyone else's. Its pending deliveries fail when due."""
    deleted, _ = WebhookEndpoint.objects.filter(partner=partner, id=endpoint_id).delete()
    if not deleted:
        raise NotFound("No such webhook endpoint.")


# --- dispatch: outbox -> deliveries -----------------------------------------------------------------------------

def dispatch_events(batch=500):
    """Turn every worker's undispatched outbox events into deliveries; returns the number of deliveries created.

    The active endpoints are read once per run. An endpoint gets only events
    created after it was registered. Events created after this run read the
    endpoints wait for the next run, so an endpoint registered meanwhile is not
    skipped (except for the few milliseconds between its created_at and its
    commit on the coordinator).
    """
    read_at = timezone.now()
    endpoints = list(WebhookEndpoint.objects.filter(is_active=True).only("id", "events", "created_at"))
    created = 0
    for alias in all_workers():
        try:
            created += _dispatch_on(alias, endpoints, read_at, batch)
        except Exception:  # noqa: BLE001 - one worker being down must not stop the others
            logger.exception("webhook dispatch on %s failed; retrying next round", alias)
            connections[alias].close()
    return created


def _dispatch_on(alias, endpoints, read_at, batch):
    created = 0
    while True:
        with transaction.atomic(using=alias):
            events = list(
                ListingEvent.objects.using(alias).select_for_update(skip_locked=True)
                .filter(dispatched_at=None, created_at__lte=read_at).order_by("id")[:batch]
            )
            if not events:
                return created
            now = timezone.now()
            deliveries = [
                WebhookDelivery(user_id=event.user_id, event_id=event.id, endpoint_id=endpoint.id, next_attempt_at=now)
                for event in events for endpoint in endpoints
                if event.event_type in endpoint.events and event.created_at > endpoint.created_at
            ]
            WebhookDelivery.objects.using(alias).bulk_create(deliveries, ignore_conflicts=True)
            ListingEvent.objects.using(alias).filter(id__in=[event.id for event in events]).update(dispatched_at=now)
            created += len(deliveries)
        if len(events) < batch:
            return created


# --- delivery -----------------------------------------------------------------------------------------------------

def backoff_seconds(attempts):
    """2**attempts seconds, at most an hour, with "equal jitter" (between half of that and all of it)."""
    delay = min(2 ** min(attempts, 32), MAX_BACKOFF_SECONDS)
    return delay / 2 + random.uniform(0, delay / 2)


@dataclass
class Outcome:
    ok: bool
    error: str = ""


def post_event(endpoint, event, timeout):
    """POST one event to one endpoint; never raises.

    The whole exchange ends within `timeout` seconds and at most
    WEBHOOK_RESPONSE_MAX_BYTES of the answer are read (app.partners.http), so a
    receiver that drips bytes or never answers costs one timeout.
    """
    body = event_body(event)
    try:
        answer = post_bounded(
            endpoint.url, body, signed_headers(endpoint.secret, event.id, body),
            deadline_seconds=timeout, max_bytes=_setting("WEBHOOK_RESPONSE_MAX_BYTES", 65536),
            allow_private=_setting("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False), allowed_ports=allowed_ports(),
        )
    except PostFailed as exc:
        return Outcome(False, str(exc)[:500])
    if 200 <= answer.status < 300:
        return Outcome(True)
    return Outcome(False, f"HTTP {answer.status}: {answer.body[:200].decode(errors='replace')}")


def deliver_due(batch=100, timeout=5):
    """Send every worker's due pending deliveries (at most `batch` per worker per call); returns (delivered, failed)."""
    totals = [0, 0]
    for alias in all_workers():
        try:
            delivered, failed = _deliver_on(alias, batch, timeout)
        except Exception:  # noqa: BLE001 - one worker being down must not stop the others
            logger.exception("webhook delivery on %s failed; retrying next round", alias)
            connections[alias].close()
            continue
        totals[0] += delivered
        totals[1] += failed
    return tuple(totals)


def _lease_seconds(timeout):
    """Long enough for a whole run: sending stops at the time budget, plus one POST that started just before it."""
    return max(_setting("WEBHOOK_LEASE_SECONDS", 60), _setting("WEBHOOK_RUN_SECONDS", 10) + 2 * timeout + 10)


def _claim(alias, batch, lease):
    """Due pending deliveries, pushed `lease` seconds ahead so that nobody else sends them meanwhile."""
    with transaction.atomic(using=alias):
        now = timezone.now()
        claimed = list(
            WebhookDelivery.objects.using(alias).select_for_update(skip_locked=True)
            .filter(status=WebhookDelivery.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at", "id")[:batch]
        )
        lease_until = now + timedelta(seconds=lease)
        if claimed:
            WebhookDelivery.objects.using(alias).filter(id__in=[d.id for d in claimed]).update(next_attempt_at=lease_until)
    return claimed, lease_until


HELD_BACK = None  # the outcome of a claimed delivery that was not sent in this run


def _send_to_endpoint(endpoint, jobs, timeout, deadline):
    """POST the endpoint's deliveries one after the other, stopping at its first failure or at the deadline.

    A down or slow endpoint thus costs one timeout per run, not one per
    pending delivery, and the run stays within its time budget (the
    maintenance loop that runs it also settles in-doubt transactions).
    """
    outcomes, stopped = [], False
    for delivery, event in jobs:
        stopped = stopped or time.monotonic() > deadline
        if stopped:
            outcomes.append(HELD_BACK)
            continue
        outcome = post_event(endpoint, event, timeout)
        outcomes.append(outcome)
        stopped = not outcome.ok
    return outcomes


def _deliver_on(alias, batch, timeout):
    claimed, lease_until = _claim(alias, batch, _lease_seconds(timeout))
    if not claimed:
        return 0, 0
    deadline = time.monotonic() + _setting("WEBHOOK_RUN_SECONDS", 10)
    endpoints = WebhookEndpoint.objects.in_bulk({d.endpoint_id for d in claimed})
    events = ListingEvent.objects.using(alias).in_bulk([d.event_id for d in claimed])

    jobs, delivered, failed = {}, 0, 0  # endpoint id -> [(delivery, event)], oldest due first
    for delivery in claimed:
        endpoint, event = endpoints.get(delivery.endpoint_id), events.get(delivery.event_id)
        if endpoint is None or not endpoint.is_active or event is None:
            reason = ENDPOINT_DISABLED if event is not None else "event no longer exists"
            _record(delivery, lease_until, status=WebhookDelivery.FAILED, last_error=reason)
            failed += 1
        else:
            jobs.setdefault(endpoint.id, []).append((delivery, event))

    concurrency = _setting("WEBHOOK_CONCURRENCY", 8)
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(jobs)))) as pool:
        sent = {
            endpoint_id: pool.submit(_send_to_endpoint, endpoints[endpoint_id], endpoint_jobs, timeout, deadline)
            for endpoint_id, endpoint_jobs in jobs.items()
        }
        sent = {endpoint_id: future.result() for endpoint_id, future in sent.items()}

    max_attempts = _setting("WEBHOOK_MAX_ATTEMPTS", 12)
    for endpoint_id, outcomes in sent.items():
        endpoint, disabled, pause = endpoints[endpoint_id], False, 0
        for (delivery, _), outcome in zip(jobs[endpoint_id], outcomes):
            now = timezone.now()
            if outcome is HELD_BACK:
                if disabled:
                    _record(delivery, lease_until, status=WebhookDelivery.FAILED, last_error=ENDPOINT_DISABLED)
                    failed += 1
                else:  # wait as long as the endpoint's failures in a row say, without spending an attempt
                    _record(delivery, lease_until, next_attempt_at=now + timedelta(seconds=pause))
                continue
            attempts = delivery.attempts + 1
            if outcome.ok:
                _record(delivery, lease_until, status=WebhookDelivery.DELIVERED, delivered_at=now, attempts=attempts, last_error="")
                WebhookEndpoint.objects.filter(id=endpoint_id).exclude(consecutive_failures=0).update(consecutive_failures=0)
                delivered += 1
                continue
            if attempts >= max_attempts:
                _record(delivery, lease_until, status=WebhookDelivery.FAILED, attempts=attempts, last_error=outcome.error)
                failed += 1
            else:
                _record(
                    delivery, lease_until, attempts=attempts, last_error=outcome.error,
                    next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)),
                )
            disabled = _count_failure(endpoint)
            pause = backoff_seconds(endpoint.consecutive_failures + 1)
    return delivered, failed


@retry_when_moved
def _record(delivery, lease_until, **outcome):
    """Record an outcome only while the claim is still ours, on the worker that holds the delivery now: if its
    shard moved during the POST, the claim moved with it, and the delivery is not sent again."""
    WebhookDelivery.objects.using(node_for_id(delivery.id)).filter(
        id=delivery.id, status=WebhookDelivery.PENDING, next_attempt_at=lease_until,
    ).update(**outcome)


def _count_failure(endpoint):
    """One more failure in a row for the endpoint; disables it at WEBHOOK_DISABLE_AFTER. True if it is now disabled."""
    WebhookEndpoint.objects.filter(id=endpoint.id).update(consecutive_failures=F("consecutive_failures") + 1)
    disabled = WebhookEndpoint.objects.filter(
        id=endpoint.id, is_active=True, consecutive_failures__gte=_setting("WEBHOOK_DISABLE_AFTER", 20),
    ).update(is_active=False, disabled_at=timezone.now())
    if disabled:
        logger.warning("webhook endpoint %s (%s) disabled after repeated failures", endpoint.id, endpoint.url)
    return bool(disabled)


def run_webhooks():
    """The maintenance task: dispatch new events, then send what is due."""
    dispatch_events()
    deliver_due()
