"""`Authorization: Token <token>`: knox tokens, found by their digest, refused once expired, last use recorded."""
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from rest_framework.exceptions import AuthenticationFailed

from .models import AuthToken

# last_used is written at most this often per token: a read-mostly API would otherwise write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's scheme with one indexed lookup per request.

    knox looks tokens up by their 15-character prefix and, on every request, also loads all of the user's
    other tokens to delete expired ones; here the digest (the primary key) finds the token, and expired
    tokens are deleted when presented or by `manage.py maintenance` (purge_expired_tokens).
    """

    def authenticate_credentials(self, token):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token.") from None
        try:
            auth_token = AuthToken.objects.select_related("user").get(digest=hash_token(token))
        except AuthToken.DoesNotExist:
            raise AuthenticationFailed("Invalid token.") from None
        now = timezone.now()
        if auth_token.expiry is not None and auth_token.expiry <= now:
            auth_token.delete()
            raise AuthenticationFailed("This token has expired; log in again.")
        user, auth_token = self.validate_user(auth_token)
        record_use(auth_token, now)
        return user, auth_token


def record_use(auth_token, now):
    """Set last_used, unless it was set less than a minute ago (also by another process: the update says so)."""
    if auth_token.last_used is not None and now - auth_token.last_used < LAST_USED_RESOLUTION:
        return
    AuthToken.objects.filter(pk=auth_token.pk).filter(
        Q(last_used__isnull=True) | Q(last_used__lte=now - LAST_USED_RESOLUTION)
    ).update(last_used=now)
    auth_token.last_used = now
