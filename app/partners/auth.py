"""Partner requests: `Authorization: Api-Key <key>`, scopes, and a rate limit per key shared by every process."""
import math
import time

from django.conf import settings
from django.db import connection
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.throttling import BaseThrottle

from .keys import authenticate_key
from .models import ApiKey


class PartnerPrincipal:
    """request.user for a partner request: authenticated, but not a marketplace user."""

    is_authenticated = True
    is_staff = False
    id = None

    def __init__(self, partner):
        self.partner = partner

    def __str__(self):
        return f"partner {self.partner}"


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = get_authorization_header(request).decode("latin-1")
        keyword, _, plaintext = header.partition(" ")
        if keyword != self.keyword:
            return None
        key = authenticate_key(plaintext.strip())
        if key is None:
            raise AuthenticationFailed("Unknown or revoked API key.")
        return PartnerPrincipal(key.partner), key

    def authenticate_header(self, request):
        return self.keyword


def HasScope(scope):
    """A permission class that needs a partner key carrying `scope`."""

    class _HasScope(BasePermission):
        message = f"This API key lacks the {scope} scope."

        def has_permission(self, request, view):
            return isinstance(request.auth, ApiKey) and scope in request.auth.scopes

    _HasScope.__name__ = f"HasScope({scope})"
    return _HasScope


def _rate():
    count, _, unit = settings.PARTNER_RATE_LIMIT.partition("/")
    return int(count), {"s": 1, "sec": 1, "min": 60, "m": 60, "hour": 3600, "h": 3600}[unit]


class PartnerKeyRateThrottle(BaseThrottle):
    """A fixed window per key, counted with one upsert on the coordinator, so all server processes share it."""

    def allow_request(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return True
        limit, period = _rate()
        now = time.time()
        window_start = math.floor(now / period) * period
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO partners_ratelimitwindow (key_id, window_start, count) VALUES (%s, to_timestamp(%s), 1) "
                "ON CONFLICT (key_id, window_start) DO UPDATE SET count = partners_ratelimitwindow.count + 1 "
                "RETURNING count",
                [request.auth.pk, window_start],
            )
            (count,) = cursor.fetchone()
        self._wait = window_start + period - now
        return count <= limit

    def wait(self):
        return max(1, math.ceil(self._wait))


def purge_rate_windows():
    """Forget finished windows (a maintenance task)."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM partners_ratelimitwindow WHERE window_start < now() - interval '1 hour'")
