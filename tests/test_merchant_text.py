"""Sellers' text in the merchant feeds: control characters never reach them (taken out when titles and
descriptions are saved, by the API, the web forms and the services, and again on output), and TSV cells
that a spreadsheet would run as a formula are kept as text."""
import csv
import io
import json
import uuid
import xml.etree.ElementTree as ET

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from app.catalog.models import Item
from app.catalog.services import create_item, update_item
from app.partners.keys import issue_key
from app.partners.models import Partner
from sharding.placement import all_workers, node_for_id
from tests.images import give_photo

pytestmark = pytest.mark.usefixtures("clean_marketplace")

NASTY_TITLE = "Lamp\x00\x07 with\x1b[31m red\x0cshade\ud800\ufffe\x85"
NASTY_DESCRIPTION = "Line one\r\nLine two\rLine three\tcol\x0b\x00\x1f end"
CLEAN_TITLE = "Lamp with[31m redshade"
CLEAN_DESCRIPTION = "Line one\nLine two\nLine three\tcol end"


def new_user():
    return get_user_model().objects.create_user(f"mt-{uuid.uuid4().hex[:10]}", password="a-long-enough-pass-42")


class JSONClient(APIClient):
    """Sends JSON with \\u escapes (as most clients do), so lone surrogates such as \\ud800 can be sent."""

    def post(self, path, data=None, **extra):
        return super().post(path, json.dumps(data), content_type="application/json", **extra)

    def patch(self, path, data=None, **extra):
        return super().patch(path, json.dumps(data), content_type="application/json", **extra)


def api_for(user):
    client = JSONClient()
    client.force_authenticate(user)
    return client


def partner():
    return {"HTTP_AUTHORIZATION": f"Api-Key {issue_key(Partner.objects.create(name='Acme'), ['products:read'])[1]}"}


def stored(item_id):
    return Item.objects.using(node_for_id(int(item_id))).get(id=int(item_id))


def test_the_api_takes_control_characters_out_when_saving():
    client = api_for(new_user())
    response = client.post("/api/v1/items", {"title": NASTY_TITLE, "description": NASTY_DESCRIPTION, "price": "5.00",
                                             "category": "ho\x00me\tware"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["title"], body["description"], body["category"]) == (CLEAN_TITLE, CLEAN_DESCRIPTION, "home ware")
    item = stored(body["id"])
    assert (item.title, item.description, item.category) == (CLEAN_TITLE, CLEAN_DESCRIPTION, "home ware")

    response = client.patch(f"/api/v1/items/{body['id']}", {"title": "New\x00 \x1btitle", "description": "a\x00\r\nb"})
    assert response.status_code == 200, response.json()
    assert (stored(body["id"]).title, stored(body["id"]).description) == ("New title", "a\nb")


@pytest.mark.parametrize("title", ["\x00", "\x00\x01\x1b", "\t\n\r", "\ud800"])
def test_a_title_of_nothing_but_control_characters_is_blank(title):
    client = api_for(new_user())
    response = client.post("/api/v1/items", {"title": title, "price": "5.00"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error", response.json()
    assert set(response.json()["error"]["details"]) == {"title"}
    assert not any(Item.objects.using(alias).exists() for alias in all_workers())


def test_the_web_form_and_the_services_take_them_out_too():
    user = new_user()
    client = Client()
    client.force_login(user)
    response = client.post("/sell/", {"title": NASTY_TITLE.replace("\ud800", ""), "description": NASTY_DESCRIPTION,
                                      "price": "5.00", "category": ""})
    assert response.status_code == 302, response.content[:500]
    item_id = int(response["Location"].strip("/").split("/")[-1])
    (item,) = Item.objects.using(node_for_id(item_id)).filter(user_id=user.id)
    assert (item.title, item.description) == (CLEAN_TITLE, CLEAN_DESCRIPTION)

    direct = create_item(owner=user, title=NASTY_TITLE, description=NASTY_DESCRIPTION, price=100)
    assert (stored(direct.id).title, stored(direct.id).description) == (CLEAN_TITLE, CLEAN_DESCRIPTION)
    update_item(owner_id=user.id, item_id=direct.id, changes={"title": "x\x00y"})
    assert stored(direct.id).title == "xy"


def test_the_xml_feed_stays_well_formed_with_old_rows_that_hold_control_characters():
    seller = new_user()
    item = create_item(owner=seller, title="Placeholder", price=1500)
    good = create_item(owner=seller, title="Teapot & <cups>", description="Blue", price=900)
    for listed in (item, good):
        give_photo(listed)  # the Google feeds list items with a photo only
    # A row saved before titles were cleaned (straight into the table, past every check).
    Item.objects.using(node_for_id(item.id)).filter(id=item.id).update(
        title="Lamp\x01\x02\x1b\x0b shade", description="Old\x08 text\x0c\nsecond line"  # (PostgreSQL never holds NUL)
    )
    response = Client().get("/api/partner/v1/feeds/google.xml", **partner())
    assert response.status_code == 200
    document = b"".join(response.streaming_content)
    root = ET.fromstring(document)  # ill-formed XML raises here
    namespace = {"g": "http://base.google.com/ns/1.0"}
    titles = {entry.find("g:id", namespace).text: (entry.find("g:title", namespace).text,
                                                   entry.find("g:description", namespace).text)
              for entry in root.iter("item")}
    assert titles == {str(item.id): ("Lamp shade", "Old text\nsecond line"), str(good.id): ("Teapot & <cups>", "Blue")}


FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+1+1", "-2+3", "@SUM(A1)", "=1"]


def test_tsv_cells_that_a_spreadsheet_would_run_get_a_leading_apostrophe():
    seller = new_user()
    items = [
        create_item(owner=seller, title=title, description=title, price=100 + n) for n, title in enumerate(FORMULAS)
    ]
    plain = create_item(owner=seller, title="Plain - not a formula", description="-", price=100)
    # Old rows whose cells start with a tab or a CR: cleaned to a space on output, never run.
    tabbed = create_item(owner=seller, title="Placeholder", price=300)
    for listed in (*items, plain, tabbed):
        give_photo(listed)  # the Google feeds list items with a photo only
    Item.objects.using(node_for_id(tabbed.id)).filter(id=tabbed.id).update(title="\t=1+2", description="\r=3+4")
    response = Client().get("/api/partner/v1/feeds/google.tsv", **partner())
    assert response.status_code == 200
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()),
                                                     delimiter="\t")}
    for item, formula in zip(items, FORMULAS, strict=True):
        assert rows[str(item.id)]["title"] == "'" + formula
        assert rows[str(item.id)]["description"] == "'" + formula
        assert rows[str(item.id)]["price"] == f"{item.price // 100}.{item.price % 100:02d} USD"
    assert rows[str(plain.id)]["title"] == "Plain - not a formula" and rows[str(plain.id)]["description"] == "'-"
    assert not rows[str(tabbed.id)]["title"].startswith(("=", "+", "-", "@", "\t", "\r"))
    assert not rows[str(tabbed.id)]["description"].startswith(("=", "+", "-", "@", "\t", "\r"))
