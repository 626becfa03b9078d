"""Running a query on many workers at once and merging what comes back.

Each node's task runs in its own thread (a bounded, process-wide pool) inside
a transaction with a statement_timeout, so a slow node costs at most the
timeout. Ordered results are merged with a k-way heap merge and paged with
keyset cursors: every node returns at most page_size + 1 rows after the
cursor's key, never an OFFSET.
"""
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

from . import breaker
from .errors import FanOutError
from .page_tokens import decode_cursor, encode_cursor
from .placement import all_workers

T = TypeVar("T")  # what a task returns on one node
Row = TypeVar("Row")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


class NodeTimeout(Exception):
    pass


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.SHARDING["FANOUT_POOL_SIZE"], thread_name_prefix="fanout"
            )
        return _executor


@dataclass
class FanOutResult(Generic[T]):
    results: dict[str, T]  # node alias -> what the task returned
    failed: list[str] = field(default_factory=list)  # nodes left out (only with allow_partial)


class _StaleConnection(Exception):
    pass


def _run_on_node(task: Callable[[str], T], alias: str, timeout: float) -> T:
    """Run the task in a transaction with a statement_timeout, on this thread's connection.

    The transaction is opened by hand, BEGIN and SET LOCAL in one round trip
    (Django's atomic block would send BEGIN on its own): a search costs every
    worker three round trips, not four.

    Pool threads outlive requests and keep their connection between tasks,
    without a health-check query before each one. A connection that died in
    the meantime (its node or pgbouncer restarted) fails on the first
    statement, before the task ran: then reconnect once and go on.
    """
    breaker.check(alias)
    try:
        return _run_in_transaction(task, alias, timeout)
    except Exception as exc:
        breaker.note_failure(exc, alias)
        raise


def _run_in_transaction(task: Callable[[str], T], alias: str, timeout: float) -> T:
    connection = connections[alias]
    for attempt in (1, 2):
        try:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("BEGIN; SET LOCAL statement_timeout = %s", [max(1, int(timeout * 1000))])
            except (OperationalError, InterfaceError) as exc:
                raise _StaleConnection(str(exc)) from exc
            result = task(alias)
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")
            return result
        except _StaleConnection as exc:
            connection.close()
            if attempt == 2:
                raise cast(BaseException, exc.__cause__) from None  # _StaleConnection is always raised from one
        except Exception:
            connection.close()  # a failure may have broken it (and ends its transaction): the next task starts afresh
            raise
    raise AssertionError("not reached: the second attempt returns or raises")


def fan_out(
    task: Callable[[str], T], nodes: Iterable[str] | None = None, *, timeout: float | None = None,
    allow_partial: bool = False,
) -> FanOutResult[T]:
    """Run task(alias) on every node in parallel.

    Raises FanOutError naming each node that failed or gave no answer within
    `timeout` seconds, unless allow_partial, in which case those nodes are
    listed in the result's `failed`.
    """
    nodes = list(all_workers() if nodes is None else nodes)
    timeout = settings.SHARDING["FANOUT_TIMEOUT"] if timeout is None else timeout
    deadline = time.monotonic() + timeout
    futures = {alias: _pool().submit(_run_on_node, task, alias, timeout) for alias in nodes}
    results: dict[str, T] = {}
    failures: dict[str, BaseException] = {}
    for alias, future in futures.items():
        try:
            results[alias] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            future.cancel()
            failures[alias] = NodeTimeout(f"no answer within {timeout:g}s")
        except Exception as exc:  # noqa: BLE001 - reported per node below
            failures[alias] = exc
    if failures and not allow_partial:
        raise FanOutError(failures)
    return FanOutResult(results, sorted(failures))


def merge_ordered(
    sequences: Iterable[Iterable[Row]], *, key: Callable[[Row], Any], descending: bool = False, limit: int | None = None
) -> list[Row]:
    """Merge already-ordered sequences into one ordered list of at most `limit` items."""
    merged = heapq.merge(*sequences, key=key, reverse=descending)
    return list(itertools.islice(merged, limit))


@dataclass
class Page(Generic[Row]):
    rows: list[Row]
    next_cursor: str | None
    failed: list[str] = field(default_factory=list)


def fan_out_page(
    query: Callable[[str, tuple[Any, ...] | None, int], Sequence[Row]], *, key: Callable[[Row], tuple[Any, ...]],
    page_size: int, cursor: str | None = None, cursor_types: Sequence[type] | None = None, descending: bool = False,
    nodes: Iterable[str] | None = None, timeout: float | None = None, allow_partial: bool = False,
) -> Page[Row]:
    """One page of rows from every node, in global key order.

    query(alias, after, limit) returns at most `limit` rows of that node,
    ordered by `key` (descending if so) and strictly after the key tuple
    `after` (None on the first page). `key(row)` must be unique per row, for
    example by ending with the row's id, so pages neither repeat nor skip.
    `cursor_types` (the key's types) makes a cursor of another shape an
    InvalidCursorError instead of a query with wrong parameters.
    """
    after = None if cursor is None else decode_cursor(cursor, types=cursor_types)
    fetched = fan_out(
        lambda alias: query(alias, after, page_size + 1), nodes, timeout=timeout, allow_partial=allow_partial
    )
    merged = merge_ordered(fetched.results.values(), key=key, descending=descending, limit=page_size + 1)
    rows = merged[:page_size]
    next_cursor = encode_cursor(key(rows[-1])) if len(merged) > page_size else None
    return Page(rows, next_cursor, fetched.failed)
