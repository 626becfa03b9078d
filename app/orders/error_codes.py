"""The business error codes of purchases (see app.core.error_codes)."""
from enum import StrEnum


class OrderErrorCode(StrEnum):
    OWN_ITEM = "own_item"
    ITEM_NOT_AVAILABLE = "item_not_available"
    PRICE_CHANGED = "price_changed"
