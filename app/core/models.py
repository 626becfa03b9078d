from django.db import models

from sharding.models import ShardedModel


class IdempotencyKey(ShardedModel):
    """A client's Idempotency-Key and the response it got, on the client's own shard.

    Written in the same transaction as the money movement it guards, so the
    key exists exactly when the movement does.
    """

    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.SmallIntegerField(null=True)
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "key"], name="core_idempotency_key_per_user")]
        indexes = [models.Index(fields=["created_at"], name="core_idempotency_created")]
