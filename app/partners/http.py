"""One HTTP POST with hard bounds: a total deadline and a cap on the bytes of the answer that are read.

Per-read timeouts do not bound a receiver that drips a byte at a time, so a
watchdog shuts the socket down at the deadline, whatever the exchange is doing.
"""
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


class PostFailed(Exception):
    """The POST did not complete: no connection, the deadline passed, or a malformed answer."""


@dataclass
class Answer:
    status: int
    body: bytes  # at most max_bytes of it
    truncated: bool


def post_bounded(url, body, headers, *, deadline_seconds, max_bytes):
    """POST `body` to `url`; the whole exchange ends within `deadline_seconds`. Raises PostFailed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostFailed(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    started = time.monotonic()
    remaining = deadline_seconds
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=remaining)
    except OSError as exc:
        raise PostFailed(f"cannot connect to {parts.hostname}:{port}: {exc}") from None
    watchdog = threading.Timer(max(0.0, deadline_seconds - (time.monotonic() - started)), _shut, args=(sock,))
    watchdog.start()
    try:
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
            watchdog.args = (sock,)
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=deadline_seconds)
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
