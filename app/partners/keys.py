"""Partner API keys: issued once in plain text, stored as a SHA-256 hash with a short prefix to find them.

Keys are 256-bit random strings, so a fast hash is enough (nothing to guess);
the prefix ("mk_1a2b3c4d_") identifies a key in lists and logs.
"""
import hashlib
import hmac
import secrets
from datetime import timedelta

from django.utils import timezone

from app.core.errors import NotFound, ServiceError

from .models import SCOPES, ApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)  # touch last_used_at at most once a minute per key


def _hash(plaintext):
    return hashlib.sha256(plaintext.encode()).hexdigest()


def check_scopes(scopes):
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ServiceError(
            f"Scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}.", code="validation_error",
        )
    return sorted(set(scopes))


def issue_key(partner, scopes):
    """A new key for the partner: (ApiKey, plaintext). The plaintext is never stored."""
    prefix = secrets.token_hex(4)
    plaintext = f"mk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(partner=partner, prefix=prefix, key_hash=_hash(plaintext), scopes=check_scopes(scopes))
    return key, plaintext


def authenticate_key(plaintext):
    """The live ApiKey for this plaintext, or None (unknown, malformed or revoked)."""
    parts = plaintext.split("_")
    if len(parts) < 3 or parts[0] != "mk":
        return None
    key = ApiKey.objects.select_related("partner").filter(prefix=parts[1], revoked_at=None).first()
    if key is None or not hmac.compare_digest(key.key_hash, _hash(plaintext)):
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def _live_key(prefix):
    key = ApiKey.objects.select_related("partner").filter(prefix=prefix, revoked_at=None).first()
    if key is None:
        raise NotFound(f"No live key with prefix {prefix}.")
    return key


def revoke_key(prefix):
    key = _live_key(prefix)
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    return key


def rotate_key(prefix):
    """Revoke a key and issue its replacement with the same scopes: (new ApiKey, plaintext)."""
    old = revoke_key(prefix)
    return issue_key(old.partner, old.scopes)
