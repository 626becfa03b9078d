"""A request's deadline (sharding.deadline): past it, an open transaction sends no statement and rolls back, and no
lock wait outlasts it; statements outside a transaction still run. A slow node costs a request a few seconds."""
import threading
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from rest_framework.test import APIClient

from app.wallet.models import LedgerEntry, Wallet
from app.wallet.services import deposit_funds
from sharding.deadline import DeadlineExceededError, deadline_after
from sharding.placement import all_workers, node_for_user
from sharding.transactions import atomic_on_nodes
from tests.bank import balances, open_account
from tests.test_two_phase_commit import prepared_everywhere, users_on


@pytest.fixture
def bank(clean_shardtest):
    yield


@pytest.mark.own_engine  # the deadline between the participants of our two-phase commit
def test_a_transaction_sends_no_statement_once_the_deadline_has_passed(bank):
    worker1, worker2 = all_workers()[:2]
    first = open_account(users_on(worker1, 1)[0], 100)
    second = open_account(users_on(worker2, 1)[0], 100)
    with deadline_after(0.3), pytest.raises(DeadlineExceededError) as raised:
        with atomic_on_nodes([worker1, worker2]):
            type(first).objects.using(worker1).filter(id=first.id).update(balance=0)
            time.sleep(0.4)
            type(second).objects.using(worker2).filter(id=second.id).update(balance=200)
    assert raised.value.nodes == [worker2]
    assert balances([first, second]) == {first.id: 100, second.id: 100}  # both branches rolled back
    assert prepared_everywhere() == []


def test_statements_outside_a_transaction_and_a_commit_are_never_refused(bank):
    worker = all_workers()[0]
    account = open_account(users_on(worker, 1)[0], 100)
    with deadline_after(0.05):
        with atomic_on_nodes([worker]):
            type(account).objects.using(worker).filter(id=account.id).update(balance=50)
            time.sleep(0.1)  # past the deadline before the COMMIT: the work is done, it commits
        assert balances([account]) == {account.id: 50}  # a read in autocommit, past the deadline


def test_no_deadline_outside_a_request(bank):
    worker = all_workers()[0]
    account = open_account(users_on(worker, 1)[0], 100)
    with atomic_on_nodes([worker]):
        time.sleep(0.05)
        type(account).objects.using(worker).filter(id=account.id).update(balance=1)
    assert balances([account]) == {account.id: 1}


@pytest.fixture
def deposit_user(clean_marketplace):
    user = get_user_model().objects.create_user(f"deadline-{uuid.uuid4().hex[:10]}")
    deposit_funds(user_id=user.id, amount=10_00, idempotency_key="first")
    return user


def locked_wallet(user, locked, release):
    """In a thread of its own: lock the user's wallet row until `release` is set."""
    alias = node_for_user(user.id)
    try:
        with transaction.atomic(using=alias):
            Wallet.objects.using(alias).select_for_update().get(user_id=user.id)
            locked.set()
            release.wait(30)
    finally:
        connections[alias].close()


def test_a_lock_wait_ends_at_the_request_deadline_with_a_503_that_changes_nothing(deposit_user, settings):
    settings.SHARDING = {**settings.SHARDING, "REQUEST_DEADLINE_SECONDS": 1.0, "LOCK_TIMEOUT_MS": 8000}
    alias = node_for_user(deposit_user.id)
    entries = LedgerEntry.objects.using(alias).filter(user_id=deposit_user.id).count()
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=locked_wallet, args=(deposit_user, locked, release))
    holder.start()
    try:
        assert locked.wait(10)
        client = APIClient()
        client.force_authenticate(deposit_user)
        started = time.monotonic()
        response = client.post("/api/v1/wallet/deposits", {"amount": "5.00"}, format="json",
                               HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)
        took = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "try_again" and response["Retry-After"]
    assert took < 3, f"the lock wait took {took:.1f} s, past the 1 s deadline (lock_timeout is 8 s)"
    assert Wallet.objects.using(alias).get(user_id=deposit_user.id).balance == 10_00
    assert LedgerEntry.objects.using(alias).filter(user_id=deposit_user.id).count() == entries
