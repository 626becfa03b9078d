"""A tiny bank over the shards, to test distributed transactions: money moves, never appears or vanishes."""
from django.db.models import F

from sharding.placement import node_for_id, node_for_user
from sharding.transactions import atomic_on_nodes
from tests.shardtest.models import Account


class InsufficientFunds(Exception):
    pass


def open_account(user_id, balance):
    return Account.objects.using(node_for_user(user_id)).create(user_id=user_id, balance=balance)


def transfer(source_id, target_id, amount):
    """Move `amount` from one account to another, atomically across workers."""
    source_node, target_node = node_for_id(source_id), node_for_id(target_id)
    with atomic_on_nodes([source_node, target_node]):
        debited = (
            Account.objects.using(source_node)
            .filter(id=source_id, balance__gte=amount)
            .update(balance=F("balance") - amount)
        )
        if not debited:
            raise InsufficientFunds(source_id)
        Account.objects.using(target_node).filter(id=target_id).update(balance=F("balance") + amount)


def balances(accounts):
    found = {}
    for account in accounts:
        node = node_for_id(account.id)
        found[account.id] = Account.objects.using(node).get(id=account.id).balance
    return found
