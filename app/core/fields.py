"""Serializer fields shared by the API."""
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from app.core.text import clean_text
from sharding.errors import InvalidIdError
from sharding.placement import parse_routable_id

ID_PATTERN = r"^[0-9]+$"
# What the API reads as an id: digits without a leading zero, at most 19 (ids are positive 64-bit integers).
ID_INPUT_PATTERN = r"^[1-9][0-9]{0,18}$"


class IdField(serializers.Field):
    """A 64-bit id, written as a string in JSON (it does not fit a JavaScript number).

    Read: a string of ID_INPUT_PATTERN, else a 400. A well-formed id that names no row of this cluster (its
    logical shard does not exist, or it is above 2**63 - 1) is a 404 `not_found` with `not_found` set (the
    row it names does not exist), else a 400. Described by app.core.openapi.IdFieldExtension.
    """

    default_error_messages = {"invalid": "Not a valid id."}

    def __init__(self, *, not_found=None, **kwargs):
        self.not_found = not_found  # the message of the 404 for a well-formed id that names nothing
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not re.fullmatch(ID_INPUT_PATTERN, data):
            self.fail("invalid")
        try:
            return parse_routable_id(data)
        except InvalidIdError:
            if self.not_found:
                from .errors import NotFound

                raise NotFound(self.not_found) from None
            self.fail("invalid")

    def to_representation(self, value):
        return None if value is None else str(value)


# Characters that do not count as text: what TextField's cleaning (control characters) and trimming
# (whitespace, as str.strip() sees it) take away. A required TextField needs one character outside them.
_IGNORABLE = "\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufffe\\uffff"
SOME_TEXT_PATTERN = f"[^{_IGNORABLE}]"


class TextField(serializers.CharField):
    """A string as the OpenAPI description says it (app.core.openapi.TextFieldExtension), exactly:

    - a JSON string only (DRF's CharField also takes numbers);
    - `max_length` counts the characters sent (DRF counts them after trimming);
    - clean=True takes control characters out (app.core.text.clean_text; multiline keeps tabs and line
      breaks) before it is trimmed and checked, so a required one needs some text besides them.
    """

    default_error_messages = {"invalid": "Not a valid string."}

    def __init__(self, *, clean=True, multiline=False, **kwargs):
        self.clean, self.multiline = clean, multiline
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        if data is not serializers.empty and data is not None:
            if not isinstance(data, str):
                self.fail("invalid")
            if self.max_length is not None and len(data) > self.max_length:
                self.fail("max_length", max_length=self.max_length)
            if self.clean:
                data = clean_text(data, multiline=self.multiline)
        return super().run_validation(data)


class UserRefOut(serializers.Serializer):
    """The OpenAPI description of a UserRefField."""

    id = IdField()
    username = serializers.CharField()


@extend_schema_field(UserRefOut)
class UserRefField(serializers.Field):
    """A user as {"id", "username"}, from two attributes of the object (usernames are copied onto sharded rows)."""

    def __init__(self, id_attr, username_attr, **kwargs):
        self.id_attr, self.username_attr = id_attr, username_attr
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, obj):
        return {"id": str(getattr(obj, self.id_attr)), "username": getattr(obj, self.username_attr)}
