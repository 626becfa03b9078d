"""Login limits: per username and, separately, per client address, counted in the shared (database) cache.

The API's token view uses them as DRF throttles; the web login form and the admin's login form call them
through login_wait, so all three count against one limit: switching from one to another gains no extra guesses.
"""
import unicodedata
from collections.abc import Mapping

from app.core.throttling import AddressRateThrottle, RateThrottle, digest, wait_for

MAX_USERNAME_INPUT = 300  # longer input is no username (150 at most); it still counts, cut here


def normalize_username(value):
    """The form of a username that counts: spaces around it stripped, NFKC, case-folded."""
    value = unicodedata.normalize("NFKC", str(value)[:MAX_USERNAME_INPUT])
    return unicodedata.normalize("NFKC", value.strip().casefold()).strip()


def _submitted_username(request):
    # The API reads a JSON body (DRF's request.data); the web forms post fields (Django's request.POST).
    fields = request.data if hasattr(request, "data") else request.POST
    return fields.get("username", "") if isinstance(fields, Mapping) else ""


class LoginRateThrottle(RateThrottle):
    """Attempts per username, wherever they come from (LOGIN_THROTTLE_RATE, 10 a minute by default)."""

    scope = "login"
    serialize = True

    def ident(self, request, view):
        return digest(normalize_username(_submitted_username(request)))


class LoginAddressRateThrottle(AddressRateThrottle):
    """Attempts per client address, whatever the usernames (THROTTLE_RATE_LOGIN_ADDRESS, 20 a minute by default)."""

    scope = "login_address"
    serialize = True


LOGIN_THROTTLES = [LoginRateThrottle, LoginAddressRateThrottle]


def login_wait(request):
    """None if this login attempt may go on, else the seconds to wait; the attempt is counted either way."""
    return wait_for(request, [throttle() for throttle in LOGIN_THROTTLES])
