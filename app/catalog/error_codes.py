"""The catalogue's business error codes (see app.core.error_codes)."""
from enum import StrEnum


class CatalogErrorCode(StrEnum):
    ITEM_SOLD = "item_sold"
