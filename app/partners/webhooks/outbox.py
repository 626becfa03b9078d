"""Dispatch: the outbox (catalog.ListingEvent, recorded by app.catalog.events) turned into webhook deliveries.

On each worker, undispatched outbox events become one WebhookDelivery per
subscribed active endpoint, on the event's shard, and the events are marked
dispatched, all in one local transaction (`SELECT ... FOR UPDATE SKIP LOCKED`,
so two maintenance processes never dispatch the same event). Sending them is
app.partners.webhooks.delivery's job.
"""
import logging
from collections.abc import Sequence
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone

from app.catalog.models import ListingEvent
from app.partners.models import WebhookDelivery, WebhookEndpoint
from sharding.placement import all_workers, row_lock_scopes

logger = logging.getLogger("app.partners.webhooks")


def dispatch_events(batch: int = 500) -> int:
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


def _dispatch_on(alias: str, endpoints: Sequence[WebhookEndpoint], read_at: datetime, batch: int) -> int:
    return sum(_dispatch_scope(alias, scope, endpoints, read_at, batch) for scope in row_lock_scopes(alias))


def _dispatch_scope(
    alias: str, scope: dict[str, int], endpoints: Sequence[WebhookEndpoint], read_at: datetime, batch: int
) -> int:
    created = 0
    while True:
        with transaction.atomic(using=alias):
            events = list(
                ListingEvent.objects.using(alias).select_for_update(skip_locked=True)
                .filter(**scope, dispatched_at=None, created_at__lte=read_at).order_by("id")[:batch]
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
            ListingEvent.objects.using(alias).filter(**scope, id__in=[event.id for event in events]).update(
                dispatched_at=now
            )
            created += len(deliveries)
        if len(events) < batch:
            return created
