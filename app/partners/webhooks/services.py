"""Partners' webhook endpoints, the business logic behind the API (app.partners.webhook_views): register, list, delete.

Endpoints live on the coordinator. A new endpoint gets a fresh signing secret,
which the API shows once. Deleting one leaves its pending deliveries on the
workers: each is marked failed when it comes due (app.partners.webhooks.delivery).
"""
import secrets
from collections.abc import Collection

from django.db.models import QuerySet

from app.core.errors import NotFound, ServiceError
from app.partners.models import EVENTS, Partner, WebhookEndpoint

from .destinations import check_endpoint_url


def create_endpoint(*, partner: Partner, url: str, events: Collection[str]) -> WebhookEndpoint:
    """A new active endpoint with a fresh signing secret (returned once, by the API that creates it)."""
    check_endpoint_url(url)
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise ServiceError(
            f"events must be some of {', '.join(EVENTS)}.", code="validation_error",
            details={"events": unknown or ["empty"]},
        )
    return WebhookEndpoint.objects.create(
        partner=partner, url=url, events=[e for e in EVENTS if e in set(events)], secret=secrets.token_hex(32),
    )


def endpoints_of(*, partner: Partner) -> QuerySet[WebhookEndpoint]:
    """The partner's endpoints, oldest first."""
    return WebhookEndpoint.objects.filter(partner=partner).order_by("id")


def delete_endpoint(*, partner: Partner, endpoint_id: int) -> None:
    """Delete one of the partner's endpoints; NotFound for anyone else's. Its pending deliveries fail when due."""
    deleted, _ = WebhookEndpoint.objects.filter(partner=partner, id=endpoint_id).delete()
    if not deleted:
        raise NotFound("No such webhook endpoint.")
