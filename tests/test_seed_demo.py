"""manage.py seed_demo on the test cluster: users, items on every worker, consistent money and orders."""
import os
import secrets
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum

from app.catalog.models import Item, Photo
from app.orders.models import Purchase, Sale
from app.wallet.models import LedgerEntry, Wallet
from sharding.placement import all_workers, node_for_user
from tests.conftest import REPO


def per_worker(count):
    return {alias: count(alias) for alias in all_workers()}


def test_seed_demo_fills_every_worker_consistently(clean_marketplace):
    out = StringIO()
    call_command("seed_demo", users=12, items=200, sales=10, seed=1, stdout=out, stderr=StringIO())

    User = get_user_model()
    assert User.objects.filter(username__startswith="demo").count() == 12
    assert User.objects.filter(username="demo12", email="demo12@example.com").exists()

    originals = per_worker(lambda alias: Item.objects.using(alias).filter(source_item_id__isnull=True).count())
    assert all(count > 0 for count in originals.values()), originals
    assert sum(originals.values()) == 200

    # Every item has a demo photo (bought ones a copy of their listing's), made with Pillow, on the item's worker.
    for alias in all_workers():
        items = set(Item.objects.using(alias).values_list("id", flat=True))
        photos = list(Photo.objects.using(alias).all())
        assert {photo.item_id for photo in photos} == items, alias
        assert all(photo.width == 800 and photo.height == 600 for photo in photos)
        assert all(default_storage.exists(name) for photo in photos for name in (photo.image, photo.thumbnail))
    assert "photos: 200 items with a demo photo" in out.getvalue()

    sales = sum(per_worker(lambda alias: Sale.objects.using(alias).count()).values())
    purchases = sum(per_worker(lambda alias: Purchase.objects.using(alias).count()).values())
    bought = sum(
        per_worker(lambda alias: Item.objects.using(alias).filter(source_item_id__isnull=False).count()).values()
    )
    sold = sum(per_worker(lambda alias: Item.objects.using(alias).filter(status=Item.SOLD).count()).values())
    assert sales == purchases == bought == sold
    assert sales in range(1, 11)
    assert f"sales:  {sales} made" in out.getvalue()

    wallets = 0
    for alias in all_workers():
        ledger = dict(
            LedgerEntry.objects.using(alias).values("user_id").annotate(total=Sum("amount"))
            .values_list("user_id", "total")
        )
        for user_id, balance in Wallet.objects.using(alias).values_list("user_id", "balance"):
            assert node_for_user(user_id) == alias
            assert balance == ledger.get(user_id, 0), f"wallet of user {user_id} on {alias}"
            wallets += 1
    assert wallets == 12 + 2  # demo users, alice and bob: one deposit each

    alice = authenticate(username="alice", password="demo-pass-123")
    bob = authenticate(username="bob", password="demo-pass-123")
    assert alice is not None and not alice.is_staff
    assert bob is not None and bob.is_staff
    assert authenticate(username="demo3", password="demo-pass-123") is not None


def test_if_empty_does_nothing_when_items_exist(clean_marketplace):
    call_command("seed_demo", users=3, items=20, sales=0, seed=2, stdout=StringIO(), stderr=StringIO())
    before = sum(per_worker(lambda alias: Item.objects.using(alias).count()).values())
    assert before == 20

    out = StringIO()
    call_command("seed_demo", users=3, items=20, if_empty=True, stdout=out, stderr=StringIO())
    assert "nothing to do" in out.getvalue()
    assert sum(per_worker(lambda alias: Item.objects.using(alias).count()).values()) == before
    assert get_user_model().objects.filter(username__startswith="demo").count() == 3


@pytest.mark.parametrize(
    "options, message",
    [
        ({"users": 1, "items": 10}, "--users"),
        ({"users": 5, "items": -1}, "--items"),
        ({"users": 5, "items": 10, "sales": -3}, "--sales"),
    ],
)
def test_bad_arguments_are_refused(options, message):
    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", stdout=StringIO(), stderr=StringIO(), **options)


def test_seed_demo_refuses_to_run_with_production_settings(clean_marketplace):
    """The demo logins (staff bob / demo-pass-123) must never exist in production."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "app.settings", "MARKETPLACE_ENV": "production",
           "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": "market.example.com"}
    result = subprocess.run([sys.executable, "manage.py", "seed_demo", "--users", "2", "--items", "0"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "production" in result.stderr, result.stderr
    assert not get_user_model().objects.filter(username__in=["alice", "bob", "demo1"]).exists()
