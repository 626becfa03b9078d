"""Types the services share."""
from typing import Protocol


class UserRef(Protocol):
    """What a service needs of a user: a User, or anything with its id and username (seeders, scripts)."""

    id: int
    username: str
