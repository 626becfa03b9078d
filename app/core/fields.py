"""Serializer fields shared by the API."""
from rest_framework import serializers

from sharding.errors import InvalidIdError
from sharding.ids import parse_id


class IdField(serializers.Field):
    """A 64-bit id, written as a string in JSON (it does not fit a JavaScript number)."""

    default_error_messages = {"invalid": "Not a valid id."}

    def to_internal_value(self, data):
        try:
            return parse_id(data)
        except InvalidIdError:
            self.fail("invalid")

    def to_representation(self, value):
        return None if value is None else str(value)


def user_ref(user_id, username):
    return {"id": str(user_id), "username": username}
