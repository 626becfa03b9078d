"""The catalogue's business error codes (see app.core.error_codes)."""
from enum import StrEnum


class CatalogErrorCode(StrEnum):
    ITEM_SOLD = "item_sold"
    # Photos (app.catalog.images, app.catalog.services)
    INVALID_IMAGE = "invalid_image"
    TOO_MANY_PHOTOS = "too_many_photos"
    REQUEST_TOO_LARGE = "request_too_large"
