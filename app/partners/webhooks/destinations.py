"""Where webhooks may be sent: the check of an endpoint's URL at registration, and the ports of every send.

Partners choose the URL, so it must not reach into our own network (SSRF): what
the URL itself shows is refused when it is registered (check_endpoint_url);
what a host name resolves to is checked at every send (app.partners.http).
"""
import ipaddress
from typing import NoReturn
from urllib.parse import urlsplit

from django.conf import settings

from app.core.errors import ServiceError
from app.partners.http import is_public_address


def allowed_ports() -> frozenset[int] | None:
    """The ports webhooks may be sent to: settings.WEBHOOK_ALLOWED_PORTS in production, any elsewhere (None)."""
    if not settings.PRODUCTION:
        return None
    return frozenset(settings.WEBHOOK_ALLOWED_PORTS)


def _refuse_url(message: str) -> NoReturn:
    raise ServiceError(
        f"url {message}.", code="validation_error", details={"url": [f"{message[0].upper()}{message[1:]}."]},
    )


def check_endpoint_url(url: str) -> str:
    """http(s) only; in production https and an allowed port; a public host unless private addresses are allowed.

    A host name is checked again at every send, where it is resolved (app.partners.http): a name that resolves
    to a private address is refused there, also when its DNS answer changes after registration.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _refuse_url("must be an http or https URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        _refuse_url("has an invalid port")
    if settings.PRODUCTION and parts.scheme != "https":
        _refuse_url("must be https")
    ports = allowed_ports()
    if ports is not None and port not in ports:
        _refuse_url(f"must use port {' or '.join(map(str, sorted(ports, reverse=True)))}")
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        host = parts.hostname.lower().rstrip(".")
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        local_name = host == "localhost" or host.endswith(".localhost")
        if local_name or (address is not None and not is_public_address(address)):
            _refuse_url("must point to a public host")
    return url
