"""A deadline for a whole request: once it has passed, no open transaction sends another statement.

Connect timeouts and keepalives bound a node that does not answer at all (sharding.config.BOUNDED_WAITS).
They do not bound one that answers slowly: a slow link costs every round trip, and lock waits add up, one
after another. So a request runs under a deadline (sharding.middleware.RequestDeadlineMiddleware,
SHARDING["REQUEST_DEADLINE_SECONDS"]):

  1. every statement sent inside a transaction first checks the deadline and, once it has passed, fails with
     DeadlineExceededError, a NodeUnavailableError (so a 503 `try_again`); the transaction rolls back and
     nothing is changed;
  2. a transaction's lock_timeout is at most the time left (sharding.transactions), so one lock wait cannot
     outlast the deadline either.

Statements outside a transaction (autocommit) and transaction control (COMMIT, ROLLBACK, savepoints) are
never refused. That keeps the two-phase commit whole: PREPARE and COMMIT PREPARED go through psycopg2's tpc_*
calls and the decision record through the coordinator in autocommit, so once a transaction starts preparing
it runs to its end, and stopping it halfway could never leave work in doubt that a clean failure would not.
"""
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from .breaker import NodeUnavailableError

_deadline: ContextVar[float | None] = ContextVar("sharding_request_deadline", default=None)

TRANSACTION_CONTROL = ("COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PREPARE")


class DeadlineExceededError(NodeUnavailableError):
    """The request's deadline passed with a transaction still open on this node; it was rolled back."""


@contextmanager
def deadline_after(seconds: float | None) -> Iterator[None]:
    """Run the block under a deadline `seconds` from now (none when `seconds` is None or 0)."""
    token = _deadline.set(time.monotonic() + seconds if seconds else None)
    try:
        yield
    finally:
        _deadline.reset(token)


def seconds_left() -> float | None:
    """Seconds until the current deadline (negative once passed), or None without one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def _guard_statement(
    execute: Callable[[str, Any, bool, dict[str, Any]], Any], sql: str, params: Any, many: bool,
    context: dict[str, Any],
) -> Any:
    # Every statement passes here: the clock first, the statement only once the deadline has passed.
    left = seconds_left()
    if left is not None and left <= 0:
        connection = context["connection"]
        if connection.in_atomic_block and not sql.lstrip()[:9].upper().startswith(TRANSACTION_CONTROL):
            raise DeadlineExceededError(connection.alias, "the request ran out of time")
    return execute(sql, params, many, context)


def install_statement_guard(connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """connection_created receiver: every connection checks the deadline before its statements."""
    if _guard_statement not in connection.execute_wrappers:
        # First, outside the others: execute_wrapper() blocks pop the last one when they end.
        connection.execute_wrappers.insert(0, _guard_statement)
