"""Writes to a user's items and their photos (on the owner's node)."""
import logging
import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from app.catalog.error_codes import CatalogErrorCode
from app.core.error_codes import CommonErrorCode
from app.core.errors import Conflict, NotFound, ServiceError
from app.core.text import clean_text
from app.core.types import UserRef
from sharding.fanout import fan_out
from sharding.placement import node_for_id, node_for_user
from sharding.transactions import retry_when_moved

from . import images
from .events import record_deletion, record_listing_event
from .images import InvalidImage, ProcessedImage
from .models import Item, ListingEvent, Photo

logger = logging.getLogger("app.catalog")

MAX_PHOTOS = 10


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Titles, descriptions and categories as they are stored: without control characters (app.core.text),
    whoever calls (the API and the web forms have cleaned them already; seeders and scripts may not have)."""
    cleaned = {
        name: (
            clean_text(value, multiline=name == "description")
            if name in ("title", "description", "category") else value
        )
        for name, value in fields.items()
    }
    if "title" in cleaned and not str(cleaned["title"]).strip():
        raise ServiceError("A title must have some text.", code=CommonErrorCode.VALIDATION_ERROR,
                           details={"title": ["Blank."]})
    return cleaned


@retry_when_moved
def create_item(*, owner: UserRef, title: str, description: str = "", price: int, category: str = "") -> Item:
    fields = _clean_fields({"title": title, "description": description, "category": category})
    title, description, category = fields["title"], fields["description"], fields["category"]
    with transaction.atomic(using=node_for_user(owner.id)):
        item = Item.objects.using(node_for_user(owner.id)).create(
            user_id=owner.id, owner_username=owner.username, title=title,
            description=description, price=price, category=category, status=Item.LISTED,
        )
        record_listing_event(item, ListingEvent.CREATED)
    return item


def _lock_own_item(owner_id: int, item_id: int) -> Item:
    """The owner's item, locked; NotFound for anyone else's (never reveal that it exists)."""
    item = Item.objects.using(node_for_id(item_id)).select_for_update().filter(id=item_id, user_id=owner_id).first()
    if item is None:
        raise NotFound("No such item.")
    if item.status == Item.SOLD:
        raise Conflict("This item has been sold and can no longer be changed.", code=CatalogErrorCode.ITEM_SOLD)
    return item


EDITABLE_FIELDS = ("title", "description", "price", "category", "status")


@retry_when_moved
def update_item(*, owner_id: int, item_id: int, changes: dict[str, Any]) -> Item:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ServiceError(f"These fields can't be changed: {', '.join(sorted(unknown))}.",
                           code=CommonErrorCode.VALIDATION_ERROR)
    if changes.get("status") not in (None, Item.LISTED, Item.UNLISTED):
        raise ServiceError("status must be listed or unlisted.", code=CommonErrorCode.VALIDATION_ERROR)
    changes = _clean_fields(changes)
    with transaction.atomic(using=node_for_id(item_id)):
        item = _lock_own_item(owner_id, item_id)
        for field, value in changes.items():
            setattr(item, field, value)
        item.save(using=item._state.db, update_fields=[*changes, "updated_at"])
        record_listing_event(item, ListingEvent.UPDATED)
    return item


@retry_when_moved
def delete_item(*, owner_id: int, item_id: int) -> None:
    alias = node_for_id(item_id)
    with transaction.atomic(using=alias):
        item = _lock_own_item(owner_id, item_id)
        photos = list(Photo.objects.using(alias).filter(item_id=item.id))
        Photo.objects.using(alias).filter(item_id=item.id).delete()
        record_deletion(item)
        item.delete()
        _delete_files_after_commit(alias, photos)


# --------------------------------------------------------------------------- photos


def _delete_files_after_commit(alias: str, photos: list[Photo]) -> None:
    names = [name for photo in photos for name in (photo.image, photo.thumbnail)]
    if names:
        transaction.on_commit(lambda: images.delete_files(names), using=alias)


def _photos_of(alias: str, item_id: int) -> list[Photo]:
    return list(Photo.objects.using(alias).filter(item_id=item_id).order_by("position", "id"))


def _check_photo_room(item: Item, photos: list[Photo]) -> None:
    if len(photos) >= MAX_PHOTOS:
        raise InvalidImage(f"An item has at most {MAX_PHOTOS} photos; remove one first.",
                           code=CatalogErrorCode.TOO_MANY_PHOTOS, details={"image": [f"At most {MAX_PHOTOS} photos."]})


def check_photos_changeable(*, owner_id: int, item_id: int) -> None:
    """Raise what add_photo would for the item (404, 409 item_sold, too_many_photos) before a file is read."""
    item = Item.objects.using(node_for_id(item_id)).filter(id=item_id, user_id=owner_id).first()
    if item is None:
        raise NotFound("No such item.")
    if item.status == Item.SOLD:
        raise Conflict("This item has been sold and its photos can no longer be changed.",
                       code=CatalogErrorCode.ITEM_SOLD)
    _check_photo_room(item, _photos_of(item._state.db, item.id))


def upload_photo(*, owner_id: int, item_id: int, upload: UploadedFile) -> Photo:
    """Check and process an uploaded file and add it as the item's last photo (see add_photo)."""
    check_photos_changeable(owner_id=owner_id, item_id=item_id)
    return add_photo(owner_id=owner_id, item_id=item_id, image=images.process_image(upload))


def add_photo(*, owner_id: int, item_id: int, image: ProcessedImage) -> Photo:
    """Store the files, then add the row (and a listing.updated event) under the item's lock. Whatever
    refuses it (404, 409, an 11th photo, a failure), the files are deleted again: nothing stays stored."""
    names = (images.save_rendition(image.full), images.save_rendition(image.thumbnail))
    try:
        return _attach_photo(owner_id, item_id, image, names)
    except BaseException:
        images.delete_files(names)
        raise


@retry_when_moved
def _attach_photo(owner_id: int, item_id: int, image: ProcessedImage, names: tuple[str, str]) -> Photo:
    alias = node_for_id(item_id)
    with transaction.atomic(using=alias):
        item = _lock_own_item(owner_id, item_id)
        photos = _photos_of(alias, item.id)
        _check_photo_room(item, photos)
        photo = Photo.objects.using(alias).create(
            user_id=item.user_id, item_id=item.id, position=len(photos),
            image=names[0], width=image.full.width, height=image.full.height,
            thumbnail=names[1], thumbnail_width=image.thumbnail.width, thumbnail_height=image.thumbnail.height,
        )
        _photos_changed(item)
    return photo


def _photos_changed(item: Item) -> None:
    item.save(using=item._state.db, update_fields=["updated_at"])  # the partner feed's order: a change
    record_listing_event(item, ListingEvent.UPDATED)


@retry_when_moved
def delete_photo(*, owner_id: int, item_id: int, photo_id: int) -> None:
    alias = node_for_id(item_id)
    with transaction.atomic(using=alias):
        item = _lock_own_item(owner_id, item_id)
        photos = _photos_of(alias, item.id)
        gone = next((photo for photo in photos if photo.id == photo_id), None)
        if gone is None:
            raise NotFound("No such photo.")
        remaining = [photo for photo in photos if photo.id != photo_id]
        gone.delete()  # (which sets its id to None)
        _renumber(alias, remaining)
        _photos_changed(item)
        _delete_files_after_commit(alias, [gone])


def _renumber(alias: str, photos: list[Photo]) -> None:
    for position, photo in enumerate(photos):
        if photo.position != position:
            Photo.objects.using(alias).filter(id=photo.id).update(position=position)
            photo.position = position


@retry_when_moved
def reorder_photos(*, owner_id: int, item_id: int, photo_ids: list[int]) -> list[Photo]:
    """Set the display order: photo_ids names every photo of the item once, first to last."""
    alias = node_for_id(item_id)
    with transaction.atomic(using=alias):
        item = _lock_own_item(owner_id, item_id)
        photos = {photo.id: photo for photo in _photos_of(alias, item.id)}
        if len(photo_ids) != len(set(photo_ids)) or set(photo_ids) != set(photos):
            raise ServiceError(
                "photo_ids must name every photo of the item exactly once.", code=CommonErrorCode.VALIDATION_ERROR,
                details={"photo_ids": [f"Expected each of: {', '.join(str(i) for i in photos) or 'none'}."]},
            )
        ordered = [photos[photo_id] for photo_id in photo_ids]
        _renumber(alias, ordered)
        _photos_changed(item)
    return ordered


@retry_when_moved
def move_photo(*, owner_id: int, item_id: int, photo_id: int, offset: int) -> None:
    """Move a photo `offset` places earlier (negative) or later in the display order (the web's buttons)."""
    alias = node_for_id(item_id)
    photo_ids = [photo.id for photo in _photos_of(alias, item_id)]
    if photo_id not in photo_ids:
        raise NotFound("No such photo.")
    index = photo_ids.index(photo_id)
    target = max(0, min(len(photo_ids) - 1, index + offset))
    photo_ids.insert(target, photo_ids.pop(index))
    reorder_photos(owner_id=owner_id, item_id=item_id, photo_ids=photo_ids)


def copy_photos(*, source: Item, target: Item) -> list[Photo]:
    """Give `target` (the buyer's new item) copies of `source`'s photos, in the caller's transaction on both
    nodes (a purchase's: one local transaction or two-phase commit). The files are copied under new names, so
    either item can later lose its photos without taking the other's; should the transaction roll back, the
    copies have no row and the maintenance clean-up deletes them."""
    copies = []
    for photo in source.photos:  # loaded under the listing's lock (by its listing.sold event): no round trip more
        copies.append(Photo(
            user_id=target.user_id, item_id=target.id, position=photo.position,
            image=images.copy_file(photo.image), width=photo.width, height=photo.height,
            thumbnail=images.copy_file(photo.thumbnail), thumbnail_width=photo.thumbnail_width,
            thumbnail_height=photo.thumbnail_height,
        ))
    if copies:
        Photo.objects.using(target._state.db).bulk_create(copies)
    return copies


# --------------------------------------------------------------------------- clean-up (manage.py maintenance)


_last_purge: dict[str, float | None] = {"at": None}
_purge_lock = threading.Lock()


def _stored_names(prefix: str) -> list[str]:
    directories, files = default_storage.listdir(prefix)
    names = [f"{prefix}/{name}" for name in files]
    for directory in directories:
        names.extend(_stored_names(f"{prefix}/{directory}"))
    return names


def _referenced_on(alias: str) -> set[str]:
    rows = Photo.objects.using(alias).values_list("image", "thumbnail")
    return {name for row in rows for name in row}


def purge_orphan_files(*, grace: timedelta | None = None, force: bool = False) -> list[str]:
    """Delete stored photo files that no photo row on any worker names and that are older than `grace`
    (a file is stored a moment before its row commits; a purchase copies files before its commit point).
    Runs at most every PHOTO_CLEANUP_INTERVAL_SECONDS in a process (maintenance calls it every few seconds),
    and does nothing unless every worker answers: a silent worker's rows still count. Returns what it deleted."""
    interval = settings.PHOTO_CLEANUP_INTERVAL_SECONDS
    with _purge_lock:
        now = time.monotonic()
        if not force and _last_purge["at"] is not None and now - _last_purge["at"] < interval:
            return []
        _last_purge["at"] = now
    grace = timedelta(seconds=settings.PHOTO_CLEANUP_GRACE_SECONDS) if grace is None else grace
    try:
        stored = _stored_names(images.PREFIX)
    except FileNotFoundError:
        return []
    referenced = set().union(*fan_out(_referenced_on).results.values())
    cutoff = timezone.now() - grace
    deleted = []
    for name in stored:
        if name in referenced:
            continue
        try:
            if default_storage.get_modified_time(name) > cutoff:
                continue
            default_storage.delete(name)
        except FileNotFoundError:
            continue
        deleted.append(name)
    if deleted:
        logger.info("photo clean-up: deleted %d files without a photo row", len(deleted))
    return deleted
