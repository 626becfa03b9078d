"""Partner stores (on the coordinator) and the delivery state of their webhooks (on the workers)."""
from django.contrib.postgres.fields import ArrayField
from django.db import models

from sharding.models import ShardedModel

SCOPES = ["products:read", "webhooks:manage"]
EVENTS = ["listing.created", "listing.updated", "listing.sold", "listing.deleted"]


class Partner(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class ApiKey(models.Model):
    """A partner's key. Only a SHA-256 of it is stored (keys are long random strings), plus a prefix to find it."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="keys")
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=32), default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix}… ({self.partner})"


class RateLimitWindow(models.Model):
    """Requests of one key in one fixed window, counted on the coordinator so every server process shares it."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE)
    window_start = models.DateTimeField()
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="partners_rate_window_once")]


class WebhookEndpoint(models.Model):
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=64)  # signs deliveries (HMAC-SHA256), so it is kept, not hashed
    events = ArrayField(models.CharField(max_length=32))
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.IntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class WebhookDelivery(ShardedModel):
    """One event to one endpoint, next to the event on the listing owner's shard."""

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

    event_id = models.BigIntegerField()
    endpoint_id = models.BigIntegerField()
    status = models.CharField(max_length=16, default=PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event_id", "endpoint_id"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="webhook_delivery_due"),
        ]
