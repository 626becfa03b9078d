"""Delivery: due webhook deliveries claimed with a lease, POSTed, and their outcome recorded.

On each worker, due pending deliveries are claimed with a lease (a short
transaction pushes `next_attempt_at` ahead), POSTed outside any transaction
(endpoints in parallel, each endpoint's deliveries one after the other), and
their outcome recorded only if the claim is still ours. An endpoint's first
failure in a run holds its other deliveries back (without spending their
attempts) for as long as its failures in a row say, and a run stops sending
after settings.WEBHOOK_RUN_SECONDS, so a down or slow endpoint costs one timeout
per run and cannot stall the maintenance loop (which also settles in-doubt
transactions).

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
import logging
import random
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from app.catalog.models import ListingEvent
from app.partners.http import PostFailed, post_bounded
from app.partners.models import WebhookDelivery, WebhookEndpoint
from sharding.placement import all_workers, node_for_id, row_lock_scopes
from sharding.transactions import retry_when_moved

from .destinations import allowed_ports
from .signing import event_body, signed_headers

logger = logging.getLogger("app.partners.webhooks")

MAX_BACKOFF_SECONDS = 3600
ENDPOINT_DISABLED = "endpoint disabled"


def backoff_seconds(attempts: int) -> float:
    """2**attempts seconds, at most an hour, with "equal jitter" (between half of that and all of it)."""
    delay = min(2 ** min(attempts, 32), MAX_BACKOFF_SECONDS)
    return delay / 2 + random.uniform(0, delay / 2)


@dataclass
class Outcome:
    ok: bool
    error: str = ""


HELD_BACK = None  # the outcome of a claimed delivery that was not sent in this run

Job = tuple[WebhookDelivery, ListingEvent]


def post_event(endpoint: WebhookEndpoint, event: ListingEvent, timeout: float) -> Outcome:
    """POST one event to one endpoint; never raises.

    The whole exchange ends within `timeout` seconds and at most
    WEBHOOK_RESPONSE_MAX_BYTES of the answer are read (app.partners.http), so a
    receiver that drips bytes or never answers costs one timeout.
    """
    body = event_body(event)
    try:
        answer = post_bounded(
            endpoint.url, body, signed_headers(endpoint.secret, event.id, body),
            deadline_seconds=timeout, max_bytes=settings.WEBHOOK_RESPONSE_MAX_BYTES,
            allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES, allowed_ports=allowed_ports(),
        )
    except PostFailed as exc:
        return Outcome(False, str(exc)[:500])
    if 200 <= answer.status < 300:
        return Outcome(True)
    return Outcome(False, f"HTTP {answer.status}: {answer.body[:200].decode(errors='replace')}")


def deliver_due(batch: int = 100, timeout: float = 5) -> tuple[int, int]:
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
    return totals[0], totals[1]


def _lease_seconds(timeout: float) -> float:
    """Long enough for a whole run: sending stops at the time budget, plus one POST that started just before it."""
    return max(settings.WEBHOOK_LEASE_SECONDS, settings.WEBHOOK_RUN_SECONDS + 2 * timeout + 10)


def _claim(alias: str, batch: int, lease: float) -> tuple[list[WebhookDelivery], datetime]:
    """Due pending deliveries, pushed `lease` seconds ahead so that nobody else sends them meanwhile."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease)
    claimed: list[WebhookDelivery] = []
    for scope in row_lock_scopes(alias):
        with transaction.atomic(using=alias):
            found = list(
                WebhookDelivery.objects.using(alias).select_for_update(skip_locked=True)
                .filter(**scope, status=WebhookDelivery.PENDING, next_attempt_at__lte=now)
                .order_by("next_attempt_at", "id")[:batch - len(claimed)]
            )
            if found:
                WebhookDelivery.objects.using(alias).filter(**scope, id__in=[d.id for d in found]).update(
                    next_attempt_at=lease_until,
                )
        claimed += found
        if len(claimed) >= batch:
            break
    return claimed, lease_until


def _send_to_endpoint(
    endpoint: WebhookEndpoint, jobs: Sequence[Job], timeout: float, deadline: float,
) -> list[Outcome | None]:
    """POST the endpoint's deliveries one after the other, stopping at its first failure or at the deadline.

    A down or slow endpoint thus costs one timeout per run, not one per
    pending delivery, and the run stays within its time budget (the
    maintenance loop that runs it also settles in-doubt transactions).
    """
    outcomes: list[Outcome | None] = []
    stopped = False
    for _delivery, event in jobs:
        stopped = stopped or time.monotonic() > deadline
        if stopped:
            outcomes.append(HELD_BACK)
            continue
        outcome = post_event(endpoint, event, timeout)
        outcomes.append(outcome)
        stopped = not outcome.ok
    return outcomes


def _deliver_on(alias: str, batch: int, timeout: float) -> tuple[int, int]:
    claimed, lease_until = _claim(alias, batch, _lease_seconds(timeout))
    if not claimed:
        return 0, 0
    deadline = time.monotonic() + settings.WEBHOOK_RUN_SECONDS
    endpoints = WebhookEndpoint.objects.in_bulk({d.endpoint_id for d in claimed})
    events = ListingEvent.objects.using(alias).in_bulk([d.event_id for d in claimed])

    jobs: dict[int, list[Job]] = {}  # endpoint id -> [(delivery, event)], oldest due first
    delivered, failed = 0, 0
    for delivery in claimed:
        endpoint, event = endpoints.get(delivery.endpoint_id), events.get(delivery.event_id)
        if endpoint is None or not endpoint.is_active or event is None:
            reason = ENDPOINT_DISABLED if event is not None else "event no longer exists"
            _record(delivery, lease_until, status=WebhookDelivery.FAILED, last_error=reason)
            failed += 1
        else:
            jobs.setdefault(endpoint.id, []).append((delivery, event))

    with ThreadPoolExecutor(max_workers=max(1, min(settings.WEBHOOK_CONCURRENCY, len(jobs)))) as pool:
        futures: dict[int, Future[list[Outcome | None]]] = {
            endpoint_id: pool.submit(_send_to_endpoint, endpoints[endpoint_id], endpoint_jobs, timeout, deadline)
            for endpoint_id, endpoint_jobs in jobs.items()
        }
        sent = {endpoint_id: future.result() for endpoint_id, future in futures.items()}

    for endpoint_id, outcomes in sent.items():
        endpoint, disabled, pause = endpoints[endpoint_id], False, 0.0
        for (delivery, _), outcome in zip(jobs[endpoint_id], outcomes, strict=True):
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
                _record(
                    delivery, lease_until,
                    status=WebhookDelivery.DELIVERED, delivered_at=now, attempts=attempts, last_error="",
                )
                WebhookEndpoint.objects.filter(id=endpoint_id).exclude(consecutive_failures=0).update(
                    consecutive_failures=0,
                )
                delivered += 1
                continue
            if attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
                _record(
                    delivery, lease_until, status=WebhookDelivery.FAILED, attempts=attempts, last_error=outcome.error,
                )
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
def _record(delivery: WebhookDelivery, lease_until: datetime, **outcome: Any) -> None:
    """Record an outcome only while the claim is still ours, on the worker that holds the delivery now: if its
    shard moved during the POST, the claim moved with it, and the delivery is not sent again."""
    WebhookDelivery.objects.using(node_for_id(delivery.id)).filter(
        id=delivery.id, status=WebhookDelivery.PENDING, next_attempt_at=lease_until,
    ).update(**outcome)


def _count_failure(endpoint: WebhookEndpoint) -> bool:
    """One more failure in a row for the endpoint; disables it at WEBHOOK_DISABLE_AFTER. True if it is now disabled."""
    WebhookEndpoint.objects.filter(id=endpoint.id).update(consecutive_failures=F("consecutive_failures") + 1)
    disabled = WebhookEndpoint.objects.filter(
        id=endpoint.id, is_active=True, consecutive_failures__gte=settings.WEBHOOK_DISABLE_AFTER,
    ).update(is_active=False, disabled_at=timezone.now())
    if disabled:
        logger.warning("webhook endpoint %s (%s) disabled after repeated failures", endpoint.id, endpoint.url)
    return bool(disabled)

