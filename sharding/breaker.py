"""Per-process node health: one circuit breaker per node, so a node that stops answering costs a few seconds once.

  closed  Requests use the node. A connection-level failure (it cannot be
          reached, the connection broke, or it gave no answer within the
          client-side bounds: connect timeout, TCP keepalives and
          tcp_user_timeout) opens the breaker: the fan-out notes it for the
          node that failed, and the error handlers of the application for the
          connections that the failed request left broken (`note_failure`).
  open    Whatever needs the node fails at once with NodeUnavailableError
          (routing checks the breaker when it names the node)
          (the API answers 503 `try_again` with Retry-After); what does not
          need it is unaffected. A background probe connects to the node
          every BREAKER_PROBE_SECONDS; its first success closes the breaker.

A failure that the server itself reports (a constraint, a lock timeout, a
fenced write) says the node is alive and opens nothing.
"""
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
from django.conf import settings
from django.db import OperationalError

from .errors import ShardingError

logger = logging.getLogger("sharding.breaker")

_open: dict[str, tuple[float, str]] = {}  # alias -> (monotonic time it opened, reason)
_lock = threading.Lock()


class NodeUnavailableError(ShardingError, OperationalError):
    """A node this request needs is down or unreachable; retrying after Retry-After seconds may succeed."""

    def __init__(self, alias: str, reason: str = "") -> None:
        self.alias = alias
        super().__init__(f"node {alias} is unavailable{f' ({reason})' if reason else ''}; try again shortly")

    @property
    def nodes(self) -> list[str]:
        return [self.alias]


def retry_after_seconds() -> int:
    return max(1, round(settings.SHARDING["BREAKER_PROBE_SECONDS"]))


def check(alias: str) -> None:
    """Raise NodeUnavailableError at once while the node's breaker is open."""
    state = _open.get(alias)
    if state is not None:
        raise NodeUnavailableError(alias, state[1])


def is_open(alias: str) -> bool:
    return alias in _open


def open_nodes() -> list[str]:
    return sorted(_open)


_local = threading.local()


@contextmanager
def not_counting() -> Iterator[None]:
    """Failures inside do not open breakers: a start-up check reports them itself, and nothing serves yet."""
    _local.suspended = True
    try:
        yield
    finally:
        _local.suspended = False


def trip(alias: str, reason: str, probe_params: dict[str, Any]) -> None:
    """Open the node's breaker (if it is not open yet) and start probing it in the background."""
    if getattr(_local, "suspended", False):
        return
    with _lock:
        if alias in _open:
            return
        _open[alias] = (time.monotonic(), reason)
    logger.warning("node %s is unavailable (%s): failing its requests fast until it answers again", alias, reason)
    threading.Thread(target=_probe, args=(alias, probe_params), name=f"probe-{alias}", daemon=True).start()


def wait_closed(alias: str, timeout: float) -> bool:
    """Wait until the node's breaker is closed (its probe reached it); whether it is."""
    deadline = time.monotonic() + timeout
    while alias in _open and time.monotonic() < deadline:
        time.sleep(0.05)
    return alias not in _open


def close(alias: str) -> None:
    with _lock:
        state = _open.pop(alias, None)
    if state is not None:
        logger.info("node %s answers again after %.1fs", alias, time.monotonic() - state[0])


def _probe(alias: str, params: dict[str, Any]) -> None:
    interval = settings.SHARDING["BREAKER_PROBE_SECONDS"]
    while alias in _open:
        time.sleep(interval)
        try:
            conn = psycopg2.connect(**params, connect_timeout=max(1, round(interval)))
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT 1")
            finally:
                conn.close()
        except psycopg2.Error:
            continue
        close(alias)


# Server-reported codes that mean "not serving": shutting down, crashed, starting up.
NOT_SERVING = {"57P01", "57P02", "57P03"}


def note_failure(exc: BaseException, alias: str | None = None) -> None:
    """After an error: open the breaker of `alias`, or of every connection the error left broken, if it was
    a connection-level failure."""
    if not _is_unreachable(exc):
        return
    from django.db import connections

    if alias is not None:
        broken = [connections[alias]]
    else:
        broken = [c for c in connections.all(initialized_only=True)
                  if c.connection is None or bool(getattr(c.connection, "closed", False))]
    for connection in broken:
        params = connection.get_connection_params()
        probe = {key: params[key] for key in ("host", "port", "database", "user", "password") if key in params}
        trip(connection.alias, _first_line(exc), probe)


def _is_unreachable(exc: BaseException | None) -> bool:
    while exc is not None:
        if is_connection_failure(exc):
            return True
        exc = exc.__cause__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unavailable_nodes(exc: BaseException) -> list[str] | None:
    """The nodes an exception says are unavailable ([] when it cannot tell which), or None if it is another error."""
    if isinstance(exc, NodeUnavailableError):
        return exc.nodes
    from .errors import FanOutError

    if isinstance(exc, FanOutError):
        return exc.nodes
    return [] if _is_unreachable(exc) else None


def is_connection_failure(exc: BaseException | None) -> bool:
    """Whether a driver error means the node is unreachable or not serving, rather than a query's own failure.

    libpq's own errors (no SQLSTATE: cannot connect, connection lost, a
    timeout) and connection exceptions (class 08, which pgbouncer sends when
    it cannot reach its server) count; anything else the server reported does not.
    """
    if not isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return False
    code = getattr(exc, "pgcode", None)
    return code is None or code.startswith("08") or code in NOT_SERVING
