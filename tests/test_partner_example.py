"""examples/partner_sync.py keeps a SQLite copy equal to the listed items, across runs."""
import importlib.util
import sqlite3
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from app.catalog.models import Item
from app.catalog.services import create_item, delete_item, update_item
from app.partners.keys import issue_key
from app.partners.models import Partner

pytestmark = pytest.mark.usefixtures("clean_marketplace")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "partner_sync.py"


def load_example():
    spec = importlib.util.spec_from_file_location("partner_sync", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_partner_sync_follows_every_change(tmp_path, live_server_url):
    example = load_example()
    _, key = issue_key(Partner.objects.create(name="Example"), ["products:read"])
    sellers = [get_user_model().objects.create_user(f"s{i}", f"s{i}@example.com") for i in range(2)]
    items = [create_item(owner=sellers[n % 2], title=f"item {n}", price=100 + n) for n in range(7)]
    db = sqlite3.connect(tmp_path / "partner.sqlite3")
    db.executescript(example.SCHEMA)

    assert example.sync_once(db, live_server_url, key, page_size=3) == 7
    update_item(owner_id=sellers[0].id, item_id=items[0].id, changes={"title": "renamed", "price": 999})
    update_item(owner_id=sellers[1].id, item_id=items[1].id, changes={"status": Item.UNLISTED})
    delete_item(owner_id=sellers[0].id, item_id=items[2].id)
    assert example.sync_once(db, live_server_url, key, page_size=2) == 3
    assert example.sync_once(db, live_server_url, key) == 0

    stored = dict(db.execute("SELECT id, title FROM product").fetchall())
    expected = {str(item.id): item.title for item in items if item.id not in (items[1].id, items[2].id)}
    expected[str(items[0].id)] = "renamed"
    assert stored == expected
    assert db.execute("SELECT price FROM product WHERE id = ?", (str(items[0].id),)).fetchone() == ("9.99",)
