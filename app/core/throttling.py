"""Rate limits (OWASP API4), counted in the shared cache (settings.CACHES["default"], a table on the coordinator),
so every server process sees one count.

Rates are settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope], read on every request (DRF's own throttles read
them once, at import). A client is its address: REMOTE_ADDR, or, behind NUM_PROXIES trusted proxies, the address
the outermost of them put in X-Forwarded-For; never what the client itself wrote there. IPv6 clients count per /64
network (one host is usually given a whole /64, so per-address counts would be free to dodge).

The web pages (app.web) call the same throttles through `wait_for`, so a page and its API endpoint share one
limit: switching from one to the other gains nothing.
"""
import hashlib
import ipaddress
import math

from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

# pg_advisory_xact_lock(namespace, key): the two-int form, a key space of its own.
LOCK_NAMESPACE = 0x54485254  # "THRT"
MAX_IDENT_LENGTH = 100


def client_address(request):
    """The client's address as a string (REMOTE_ADDR unless NUM_PROXIES trusted proxies stand in front)."""
    remote_addr = request.META.get("REMOTE_ADDR") or ""
    num_proxies = api_settings.NUM_PROXIES or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if num_proxies <= 0 or not forwarded:
        return remote_addr
    # Each proxy appends the address it got the request from: the n-th from the right was written by our
    # outermost proxy; anything left of it came from the client and may be made up.
    addresses = [part.strip() for part in forwarded.split(",")]
    return addresses[-min(num_proxies, len(addresses))]


def address_bucket(address):
    """What one client counts as: its IPv4 address, or its IPv6 /64 network."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return "".join(address.split())[:MAX_IDENT_LENGTH] or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def digest(value):
    """A fixed-length cache-safe stand-in for user input (a username, an email address)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _lock_key(cache_key):
    return int.from_bytes(hashlib.sha256(cache_key.encode()).digest()[:4], "big", signed=True)


class RateThrottle(SimpleRateThrottle):
    """A sliding-window limit (DRF's SimpleRateThrottle) for `scope`, per whatever `ident` returns.

    serialize = True checks and takes the count under a transaction-scoped advisory lock on the cache's database,
    so simultaneous requests cannot all read the same count and all pass; for the endpoints that cost the most
    (logins and registrations hash a password with Argon2) or that guard credentials.
    """

    scope = None
    serialize = False

    def __init__(self, scope=None):
        # No rate yet: it is read per request (get_rate), as settings may change while the process runs.
        if scope is not None:
            self.scope = scope

    def get_rate(self):
        rates = api_settings.DEFAULT_THROTTLE_RATES
        try:
            return rates[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate for scope {self.scope!r} in DEFAULT_THROTTLE_RATES") from None

    def get_ident(self, request):
        return address_bucket(client_address(request))

    def scope_for(self, request, view):
        """The scope this request counts in, or None to let it through uncounted."""
        return self.scope

    def ident(self, request, view):
        """Whom the request counts for (a string), or None to let it through uncounted."""
        raise NotImplementedError

    def get_cache_key(self, request, view):
        ident = self.ident(request, view)
        if ident is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        self.scope = self.scope_for(request, view)
        if self.scope is None:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None or not self.serialize:
            return super().allow_request(request, view)
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        backend = caches["default"]
        if not isinstance(backend, DatabaseCache):
            return super().allow_request(request, view)
        alias = router.db_for_write(backend.cache_model_class)
        with transaction.atomic(using=alias):
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, _lock_key(key)])
            return super().allow_request(request, view)


class AddressRateThrottle(RateThrottle):
    """Per client address (see address_bucket)."""

    def ident(self, request, view):
        return self.get_ident(request)


class AnonRateThrottle(AddressRateThrottle):
    """Every API request of a client that is not logged in, per address (THROTTLE_RATE_ANON)."""

    scope = "anon"

    def scope_for(self, request, view):
        return None if request.user and request.user.is_authenticated else self.scope


class UserRateThrottle(RateThrottle):
    """Every API request of a logged-in user, per user (THROTTLE_RATE_USER)."""

    scope = "user"

    def ident(self, request, view):
        user = request.user
        if user and user.is_authenticated and getattr(user, "pk", None) is not None:
            return f"user{user.pk}"
        return None


# Scopes whose every request hashes a password (Argon2, about 100 MiB each) or can guess one: counted under a lock.
SERIALIZED_SCOPES = frozenset({"register", "password_change", "password_reset"})
# Scopes of what one does before having an account (or without using it): always per client address.
ADDRESS_SCOPES = frozenset({"register", "password_reset"})


class ScopedRateThrottle(RateThrottle):
    """Per user when logged in, else per client address (always per address for ADDRESS_SCOPES), in the scope the
    view names: `throttle_scope`, or `throttle_scopes` by HTTP method (a method not named is not counted), or the
    scope given to the constructor (the web pages)."""

    @property
    def serialize(self):
        return self.scope in SERIALIZED_SCOPES

    def scope_for(self, request, view):
        if self.scope is not None:
            return self.scope
        scopes = getattr(view, "throttle_scopes", None)
        if scopes is not None:
            return scopes.get(request.method)
        return getattr(view, "throttle_scope", None)

    def ident(self, request, view):
        user = getattr(request, "user", None)
        if self.scope not in ADDRESS_SCOPES and user is not None and user.is_authenticated \
                and getattr(user, "pk", None) is not None:
            return f"user{user.pk}"
        return self.get_ident(request)


class ValueRateThrottle(RateThrottle):
    """Per value of a submitted field (normalised and hashed), e.g. the email address a reset is asked for."""

    serialize = True

    def __init__(self, scope, field, normalize=str.lower):
        super().__init__(scope)
        self.field, self.normalize = field, normalize

    def ident(self, request, view):
        fields = request.data if hasattr(request, "data") else request.POST
        value = fields.get(self.field, "") if hasattr(fields, "get") else ""
        return f"{self.field}{digest(self.normalize(str(value)[:300].strip()))}"


class ThrottledAfterValidation:
    """For API views that refuse bad parameters before any query: DRF checks throttles before the handler, which
    would make a refused request read and write the coordinator's cache; these views call throttle() themselves
    once their parameters are good (a refused request costs nothing to count)."""

    def check_throttles(self, request):
        """Deferred to throttle()."""

    def throttle(self, request):
        super().check_throttles(request)


def wait_for(request, throttles, view=None):
    """For Django views and forms: None if every throttle lets the request through, else the seconds to wait.

    Every throttle is asked (each counts the request), as DRF does for an API view.
    """
    waits = [throttle.wait() or 1 for throttle in throttles if not throttle.allow_request(request, view)]
    return max(1, math.ceil(max(waits))) if waits else None

