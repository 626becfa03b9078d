"""Partner webhooks: the outbox (catalog.ListingEvent) turned into signed HTTP POSTs to partners' endpoints.

One job per module:

- `signing`: the body and headers of a POST and their HMAC-SHA256 signature (`verify_signature` is for partners);
- `destinations`: which URLs and ports webhooks may go to (SSRF; the addresses are checked by app.partners.http);
- `services`: partners' endpoints (register, list, delete), behind the API (app.partners.webhook_views);
- `outbox`: `dispatch_events`, undispatched outbox events turned into one delivery per subscribed endpoint;
- `delivery`: `deliver_due`, the worker that sends due deliveries (leases, a thread pool, backoff, auto-disable).

Both steps are run by `manage.py maintenance` (settings.MAINTENANCE_TASKS), through `run_webhooks`:

1. `dispatch_events`: on each worker, undispatched outbox events become one
   WebhookDelivery per subscribed active endpoint, on the event's shard, and
   the events are marked dispatched, all in one local transaction.
2. `deliver_due`: on each worker, due pending deliveries are claimed with a
   lease, POSTed outside any transaction, and their outcome recorded only if
   the claim is still ours; a run stops sending after settings.WEBHOOK_RUN_SECONDS.

Delivery is **at least once**, not ordered; partners deduplicate on the event id
(details in `delivery`). The settings are the WEBHOOK_* ones of app/settings.py.
"""
from .delivery import deliver_due
from .outbox import dispatch_events
from .signing import event_body, sign, verify_signature

__all__ = ["deliver_due", "dispatch_events", "event_body", "run_webhooks", "sign", "verify_signature"]


def run_webhooks() -> None:
    """The maintenance task: dispatch new events, then send what is due."""
    dispatch_events()
    deliver_due()
