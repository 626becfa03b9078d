from django.db import models

from sharding.models import ShardedModel


class Wallet(ShardedModel):
    """A user's balance in minor units; never negative, enforced by the database."""

    balance = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id"], name="wallet_one_per_user"),
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="wallet_balance_non_negative"),
        ]


class LedgerEntry(ShardedModel):
    """One movement of a wallet's balance, written in the same transaction as the change."""

    DEPOSIT, PURCHASE, SALE = "deposit", "purchase", "sale"
    KINDS = [(DEPOSIT, "Deposit"), (PURCHASE, "Purchase"), (SALE, "Sale")]

    kind = models.CharField(max_length=16, choices=KINDS)
    amount = models.BigIntegerField()  # signed: negative for money leaving the wallet
    balance_after = models.BigIntegerField()
    reference_id = models.BigIntegerField(null=True)  # the purchase or sale behind the movement
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount=0), name="ledger_amount_not_zero"),
            models.CheckConstraint(condition=models.Q(balance_after__gte=0), name="ledger_balance_after_non_negative"),
        ]
        indexes = [models.Index(fields=["user_id", "-id"], name="ledger_user_newest")]
