"""Serializer fields shared by the API."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sharding.errors import InvalidIdError
from sharding.routing import parse_routable_id


ID_PATTERN = r"^[0-9]+$"


@extend_schema_field({"type": "string", "pattern": ID_PATTERN, "example": "237200661043774472"})
class IdField(serializers.Field):
    """A 64-bit id, written as a string in JSON (it does not fit a JavaScript number)."""

    default_error_messages = {"invalid": "Not a valid id."}

    def to_internal_value(self, data):
        try:
            return parse_routable_id(data)
        except InvalidIdError:
            self.fail("invalid")

    def to_representation(self, value):
        return None if value is None else str(value)


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
