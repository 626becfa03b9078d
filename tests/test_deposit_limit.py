"""The daily deposit limit (settings.DAILY_DEPOSIT_LIMIT): per user and UTC day, checked with the wallet locked,
so a refused deposit changes nothing and two concurrent deposits cannot both slip under it."""
import threading
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from app.core.models import IdempotencyKey
from app.wallet.models import LedgerEntry, Wallet
from app.wallet.services import deposit_funds
from sharding.placement import node_for_user

pytestmark = pytest.mark.usefixtures("clean_marketplace")

URL = "/api/v1/wallet/deposits"
LIMIT = 1000_00  # 1,000.00


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.DAILY_DEPOSIT_LIMIT = LIMIT


def new_user():
    return get_user_model().objects.create_user(f"lim-{uuid.uuid4().hex[:10]}")


def post_deposit(user, amount, key=None):
    client = APIClient()
    client.force_authenticate(user)
    return client.post(URL, {"amount": amount}, format="json", HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex)


def ledger(user):
    return list(LedgerEntry.objects.using(node_for_user(user.id)).filter(user_id=user.id).order_by("id"))


def balance(user):
    wallet = Wallet.objects.using(node_for_user(user.id)).filter(user_id=user.id).first()
    return wallet.balance if wallet else 0


def test_deposits_up_to_the_limit_then_a_422_that_changes_nothing():
    user = new_user()
    assert post_deposit(user, "600.00").status_code == 201
    assert post_deposit(user, "400.00").status_code == 201  # exactly the limit
    entries = ledger(user)

    key = uuid.uuid4().hex
    response = post_deposit(user, "0.01", key=key)
    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert error["code"] == "deposit_limit_exceeded"
    assert error["details"] == {"limit": "1000.00", "deposited_today": "1000.00", "remaining_today": "0.00"}
    assert ledger(user) == entries and balance(user) == LIMIT

    # The key keeps that answer, like any other business error (even once the limit is raised).
    stored = IdempotencyKey.objects.using(node_for_user(user.id)).get(user_id=user.id, key=key)
    assert stored.status_code == 422 and stored.response == response.json()
    again = post_deposit(user, "0.01", key=key)
    assert (again.status_code, again.json()) == (422, response.json())


def test_the_details_say_what_is_left_and_a_smaller_deposit_still_fits():
    user = new_user()
    assert post_deposit(user, "750.00").status_code == 201
    response = post_deposit(user, "250.01")
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {
        "limit": "1000.00", "deposited_today": "750.00", "remaining_today": "250.00",
    }
    assert post_deposit(user, "250.00").status_code == 201
    assert balance(user) == LIMIT


def test_the_limit_is_per_user_and_per_utc_day():
    user, other = new_user(), new_user()
    assert post_deposit(user, "1000.00").status_code == 201
    assert post_deposit(other, "1000.00").status_code == 201  # someone else's deposits do not count
    assert post_deposit(user, "1.00").status_code == 422
    # Yesterday's deposits do not count either.
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    LedgerEntry.objects.using(node_for_user(user.id)).filter(user_id=user.id).update(
        created_at=midnight - timedelta(microseconds=1)
    )
    assert post_deposit(user, "1000.00").status_code == 201
    assert post_deposit(user, "0.01").status_code == 422


def test_one_deposit_above_the_limit_is_refused():
    user = new_user()
    response = post_deposit(user, "1000.01")
    assert response.status_code == 422 and response.json()["error"]["code"] == "deposit_limit_exceeded"
    assert ledger(user) == [] and balance(user) == 0


def test_concurrent_deposits_cannot_both_slip_under_the_limit():
    user = new_user()
    results, barrier = [], threading.Barrier(4)

    def deposit():
        try:
            barrier.wait()
            results.append(deposit_funds(user_id=user.id, amount=400_00, idempotency_key=uuid.uuid4().hex).status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deposit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201, 201, 422, 422]
    assert balance(user) == 800_00 and sum(entry.amount for entry in ledger(user)) == 800_00


def test_the_api_description_lists_the_code():
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(public=True)
    answer = document["paths"]["/api/v1/wallet/deposits"]["post"]["responses"]["422"]
    assert "`deposit_limit_exceeded`" in answer["description"] and "`idempotency_key_reused`" in answer["description"]
