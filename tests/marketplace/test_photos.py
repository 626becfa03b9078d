"""Listing photos over HTTP against the live server: uploads and their renditions, refusals that store nothing,
who may change them, purchases that carry them (on one worker and across two), deletions that remove the
files, the maintenance clean-up, the partner and Google feeds, listing.updated events, and shard moves."""
import io
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from app.catalog.images import process_image
from app.catalog.models import ListingEvent, Photo
from app.catalog.services import MAX_PHOTOS, add_photo, create_item, purge_orphan_files
from sharding.placement import node_for_id, node_for_user
from tests import images
from tests.conftest import two_workers

from .conftest import assert_error, describe

PHOTO_KEYS = {"id", "url", "thumbnail_url", "width", "height", "position"}


def media_files():
    """Every stored photo file (name relative to MEDIA_ROOT)."""
    root = Path(settings.MEDIA_ROOT)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def upload(mk, user, item_id, data, name="photo.jpg", content_type="image/jpeg"):
    return requests.post(
        mk.url(f"items/{item_id}/photos"), headers=user["headers"], files={"image": (name, data, content_type)},
        timeout=60,
    )


def add(mk, user, item_id, data=None, **kwargs):
    response = upload(mk, user, item_id, images.jpeg((800, 600)) if data is None else data, **kwargs)
    assert response.status_code == 201, describe(response)
    return response.json()


def served(mk, url):
    """The bytes the site serves for a photo URL (the path on the live server: SITE_URL names another port)."""
    response = requests.get(mk.base_url + urlsplit(url).path, timeout=30)
    assert response.status_code == 200, f"{url}: {response.status_code}"
    return response.content


def stored_name(url):
    return urlsplit(url).path.removeprefix(settings.MEDIA_URL)


# --------------------------------------------------------------------------- upload


def test_an_upload_is_turned_upright_resized_and_served_without_its_gps_position(mk):
    seller = mk.register()
    item = mk.list_item(seller, title="Film camera")
    original = images.jpeg((3000, 2000), orientation=6)  # a phone held upright: the pixels lie on their side
    assert images.has_gps(original)
    before = media_files()

    response = upload(mk, seller, item["id"], original)
    assert response.status_code == 201, describe(response)
    photo = response.json()
    assert set(photo) == PHOTO_KEYS and photo["position"] == 0, photo
    assert (photo["width"], photo["height"]) == (1333, 2000)  # upright, longest side 2000

    full, thumbnail = served(mk, photo["url"]), served(mk, photo["thumbnail_url"])
    assert images.size_of(full) == (1333, 2000)
    assert images.size_of(thumbnail) == (533, 800)
    for data in (full, thumbnail):
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG"
        assert not images.has_gps(data) and dict(image.getexif()) == {}, "metadata survived"
    # Two new files, with names that tell nothing of the seller or the item.
    new = media_files() - before
    assert new == {stored_name(photo["url"]), stored_name(photo["thumbnail_url"])}
    for name in new:  # 128 random bits, nothing else
        assert re.fullmatch(r"photos/([0-9a-f]{2})/\1[0-9a-f]{30}\.jpg", name), name
        assert seller["username"] not in name and item["id"] not in name, name

    # PNG and WebP are accepted too, and become the next photos.
    second = add(mk, seller, item["id"], images.png((400, 300)), name="a.png", content_type="image/png")
    third = add(mk, seller, item["id"], images.webp(), name="b.webp", content_type="image/webp")
    assert (second["position"], second["width"], second["height"]) == (1, 400, 300)
    assert third["position"] == 2

    # Every response that carries the item carries its photos in display order.
    detail = mk.get(f"items/{item['id']}", seller).json()
    assert [p["id"] for p in detail["photos"]] == [photo["id"], second["id"], third["id"]]
    assert detail["thumbnail_url"] == photo["thumbnail_url"]
    inventory = mk.get("items", seller).json()["results"]
    assert [p["id"] for p in inventory[0]["photos"]] == [photo["id"], second["id"], third["id"]]
    shopper = mk.register()
    found = mk.get("listings", shopper, params={"q": "film camera"}).json()["results"]
    assert [row["thumbnail_url"] for row in found] == [photo["thumbnail_url"]]
    assert len(found[0]["photos"]) == 3
    overview = mk.get("me/overview", seller).json()
    assert overview["listed"]["latest"][0]["photos"][0]["id"] == photo["id"]
    assert mk.get(f"items/{item['id']}").json()["photos"][0]["url"] == photo["url"]  # anonymous: a listed item


def test_each_bad_file_is_refused_with_what_is_wrong_and_nothing_is_stored(mk, refusals):
    seller = mk.register()
    item = mk.list_item(seller)
    full = mk.list_item(seller)
    for _ in range(MAX_PHOTOS):
        add(mk, seller, full["id"], images.png((120, 120)), name="p.png", content_type="image/png")
    before = media_files()
    cases = [
        ("not an image", b"just some text, not a picture", "notes.jpg", "image/jpeg", 400, "invalid_image",
         "not an image"),
        ("a text file", b"hello", "notes.txt", "text/plain", 400, "invalid_image", "text/plain"),
        ("PNG content sent as a JPEG", images.png(), "photo.jpg", "image/jpeg", 400, "invalid_image",
         "content is a PNG"),
        ("a GIF", _gif(), "anim.gif", "image/gif", 400, "invalid_image", "image/gif"),
        ("a decompression bomb", images.bomb(), "bomb.png", "image/png", 400, "invalid_image", "decompression bomb"),
        ("over 10 MB", images.jpeg((200, 200)) + b"\0" * (10 * 1024 * 1024), "big.jpg", "image/jpeg", 400,
         "invalid_image", "at most 10,485,760"),
        ("a request over the size limit", b"\0" * (11 * 1024 * 1024), "huge.jpg", "image/jpeg", 413,
         "request_too_large", "over"),
        ("smaller than 100 x 100", images.png((99, 400)), "small.png", "image/png", 400, "invalid_image",
         "at least 100 x 100"),
        ("truncated", images.jpeg((400, 400))[:600], "cut.jpg", "image/jpeg", 400, "invalid_image", ""),
    ]
    for label, data, name, content_type, status, code, words in cases:
        send = lambda d=data, n=name, t=content_type: upload(mk, seller, item["id"], d, n, t)  # noqa: E731
        response = refusals.expect(label, send, status, code)
        if response is not None and words:
            assert words in response.json()["error"]["message"], (label, response.json())
    response = refusals.expect("an 11th photo", lambda: upload(mk, seller, full["id"], images.jpeg((300, 300))),
                               400, "too_many_photos")
    assert "at most 10 photos" in response.json()["error"]["message"]
    photos_url = mk.url(f"items/{item['id']}/photos")
    refusals.expect("no file", lambda: requests.post(photos_url, headers=seller["headers"],
                                                     files={"other": ("x", b"y")}, timeout=30), 400, "validation_error")
    refusals.expect("JSON instead of a file", lambda: mk.post(f"items/{item['id']}/photos", seller,
                                                              json={"image": "x"}), 415, "unsupported_media_type")
    refusals.verify()
    assert media_files() == before, "a refused upload left files"
    assert mk.get(f"items/{item['id']}", seller).json()["photos"] == []


def _gif():
    out = io.BytesIO()
    Image.new("RGB", (200, 200)).save(out, "GIF")
    return out.getvalue()


# --------------------------------------------------------------------------- who may change photos


def test_only_the_owner_changes_photos_and_a_sold_items_photos_are_fixed(mk, refusals):
    seller, other = mk.register(), mk.register()
    mk.deposit(other, "50.00")
    item = mk.list_item(seller, price="5.00")
    photo = add(mk, seller, item["id"])
    item_id, photo_id = item["id"], photo["id"]
    for label, send in [
        ("someone else uploads", lambda: upload(mk, other, item_id, images.jpeg((300, 300)))),
        ("someone else deletes", lambda: mk.delete(f"items/{item_id}/photos/{photo_id}", other)),
        ("someone else reorders",
         lambda: mk.patch(f"items/{item_id}/photos/order", other, json={"photo_ids": [photo_id]})),
        ("an item that does not exist", lambda: upload(mk, seller, "1", images.jpeg((300, 300)))),
        ("a photo that does not exist", lambda: mk.delete(f"items/{item_id}/photos/12345", seller)),
    ]:
        refusals.expect(label, send, 404, "not_found")
    refusals.expect("not logged in", lambda: requests.delete(mk.url(f"items/{item_id}/photos/{photo_id}"), timeout=30),
                    401)

    assert mk.buy(other, item).status_code == 201
    for label, send in [
        ("upload to a sold item", lambda: upload(mk, seller, item_id, images.jpeg((300, 300)))),
        ("delete from a sold item", lambda: mk.delete(f"items/{item_id}/photos/{photo_id}", seller)),
        ("reorder a sold item",
         lambda: mk.patch(f"items/{item_id}/photos/order", seller, json={"photo_ids": [photo_id]})),
    ]:
        refusals.expect(label, send, 409, "item_sold")
    refusals.verify()
    assert [p["id"] for p in mk.get(f"items/{item_id}", seller).json()["photos"]] == [photo_id]


def test_the_display_order_is_set_with_every_photo_once(mk):
    seller = mk.register()
    item = mk.list_item(seller)
    ids = [add(mk, seller, item["id"])["id"] for _ in range(3)]
    response = mk.patch(f"items/{item['id']}/photos/order", seller, json={"photo_ids": [ids[2], ids[0], ids[1]]})
    assert response.status_code == 200, describe(response)
    assert [(p["id"], p["position"]) for p in response.json()] == [(ids[2], 0), (ids[0], 1), (ids[1], 2)]
    assert [p["id"] for p in mk.get(f"items/{item['id']}", seller).json()["photos"]] == [ids[2], ids[0], ids[1]]
    for bad in ([ids[0], ids[1]], [ids[0], ids[0], ids[1], ids[2]], [*ids, "12345"], "x"):
        assert_error(mk.patch(f"items/{item['id']}/photos/order", seller, json={"photo_ids": bad}), 400,
                     "validation_error")
    assert [p["id"] for p in mk.get(f"items/{item['id']}", seller).json()["photos"]] == [ids[2], ids[0], ids[1]]


# --------------------------------------------------------------------------- purchases


@pytest.mark.parametrize("where", ["same worker", "other worker"])
def test_the_photos_survive_a_purchase(mk, where):
    seller_node, other_node = two_workers()
    seller = mk.user_on(seller_node)
    buyer = mk.user_on(seller_node if where == "same worker" else other_node)
    item = mk.list_item(seller, price="20.00", title="Teak chair")
    first = add(mk, seller, item["id"], images.jpeg((1600, 1200)))
    second = add(mk, seller, item["id"], images.png((300, 500)), name="b.png", content_type="image/png")
    mk.deposit(buyer, "20.00")
    response = mk.buy(buyer, item)
    assert response.status_code == 201, describe(response)
    bought_id = response.json()["item_id"]
    assert node_for_id(int(bought_id)) == node_for_user(int(buyer["id"]))

    bought = mk.get(f"items/{bought_id}", buyer).json()
    assert [(p["width"], p["height"], p["position"]) for p in bought["photos"]] == [(1600, 1200, 0), (300, 500, 1)]
    for copy, original in zip(bought["photos"], (first, second), strict=True):
        assert copy["id"] != original["id"] and copy["url"] != original["url"]  # the buyer's own files
        assert served(mk, copy["url"]) == served(mk, original["url"])
        assert served(mk, copy["thumbnail_url"]) == served(mk, original["thumbnail_url"])
    rows = Photo.objects.using(node_for_user(int(buyer["id"]))).filter(item_id=int(bought_id))
    assert {row.user_id for row in rows} == {int(buyer["id"])}

    # The seller's sold listing keeps its photos when the buyer removes the copies.
    for photo in bought["photos"]:
        assert mk.delete(f"items/{bought_id}/photos/{photo['id']}", buyer).status_code == 204
    sold = mk.get(f"items/{item['id']}", seller).json()
    assert [p["id"] for p in sold["photos"]] == [first["id"], second["id"]]
    assert served(mk, first["url"])


# --------------------------------------------------------------------------- deleting


def test_deleting_a_photo_or_an_item_deletes_its_files(mk):
    seller = mk.register()
    item = mk.list_item(seller)
    one, two = add(mk, seller, item["id"]), add(mk, seller, item["id"])
    names = lambda photo: {stored_name(photo["url"]), stored_name(photo["thumbnail_url"])}  # noqa: E731
    assert names(one) | names(two) <= media_files()

    assert mk.delete(f"items/{item['id']}/photos/{one['id']}", seller).status_code == 204
    assert not names(one) & media_files()
    assert requests.get(mk.base_url + urlsplit(one["url"]).path, timeout=30).status_code == 404
    left = mk.get(f"items/{item['id']}", seller).json()["photos"]
    assert [(p["id"], p["position"]) for p in left] == [(two["id"], 0)]

    assert mk.delete(f"items/{item['id']}", seller).status_code == 204
    assert not names(two) & media_files()
    assert not Photo.objects.using(node_for_id(int(item["id"]))).filter(item_id=int(item["id"])).exists()


def test_the_clean_up_deletes_old_files_without_a_row_and_keeps_the_others(mk):
    seller = mk.register()
    item = mk.list_item(seller)
    kept = add(mk, seller, item["id"])
    orphan = default_storage.save("photos/00/orphan-of-a-failed-upload.jpg", ContentFile(images.jpeg((200, 200))))
    fresh = default_storage.save("photos/00/being-uploaded-now.jpg", ContentFile(images.jpeg((200, 200))))
    old = (default_storage.get_modified_time(orphan) - timedelta(hours=2)).timestamp()
    import os

    os.utime(default_storage.path(orphan), (old, old))
    deleted = purge_orphan_files(force=True, grace=timedelta(hours=1))
    assert orphan in deleted and fresh not in deleted
    assert not default_storage.exists(orphan) and default_storage.exists(fresh)
    assert {stored_name(kept["url"]), stored_name(kept["thumbnail_url"])} <= media_files()
    default_storage.delete(fresh)
    assert "app.catalog.services.purge_orphan_files" in settings.MAINTENANCE_TASKS


# --------------------------------------------------------------------------- partners


GOOGLE_COLUMNS = ["id", "title", "description", "link", "image_link", "additional_image_link", "availability", "price",
                  "condition", "external_seller_id"]
G = "{http://base.google.com/ns/1.0}"


def test_google_feeds_carry_image_links_and_leave_out_items_without_a_photo(mk):
    seller = mk.register()
    headers = mk.partner_headers()
    pictured = mk.list_item(seller, title="Brass lamp", price="15.00")
    photos = [add(mk, seller, pictured["id"]) for _ in range(3)]
    bare = mk.list_item(seller, title="No picture", price="9.00")

    tsv = requests.get(mk.url("/api/partner/v1/feeds/google.tsv"), headers=headers, timeout=30)
    assert tsv.status_code == 200, describe(tsv)
    lines = tsv.text.rstrip("\n").split("\n")
    assert lines[0].split("\t") == GOOGLE_COLUMNS
    rows = [dict(zip(GOOGLE_COLUMNS, line.split("\t"), strict=True)) for line in lines[1:]]
    assert [row["id"] for row in rows] == [pictured["id"]]
    assert rows[0]["image_link"] == photos[0]["url"] and rows[0]["image_link"].startswith("http")
    assert rows[0]["additional_image_link"] == f"{photos[1]['url']},{photos[2]['url']}"

    xml = requests.get(mk.url("/api/partner/v1/feeds/google.xml"), headers=headers, timeout=30)
    assert xml.status_code == 200, describe(xml)
    root = ET.fromstring(xml.content)  # well-formed
    assert root.tag == "rss"
    products = root.findall("./channel/item")
    assert [p.findtext(f"{G}id") for p in products] == [pictured["id"]]
    assert products[0].findtext(f"{G}image_link") == photos[0]["url"]
    assert [e.text for e in products[0].findall(f"{G}additional_image_link")] == [photos[1]["url"], photos[2]["url"]]
    assert all(child.tag.startswith(G) for child in products[0]), [child.tag for child in products[0]]
    assert bare["id"] not in xml.text and bare["id"] not in tsv.text


def test_the_product_feed_carries_photos_and_a_photo_change_is_a_listing_updated_event(mk):
    seller = mk.register()
    item = mk.list_item(seller, title="Desk")
    photo = add(mk, seller, item["id"])
    feed = requests.get(mk.url("/api/partner/v1/products"), headers=mk.partner_headers(), timeout=30).json()
    (record,) = [row for row in feed["results"] if row["id"] == item["id"]]
    assert record["photos"] == [{**photo}], record

    node = node_for_id(int(item["id"]))
    events = lambda: list(ListingEvent.objects.using(node).filter(item_id=int(item["id"])).order_by("id"))  # noqa: E731
    assert [e.event_type for e in events()] == ["listing.created", "listing.updated"]
    assert events()[-1].payload["photos"] == [photo]
    second = add(mk, seller, item["id"])
    mk.patch(f"items/{item['id']}/photos/order", seller, json={"photo_ids": [second["id"], photo["id"]]})
    mk.delete(f"items/{item['id']}/photos/{photo['id']}", seller)
    updated = [e for e in events() if e.event_type == "listing.updated"]
    assert [[p["id"] for p in e.payload["photos"]] for e in updated] == [
        [photo["id"]], [photo["id"], second["id"]], [second["id"], photo["id"]], [second["id"]],
    ]


# --------------------------------------------------------------------------- shard moves


@pytest.mark.slow
@pytest.mark.own_engine  # our shard moves
def test_a_shard_move_carries_the_photos(mk, restore_placement):
    from .test_shard_moves import move, must, other_worker, placement_now, user_ids_on

    shard = 13
    (user_id,) = user_ids_on(shard, 1)
    owner = type("Owner", (), {"id": user_id, "username": f"user{user_id}"})()
    item = create_item(owner=owner, title="Moving box", price=700)
    photo = add_photo(owner_id=user_id, item_id=item.id,
                      image=process_image(ContentFile(images.jpeg((500, 400)), name="m.jpg")))
    source = placement_now().node_of_shard(shard)
    target = other_worker(source)
    must(move(shard, "--to", target))
    assert placement_now().node_of_shard(shard) == target
    assert list(Photo.objects.using(target).filter(item_id=item.id).values_list("id", "image")) == [
        (photo.id, photo.image)]
    assert not Photo.objects.using(source).filter(logical_shard=shard).exists()
    detail = mk.get(f"items/{item.id}").json()
    assert [p["id"] for p in detail["photos"]] == [str(photo.id)]
    assert served(mk, detail["photos"][0]["url"])


@pytest.fixture
def restore_placement():
    from .test_shard_moves import leftovers, move, must, placement_now

    before = list(placement_now().nodes)
    yield before
    now = placement_now()
    for shard, node in enumerate(before):
        if now.node_of_shard(shard) != node:
            must(move(shard, "--to", node))
    assert leftovers() == []
