"""One HTTP POST with hard bounds: a total deadline, a cap on the bytes of the answer that are read, and
only to public addresses.

Per-read timeouts do not bound a receiver that drips a byte at a time, so a
watchdog shuts the socket down at the deadline, whatever the exchange is doing.

Partners choose the URL, so a POST must not reach into our own network (SSRF):
the host name is resolved once per POST, every address it resolves to must be
global (`ipaddress` `is_global`: not loopback, private, link-local such as the
cloud metadata address 169.254.169.254, shared, reserved or multicast), and the
connection goes to an address that was checked, never to a second lookup of the
name (DNS rebinding). HTTPS still sends the original name (SNI) and verifies the
certificate against it. `allow_private=True` (settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES,
on in development and tests only) lets local receivers on 127.0.0.1 be reached;
`allowed_ports` (production: settings.WEBHOOK_ALLOWED_PORTS) refuses any other port.
"""
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


class PostFailed(Exception):
    """The POST did not complete: no connection, the deadline passed, or a malformed answer."""


class AddressRefused(PostFailed):
    """The URL's port, or an address its host resolves to, may not be reached."""


@dataclass
class Answer:
    status: int
    body: bytes  # at most max_bytes of it
    truncated: bool


def is_public_address(address):
    """Whether an IP address (a string or an ipaddress object) is on the public internet."""
    address = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:  # fe80::1%eth0 and the like
            return False
        if address.ipv4_mapped is not None:  # ::ffff:127.0.0.1 reaches 127.0.0.1
            address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(host, port, timeout):
    """[(family, sockaddr)] of `host` (one getaddrinfo, bounded by `timeout`). Raises PostFailed."""
    found, failed = [], []

    def lookup():
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP))
        except (OSError, UnicodeError) as exc:
            failed.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)  # getaddrinfo itself has no timeout
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise PostFailed(f"cannot resolve {host}: no answer within {timeout:g}s")
    if failed or not found:
        raise PostFailed(f"cannot resolve {host}: {failed[0] if failed else 'no address'}")
    addresses = []
    for family, _, _, _, sockaddr in found:
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    return addresses


def check_addresses(host, addresses):
    """Refuse the host when any address it resolves to is not public (one private answer is enough to refuse:
    which of them a connection would use is not ours to guess)."""
    for _, sockaddr in addresses:
        text = sockaddr[0]
        try:
            address = ipaddress.ip_address(text)
        except ValueError:  # fe80::1%eth0: scoped to one interface, never public
            address = None
        if address is None or (len(sockaddr) == 4 and sockaddr[3]) or not is_public_address(address):
            raise AddressRefused(f"refused: {host} resolves to {text}, which is not a public address")


def open_connection(family, sockaddr, timeout):
    """A TCP connection to exactly this address (tests replace it to see where a POST goes)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


def post_bounded(url, body, headers, *, deadline_seconds, max_bytes, allow_private=False, allowed_ports=None):
    """POST `body` to `url`; the whole exchange ends within `deadline_seconds`. Raises PostFailed.

    Unless `allow_private`, every address the host resolves to must be public; with
    `allowed_ports`, the URL's port must be one of them.
    """
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PostFailed(f"not a valid port in {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostFailed(f"not an http(s) URL: {url!r}")
    if allowed_ports is not None and port not in allowed_ports:
        raise AddressRefused(f"refused: port {port} is not one of {', '.join(map(str, sorted(allowed_ports)))}")
    host = parts.hostname
    started = time.monotonic()

    def remaining():
        return max(0.001, deadline_seconds - (time.monotonic() - started))

    addresses = resolve(host, port, remaining())
    if not allow_private:
        check_addresses(host, addresses)
    sock, errors = None, []
    for family, sockaddr in addresses:  # only addresses that were checked: the name is not looked up again
        try:
            sock = open_connection(family, sockaddr, remaining())
            break
        except OSError as exc:
            errors.append(f"{sockaddr[0]}: {exc}")
    if sock is None:
        raise PostFailed(f"cannot connect to {host}:{port}: {'; '.join(errors)}")
    watchdog = threading.Timer(remaining(), _shut, args=(sock,))
    watchdog.start()
    try:
        if parts.scheme == "https":
            # SNI and certificate verification against the name in the URL, not the address connected to.
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            watchdog.args = (sock,)
        connection = http.client.HTTPConnection(host, port, timeout=deadline_seconds)  # Host: the original name
        connection.sock = sock
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(max_bytes + 1)
        return Answer(response.status, data[:max_bytes], len(data) > max_bytes)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if time.monotonic() - started >= deadline_seconds:
            raise PostFailed(f"no complete answer within {deadline_seconds:g}s") from None
        raise PostFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        watchdog.cancel()
        try:
            sock.close()
        except OSError:
            pass


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
