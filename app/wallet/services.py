"""Writes to wallets. deposit_funds is a whole operation; the others run inside a transaction on the owner's node."""
from datetime import UTC, datetime, time

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from app.core.errors import ServiceError
from app.core.idempotency import IdempotentResult, fingerprint, run_idempotent
from app.core.money import format_money
from app.wallet.error_codes import WalletErrorCode
from sharding.placement import node_for_user
from sharding.transactions import retry_when_moved

from .models import LedgerEntry, Wallet
from .serializers import DepositOut


def lock_wallets(*user_ids: int) -> dict[int, Wallet]:
    """The users' wallets, created if missing and locked FOR UPDATE in ascending user order.

    One global lock order keeps two purchases between the same users from
    deadlocking across workers, where no deadlock detector would see it.
    """
    locked = {}
    for user_id in sorted(set(user_ids)):
        wallets = Wallet.objects.using(node_for_user(user_id))
        wallet = wallets.select_for_update().filter(user_id=user_id).first()
        if wallet is None:  # a user's first money: one round trip more, once
            wallets.bulk_create([Wallet(user_id=user_id)], ignore_conflicts=True)
            wallet = wallets.select_for_update().get(user_id=user_id)
        locked[user_id] = wallet
    return locked


class InsufficientFunds(ServiceError):
    status, code = 402, WalletErrorCode.INSUFFICIENT_FUNDS


def post_entry(wallet: Wallet, amount: int, kind: str, reference_id: int | None = None) -> LedgerEntry:
    """Change a locked wallet's balance by `amount` (signed minor units) and record it in the ledger."""
    if wallet.balance + amount < 0:
        raise InsufficientFunds(
            "Your balance is too low for this purchase; deposit funds first.",
            details={"balance": format_money(wallet.balance), "needed": format_money(-amount)},
        )
    alias = wallet._state.db
    wallet.balance += amount
    wallet.save(using=alias, update_fields=["balance", "updated_at"])
    return LedgerEntry.objects.using(alias).create(
        user_id=wallet.user_id, kind=kind, amount=amount, balance_after=wallet.balance, reference_id=reference_id
    )


class DepositLimitExceeded(ServiceError):
    status, code = 422, WalletErrorCode.DEPOSIT_LIMIT_EXCEEDED


def deposited_today(wallet: Wallet) -> int:
    """What the wallet's owner has deposited since midnight UTC, in minor units (read on the wallet's node)."""
    midnight = datetime.combine(timezone.now().astimezone(UTC).date(), time.min, UTC)
    return LedgerEntry.objects.using(wallet._state.db).filter(
        user_id=wallet.user_id, kind=LedgerEntry.DEPOSIT, created_at__gte=midnight,
    ).aggregate(total=Sum("amount", default=0))["total"]


def check_daily_deposit_limit(wallet: Wallet, amount: int) -> None:
    """settings.DAILY_DEPOSIT_LIMIT per user and UTC day. The wallet must be locked: two deposits of one user
    then run one after the other, and the second sees the first's ledger entry."""
    limit = settings.DAILY_DEPOSIT_LIMIT
    already = deposited_today(wallet)
    if already + amount > limit:
        raise DepositLimitExceeded(
            f"This deposit would take you over the daily deposit limit of {format_money(limit)}; "
            f"you can deposit {format_money(max(0, limit - already))} more today (UTC).",
            details={
                "limit": format_money(limit), "deposited_today": format_money(already),
                "remaining_today": format_money(max(0, limit - already)),
            },
        )


def deposit(user_id: int, amount: int) -> LedgerEntry:
    (wallet,) = lock_wallets(user_id).values()
    check_daily_deposit_limit(wallet, amount)
    return post_entry(wallet, amount, LedgerEntry.DEPOSIT)


@retry_when_moved
def deposit_funds(*, user_id: int, amount: int, idempotency_key: str) -> IdempotentResult:
    """Credit `amount` minor units once per key: (status, body) of the first attempt with this key."""
    return run_idempotent(
        user_id=user_id, key=idempotency_key, request_hash=fingerprint("deposit", {"amount": amount}),
        nodes=[node_for_user(user_id)], operation=lambda: DepositOut(deposit(user_id, amount)).data,
    )
