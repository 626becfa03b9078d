"""Sharded models that exist only to test the routing layer (it knows nothing about the marketplace)."""
from django.db import models

from sharding.models import ShardedModel


class Note(ShardedModel):
    body = models.TextField()
    rank = models.IntegerField(default=0)


class Account(ShardedModel):
    """A bank account, for testing distributed transactions: money can't appear, vanish or go negative."""

    balance = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="shardtest_account_balance_non_negative")
        ]
