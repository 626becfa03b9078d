"""Page tokens: the sort key of the last row of a page, encoded for a URL (keyset paging's opaque "cursor"
parameter; not a database cursor)."""
import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from django.db.models import Q

from .errors import InvalidCursorError

T = TypeVar("T")

# type -> (tag, a JSON-able form of the value)
_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    bool: ("b", lambda v: v),
    int: ("i", str),
    float: ("f", repr),
    str: ("s", lambda v: v),
    Decimal: ("d", str),
    datetime: ("t", lambda v: v.isoformat()),
    type(None): ("n", lambda v: None),
}
# tag -> the value from its JSON form
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "b": lambda v: _typed(v, bool),
    "i": lambda v: int(_typed(v, str)),
    "f": lambda v: float(_typed(v, str)),
    "s": lambda v: _typed(v, str),
    "d": lambda v: Decimal(_typed(v, str)),
    "t": lambda v: datetime.fromisoformat(_typed(v, str)),
    "n": lambda v: None,
}


def _typed(value: Any, kind: type[T]) -> T:
    if type(value) is not kind:
        raise ValueError(f"expected {kind.__name__}")
    return value


def encode_cursor(key: Iterable[Any]) -> str:
    """A URL-safe string for a sort key (a tuple of ints, strs, floats, Decimals, datetimes, bools or None)."""
    parts = []
    for value in key:
        try:
            tag, encode = _ENCODERS[type(value)]
        except KeyError:
            raise TypeError(f"cannot put a {type(value).__name__} in a cursor") from None
        parts.append([tag, encode(value)])
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, length: int | None = None, types: Sequence[type] | None = None) -> tuple[Any, ...]:
    """The sort key a cursor holds; InvalidCursorError for anything encode_cursor did not make,
    or (with `types`, a tuple of types) for a key of another shape."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
        if not isinstance(parts, list) or not parts:
            raise ValueError("not a list")
        key = tuple(_DECODERS[tag](value) for tag, value in parts)
    except (binascii.Error, ValueError, TypeError, KeyError, InvalidOperation, UnicodeDecodeError):
        raise InvalidCursorError("the cursor is not one this API returned") from None
    if length is not None and len(key) != length:
        raise InvalidCursorError("the cursor is not one this API returned")
    if types is not None and (
        len(key) != len(types) or any(type(value) is not kind for value, kind in zip(key, types, strict=True))
    ):
        raise InvalidCursorError("the cursor does not belong to this listing or sort order")
    return key


def keyset_after(fields: Sequence[str], values: Sequence[Any], descending: bool = False) -> Q:
    """A Q() for rows strictly after `values` in the order of `fields` (all ascending or all descending).

    (a, b) > (x, y) becomes a > x OR (a = x AND b > y), which the ORM can express.
    """
    op = "lt" if descending else "gt"
    condition = Q()
    for position, (field, value) in enumerate(zip(fields, values, strict=False)):
        equal_before = {fields[i]: values[i] for i in range(position)}
        condition |= Q(**equal_before, **{f"{field}__{op}": value})
    return condition
