"""Django's PostgreSQL backend, with each node's circuit breaker (sharding.breaker) in front of it.

ENGINE "sharding.backend" (sharding.config sets it for every node). A
connection to a node whose breaker is open is not even attempted. The breaker
opens when a connection cannot be made, or when a query's connection times
out (the node went silent). A connection that turns out dead at its first
statement after a restart of its node does not open it: the caller
reconnects, and only a failed reconnect says the node is down.
"""
from types import TracebackType
from typing import Any

from django.db import DatabaseError
from django.db.backends.postgresql import base
from django.db.utils import DatabaseErrorWrapper
from django.utils.functional import cached_property

from .. import breaker

TIMED_OUT = ("timed out", "timeout expired")


class DatabaseWrapper(base.DatabaseWrapper):
    def ensure_connection(self) -> None:
        if self.connection is not None:
            return
        breaker.check(self.alias)
        try:
            super().ensure_connection()
        except DatabaseError as exc:
            if breaker.is_connection_failure(exc.__cause__):
                breaker.trip(self.alias, _first_line(exc), self.probe_params())
            raise

    @cached_property
    def wrap_database_errors(self) -> "_BreakerErrorWrapper":
        return _BreakerErrorWrapper(self)

    def probe_params(self) -> dict[str, Any]:
        params = self.get_connection_params()
        return {key: params[key] for key in ("host", "port", "database", "user", "password") if key in params}


class _BreakerErrorWrapper(DatabaseErrorWrapper):
    wrapper: DatabaseWrapper  # set by DatabaseErrorWrapper.__init__

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if (exc_value is not None and breaker.is_connection_failure(exc_value)
                and any(text in str(exc_value).lower() for text in TIMED_OUT)):
            breaker.trip(self.wrapper.alias, _first_line(exc_value), self.wrapper.probe_params())
        return super().__exit__(exc_type, exc_value, traceback)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
