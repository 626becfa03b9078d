"""API tokens (django-rest-knox): one per login, stored only as a SHA-512 digest, with a lifetime and a last use.

They live on the coordinator with the users (the sharding router sends every unsharded model there).
"""
from django.db import models
from knox.models import AbstractAuthToken


class AuthToken(AbstractAuthToken):
    """knox's token (digest as primary key, token_key: its first 15 characters to show, user, created, expiry),
    plus the client that logged in and when the token was last used (KNOX_TOKEN_MODEL points here)."""

    client = models.CharField(max_length=200, blank=True, help_text="The User-Agent of the login that made it.")
    last_used = models.DateTimeField(null=True, blank=True, help_text="Recorded at most once a minute.")

    class Meta:
        indexes = [models.Index(fields=["expiry"], name="accounts_token_expiry")]  # maintenance purges by expiry
