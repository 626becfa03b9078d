from sharding.placement import node_for_user

from .models import LedgerEntry, Wallet


def balance_of(user_id):
    wallet = Wallet.objects.using(node_for_user(user_id)).filter(user_id=user_id).only("balance").first()
    return wallet.balance if wallet else 0


def ledger_of(user_id):
    return LedgerEntry.objects.using(node_for_user(user_id)).filter(user_id=user_id)
