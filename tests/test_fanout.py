"""Fan-out: parallel queries on every worker, merged in order and paged with keyset cursors."""
import time

import pytest
from django.db import connections
from django.db.models import Q
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sharding.errors import FanOutError, InvalidCursorError
from sharding.fanout import fan_out, fan_out_page, merge_ordered
from sharding.page_tokens import decode_cursor, encode_cursor
from sharding.placement import all_workers, node_for_user
from tests.shardtest.models import Note

pytestmark = pytest.mark.usefixtures("clean_shardtest")


def _notes_page(descending):
    """A per-node keyset query over (rank, id)."""

    def query(alias, after, limit):
        notes = Note.objects.using(alias)
        if after is not None:
            rank, note_id = after
            if descending:
                notes = notes.filter(Q(rank__lt=rank) | Q(rank=rank, id__lt=note_id))
            else:
                notes = notes.filter(Q(rank__gt=rank) | Q(rank=rank, id__gt=note_id))
        order = ("-rank", "-id") if descending else ("rank", "id")
        return list(notes.order_by(*order).values_list("rank", "id")[:limit])

    return query


def _insert(rows):
    by_node = {}
    for user_id, rank in rows:
        by_node.setdefault(node_for_user(user_id), []).append(Note(user_id=user_id, rank=rank, body=""))
    for alias, notes in by_node.items():
        Note.objects.using(alias).bulk_create(notes)


def _page_to_end(page_size, descending):
    seen, cursor, pages = [], None, 0
    while True:
        page = fan_out_page(
            _notes_page(descending), key=lambda row: row, page_size=page_size, cursor=cursor, descending=descending
        )
        seen.extend(page.rows)
        pages += 1
        assert len(page.rows) <= page_size
        if page.next_cursor is None:
            return seen, pages
        cursor = page.next_cursor


@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.integers(1, 10_000), st.integers(-5, 5)), max_size=120),
    page_size=st.integers(1, 25),
    descending=st.booleans(),
)
def test_merged_pages_equal_one_sorted_list(rows, page_size, descending):
    for alias in all_workers():
        Note.objects.using(alias).all().delete()
    _insert(rows)
    expected = []
    for alias in all_workers():
        expected.extend(Note.objects.using(alias).values_list("rank", "id"))
    expected.sort(reverse=descending)

    seen, pages = _page_to_end(page_size, descending)

    assert seen == expected
    assert pages == max(1, -(-len(expected) // page_size))  # no empty trailing page


def test_data_really_spreads_over_every_worker():
    _insert([(uid, 0) for uid in range(1, 41)])
    counts = fan_out(lambda alias: Note.objects.using(alias).count())
    assert set(counts.results) == set(all_workers())
    assert all(count > 0 for count in counts.results.values())
    assert sum(counts.results.values()) == 40


def _sleep_on(slow_alias, seconds):
    def task(alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [seconds if alias == slow_alias else 0])
        return alias

    return task


def test_node_that_does_not_answer_in_time_fails_the_call_naming_it():
    slow = all_workers()[-1]
    started = time.monotonic()
    with pytest.raises(FanOutError) as raised:
        fan_out(_sleep_on(slow, 3), timeout=0.5)
    assert raised.value.nodes == [slow]
    assert slow in str(raised.value)
    assert time.monotonic() - started < 2.5


def test_partial_results_leave_out_the_slow_node_when_asked():
    slow = all_workers()[-1]
    result = fan_out(_sleep_on(slow, 3), timeout=0.5, allow_partial=True)
    assert result.failed == [slow]
    assert sorted(result.results) == sorted(set(all_workers()) - {slow})


def test_a_failing_node_is_named_in_the_error():
    broken = all_workers()[0]

    def task(alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1/0" if alias == broken else "SELECT 1")
        return alias

    with pytest.raises(FanOutError, match=broken):
        fan_out(task)


def test_merge_ordered_is_a_k_way_merge():
    assert merge_ordered([[1, 4, 7], [2, 5], [0, 9]], key=lambda x: x, limit=4) == [0, 1, 2, 4]
    assert merge_ordered([[7, 4], [9, 1]], key=lambda x: x, descending=True) == [9, 7, 4, 1]


def test_cursor_round_trip_keeps_types():
    from datetime import datetime, timezone
    from decimal import Decimal

    key = (3, "b", 1.5, Decimal("12.50"), datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), None, True)
    assert decode_cursor(encode_cursor(key)) == key


@pytest.mark.parametrize("bad", ["", "x", "!!!", encode_cursor((1,))[:-2] + "@@", "W10", "e30"])
def test_bad_cursor_is_rejected(bad):
    with pytest.raises(InvalidCursorError):
        decode_cursor(bad)


def test_cursor_of_wrong_length_is_rejected():
    with pytest.raises(InvalidCursorError):
        decode_cursor(encode_cursor((1, 2)), length=3)


def test_fan_out_reconnects_after_a_node_restarts():
    import os

    import cluster

    def count(alias):
        return Note.objects.using(alias).count()

    for _ in range(20):
        fan_out(count)  # pool threads now hold connections to every node
    victim = all_workers()[-1]
    cluster.stop_node(os.environ["CLUSTER_NAME"], victim, log=lambda *_: None)
    cluster.start_node(os.environ["CLUSTER_NAME"], victim, log=lambda *_: None)
    for _ in range(20):
        assert set(fan_out(count).results) == set(all_workers())
