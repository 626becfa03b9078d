"""Reports: per-user figures against the ledger and order tables, the CSV export, and the platform report
summed over every worker, checked against data read straight from the nodes."""
import contextlib
import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from app.catalog.services import create_item
from app.orders.models import Purchase, Sale
from app.orders.services import buy_listing
from app.reports import selectors
from app.wallet.models import LedgerEntry
from app.wallet.services import deposit
from sharding.placement import node_for_id, node_for_user
from sharding.transactions import atomic_on_nodes
from tests.conftest import home_of_user, two_homes, worker_names

REPORTS = "/api/v1/reports/"
USER_REPORTS = ("transactions", "sales", "purchases")
GROUPS = ("day", "week", "month")
EVERYTHING = {"from": "2026-01-01", "to": "2026-12-31"}

# A user's row i of a table (in id order: a user's ids grow with time) is dated TIMES[i]: every 15th
# day from Sunday 2026-09-20, two rows at its first microsecond and at noon, and one the next day at
# its last microsecond; enough to cross weeks and months and to test the edges of a range.
TIMES = [
    datetime.combine(
        date(2026, 9, 20) + timedelta(days=15 * (i // 3) + (i % 3 == 2)), (time.min, time(12), time.max)[i % 3], UTC
    )
    for i in range(12)
]


def money(cents):
    return f"{Decimal(cents) / 100:.2f}"


def period_of(day, group_by):
    if group_by == "week":
        return day - timedelta(days=day.weekday())
    if group_by == "month":
        return day.replace(day=1)
    return day


def in_days(rows, first, last):
    return [row for row in rows if first <= row["created_at"].date() <= last]


# --------------------------------------------------------------------------- data


@dataclass
class Market:
    users: dict  # name -> user
    listings: dict  # seller's name -> items


def new_user(name, alias=None, **fields):
    """A user (with no usable password: hashing is slow) whose rows live on `alias` (see home_of_user)."""
    model = get_user_model()
    for attempt in range(20):
        user = model.objects.create_user(f"{name}-{attempt}", **fields)
        if alias is None or home_of_user(user.id) == alias:
            return user
    raise AssertionError(f"no user landed on {alias}")


LISTINGS = {
    "seller1": [("Brass lamp", 1250, "home"), ("=SUM(A1)", 799, "games"), ("Novel", 1999, "books"),
                ("Chair", 4500, "home"), ("Puzzle", 1001, "games")],
    "seller2": [("Atlas", 3000, "books"), ("Rake", 2299, "garden"), ("Board game", 3499, "games"),
                ("Vase", 1575, "home"), ("Hose", 999, "garden"), ("Unsold", 100, "home")],
}
DEPOSITS = {"buyer1": [50000, 25000], "buyer2": [40000, 30001], "seller1": [10000], "seller2": [5000]}
# (buyer, seller, index of the seller's listing): same-worker and cross-worker purchases.
ORDERS = [
    ("buyer1", "seller1", 0), ("buyer1", "seller1", 1), ("buyer1", "seller2", 0), ("buyer1", "seller2", 1),
    ("buyer1", "seller2", 2), ("buyer2", "seller1", 2), ("buyer2", "seller1", 3), ("buyer2", "seller2", 3),
    ("seller1", "seller2", 4), ("seller2", "seller1", 4),
]


@pytest.fixture
def market(clean_marketplace):
    w1, w2 = two_homes()
    users = {
        "seller1": new_user("seller1", w1), "buyer1": new_user("buyer1", w1),
        "seller2": new_user("seller2", w2), "buyer2": new_user("buyer2", w2),
    }
    for name, amounts in DEPOSITS.items():
        for amount in amounts:
            with atomic_on_nodes([node_for_user(users[name].id)]):
                deposit(users[name].id, amount)
    listings = {
        name: [
            create_item(owner=users[name], title=title, price=price, category=category)
            for title, price, category in rows
        ]
        for name, rows in LISTINGS.items()
    }
    for buyer, seller, index in ORDERS:
        item = listings[seller][index]
        with atomic_on_nodes([node_for_user(users[buyer].id), node_for_id(item.id)]):
            buy_listing(users[buyer], item.id, item.price)
    for user in users.values():
        for model in (LedgerEntry, Sale, Purchase):
            rows = model.objects.using(node_for_user(user.id))
            ids = list(rows.filter(user_id=user.id).order_by("id").values_list("id", flat=True))
            assert len(ids) <= len(TIMES)
            for row_id, when in zip(ids, TIMES, strict=False):
                rows.filter(id=row_id).update(created_at=when)
    return Market(users, listings)


@pytest.fixture
def db(direct_connect):
    """db(alias, sql, params) -> rows as dicts, read straight from a node (no Django, no pgbouncer)."""
    opened = {}

    def query(alias, sql, params=()):
        if alias not in opened:
            opened[alias] = direct_connect(alias)
        with opened[alias].cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
            cursor.execute(sql, params)
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    return query


TABLES = {"transactions": "wallet_ledgerentry", "sales": "orders_sale", "purchases": "orders_purchase"}


def stored_rows(db, report, user):
    return db(node_for_user(user.id), f"SELECT * FROM {TABLES[report]} WHERE user_id = %s ORDER BY id DESC", [user.id])


def figures(report, rows):
    """What a report must say about these rows, summed here in Python."""
    if report == "transactions":
        by_kind = defaultdict(int)
        for row in rows:
            by_kind[row["kind"]] += row["amount"]
        assert set(by_kind) <= {"deposit", "purchase", "sale"}
        return {
            "count": len(rows), "deposits": money(by_kind["deposit"]), "purchases": money(by_kind["purchase"]),
            "sales": money(by_kind["sale"]), "net": money(sum(by_kind.values())),
        }
    return {"count": len(rows), "amount": money(sum(row["price"] for row in rows))}


def expected_report(report, rows, first, last, group_by):
    rows = in_days(rows, first, last)
    periods = defaultdict(list)
    for row in rows:
        periods[period_of(row["created_at"].date(), group_by)].append(row)
    return {
        "totals": figures(report, rows),
        "periods": [{"period": period.isoformat(), **figures(report, periods[period])} for period in sorted(periods)],
        "row_ids": [str(row["id"]) for row in rows],
    }


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def get_report(client, report, **params):
    return client.get(REPORTS + report, params)


def assert_error(response, status, code):
    assert response.status_code == status, (response.status_code, getattr(response, "data", None))
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["details"], dict), body
    return body["error"]


def csv_of(response):
    assert response.status_code == 200, response
    assert response.streaming is True
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text))), text


# --------------------------------------------------------------------------- per-user reports


@pytest.mark.parametrize("group_by", GROUPS)
@pytest.mark.parametrize("report", USER_REPORTS)
def test_user_report_matches_the_tables(market, db, report, group_by):
    with_rows, most_periods = set(), 0
    for name, user in market.users.items():
        stored = stored_rows(db, report, user)
        if stored:
            with_rows.add(node_for_user(user.id))
        body = get_report(client_for(user), report, group_by=group_by, **EVERYTHING).json()
        expected = expected_report(report, stored, date(2026, 1, 1), date(2026, 12, 31), group_by)
        assert body["report"] == report and body["currency"] == "USD" and body["group_by"] == group_by
        assert (body["from"], body["to"]) == ("2026-01-01", "2026-12-31")
        assert body["totals"] == expected["totals"], name
        assert body["periods"] == expected["periods"], name
        assert [row["id"] for row in body["rows"]] == expected["row_ids"], name
        assert body["rows_truncated"] is False and "all_rows_csv" not in body
        created = [row["created_at"] for row in body["rows"]]
        assert created == sorted(created, reverse=True), "rows are newest first"
        most_periods = max(most_periods, len(body["periods"]))
    assert with_rows == set(worker_names()[:2]), "users with rows on both workers"
    assert most_periods > 1, "the data spreads over several periods"


def test_periods_start_on_their_first_day(market):
    client = client_for(market.users["buyer1"])
    for group_by, is_start in (("week", lambda d: d.weekday() == 0), ("month", lambda d: d.day == 1)):
        periods = get_report(client, "transactions", group_by=group_by, **EVERYTHING).json()["periods"]
        assert len(periods) > 1
        assert all(is_start(date.fromisoformat(period["period"])) for period in periods), periods


@pytest.mark.parametrize("report,name", [
    ("transactions", "buyer1"), ("transactions", "seller2"), ("sales", "seller1"), ("sales", "seller2"),
    ("purchases", "buyer1"),
])
def test_date_filter_is_inclusive(market, db, report, name):
    user = market.users[name]
    stored = stored_rows(db, report, user)
    at_midnight = [row["created_at"] for row in reversed(stored) if row["created_at"].time() == time.min]
    at_last_moment = [row["created_at"] for row in reversed(stored) if row["created_at"].time() == time.max]
    # Rows at 00:00:00 (first), then 23:59:59.999999 (last) of a later day, then 00:00:00 (after) again.
    first_row = at_midnight[0]
    last_row = next(moment for moment in at_last_moment if moment > first_row)
    after_row = next(moment for moment in at_midnight if moment > last_row)
    one_day = timedelta(days=1)
    cases = [
        # From the day of a row at 00:00:00 to the day of one at 23:59:59.999999: both in.
        (first_row.date(), last_row.date(), {first_row, last_row}, set()),
        # From the day after a row at 23:59:59.999999 to the day before one at 00:00:00: both out.
        (last_row.date() + one_day, after_row.date() - one_day, set(), {last_row, after_row}),
        # One day.
        (first_row.date(), first_row.date(), {first_row}, set()),
    ]
    for first, last, inside, outside in cases:
        body = get_report(client_for(user), report, **{"from": first.isoformat(), "to": last.isoformat()}).json()
        expected = expected_report(report, stored, first, last, "day")
        assert body["totals"] == expected["totals"] and body["periods"] == expected["periods"]
        assert [row["id"] for row in body["rows"]] == expected["row_ids"]
        reported = {datetime.fromisoformat(row["created_at"]) for row in body["rows"]}
        assert inside <= reported and not outside & reported, (first, last)


def test_rows_are_those_of_the_list_endpoints(market):
    for name, user in market.users.items():
        client = client_for(user)
        for report, path in (("transactions", "wallet/ledger"), ("sales", "sales"), ("purchases", "purchases")):
            listed = client.get(f"/api/v1/{path}", {"page_size": 100}).json()
            assert listed["next"] is None
            assert get_report(client, report, **EVERYTHING).json()["rows"] == listed["results"], (name, report)


def test_default_range_is_the_last_30_days(market, db):
    user = market.users["buyer1"]
    today = timezone.now().date()
    # The newest entry on the first day of the default range, the one before it just before that day.
    newest, before = LedgerEntry.objects.using(node_for_user(user.id)).filter(user_id=user.id).order_by("-id")[:2]
    for entry, when in ((newest, datetime.combine(today - timedelta(days=29), time.min, UTC)),
                        (before, datetime.combine(today - timedelta(days=30), time.max, UTC))):
        LedgerEntry.objects.using(node_for_user(user.id)).filter(id=entry.id).update(created_at=when)
    body = get_report(client_for(user), "transactions").json()
    first = today - timedelta(days=29)
    assert (body["from"], body["to"], body["group_by"]) == (first.isoformat(), today.isoformat(), "day")
    expected = expected_report("transactions", stored_rows(db, "transactions", user), first, today, "day")
    assert body["totals"] == expected["totals"] and body["totals"]["count"] == 1
    assert [row["id"] for row in body["rows"]] == [str(newest.id)]


def test_json_rows_are_capped_but_figures_cover_everything(market, db, monkeypatch):
    monkeypatch.setattr(selectors, "JSON_ROW_LIMIT", 3)
    user = market.users["buyer1"]
    body = get_report(client_for(user), "transactions", **EVERYTHING).json()
    stored = stored_rows(db, "transactions", user)
    expected = expected_report("transactions", stored, date(2026, 1, 1), date(2026, 12, 31), "day")
    assert expected["totals"]["count"] > 3
    assert body["totals"] == expected["totals"] and body["periods"] == expected["periods"]
    assert [row["id"] for row in body["rows"]] == expected["row_ids"][:3]
    assert body["rows_truncated"] is True
    assert body["all_rows_csv"] == f"{REPORTS}transactions?from=2026-01-01&to=2026-12-31&format=csv"


# --------------------------------------------------------------------------- CSV


CSV_HEADERS = {
    "transactions": ["id", "kind", "amount", "balance_after", "reference_id", "created_at"],
    "sales": ["id", "item_id", "purchase_id", "title", "price", "buyer_id", "buyer_username", "created_at"],
    "purchases": ["id", "item_id", "source_item_id", "title", "price", "seller_id", "seller_username", "created_at"],
}


@pytest.mark.parametrize("batch_size", [2000, 2])
@pytest.mark.parametrize("report", USER_REPORTS)
def test_csv_has_every_row(market, db, monkeypatch, report, batch_size):
    # A batch of 2 makes every export several keyset queries: no row may be lost or repeated between them.
    monkeypatch.setattr(selectors, "CSV_BATCH_SIZE", batch_size)
    in_range = {"from": "2026-09-01", "to": "2026-11-24"}
    defused = 0
    for user in market.users.values():
        client = client_for(user)
        json_rows = get_report(client, report, **in_range).json()["rows"]
        with monkeypatch.context() as patch:
            patch.setattr(selectors, "JSON_ROW_LIMIT", 1)  # which does not apply to CSV
            response = get_report(client, report, format="csv", **in_range)
            lines, text = csv_of(response)
        assert response["Content-Disposition"] == f'attachment; filename="{report}-2026-09-01-to-2026-11-24.csv"'
        assert lines[0] == CSV_HEADERS[report]
        assert len(text.splitlines()) == len(lines)  # one line per row
        rows = in_days(stored_rows(db, report, user), date(2026, 9, 1), date(2026, 11, 24))
        assert [line[0] for line in lines[1:]] == [str(row["id"]) for row in rows]
        # The values of the JSON rows, as plain cells.
        for line, row in zip(lines[1:], json_rows, strict=True):
            cells = dict(zip(lines[0], line, strict=True))
            for name, value in row.items():
                if isinstance(value, dict):
                    assert (cells[f"{name}_id"], cells[f"{name}_username"]) == (value["id"], value["username"])
                elif name == "title" and value.startswith("="):
                    assert cells[name] == "'" + value, "a formula is defused for spreadsheets"
                    defused += 1
                else:
                    assert cells[name] == ("" if value is None else value), name
            assert datetime.fromisoformat(cells["created_at"]).tzinfo is not None
    assert defused == (0 if report == "transactions" else 1)


def test_csv_amounts_are_plain_decimals(market, db):
    user = market.users["buyer1"]
    lines, _ = csv_of(get_report(client_for(user), "transactions", format="csv", **EVERYTHING))
    amounts = [Decimal(line[2]) for line in lines[1:]]
    assert sum(amounts) * 100 == sum(row["amount"] for row in stored_rows(db, "transactions", user))
    assert any(line[2].startswith("-") for line in lines[1:]), "purchases are negative and not escaped"


def test_csv_of_an_empty_range_is_just_the_header(market):
    client = client_for(market.users["seller1"])
    lines, _ = csv_of(get_report(client, "sales", format="csv", **{"from": "2025-01-01", "to": "2025-01-31"}))
    assert lines == [CSV_HEADERS["sales"]]


# --------------------------------------------------------------------------- platform


def platform_from_sql(db, first, last, group_by):
    """The platform's figures, summed here over what each worker's SQL says."""
    start, end = datetime.combine(first, time.min, UTC), datetime.combine(last + timedelta(days=1), time.min, UTC)
    where = "WHERE created_at >= %s AND created_at < %s"
    periods = defaultdict(lambda: dict.fromkeys(("sales", "gmv", "active_sellers", "active_buyers"), 0))
    totals = dict.fromkeys(("sales", "gmv", "active_sellers", "active_buyers"), 0)
    categories = defaultdict(lambda: {"sales": 0, "gmv": 0})
    period = f"date_trunc('{group_by}', created_at AT TIME ZONE 'UTC')::date"
    for alias in worker_names():
        for table, figures_sql in (
            ("orders_sale", "count(*) AS sales, sum(price) AS gmv, count(DISTINCT user_id) AS active_sellers"),
            ("orders_purchase", "count(DISTINCT user_id) AS active_buyers"),
        ):
            sql = f"SELECT {period} AS period, {figures_sql} FROM {table} {where} GROUP BY 1"
            for row in db(alias, sql, [start, end]):
                for name, value in row.items():
                    if name != "period":
                        periods[row["period"]][name] += value
            for row in db(alias, f"SELECT {figures_sql} FROM {table} {where}", [start, end]):
                for name, value in row.items():
                    totals[name] += value or 0
        sql = f"SELECT category, count(*) AS sales, sum(price) AS gmv FROM orders_sale {where} GROUP BY 1"
        for row in db(alias, sql, [start, end]):
            categories[row["category"]]["sales"] += row["sales"]
            categories[row["category"]]["gmv"] += row["gmv"]
    top = sorted(categories.items(), key=lambda item: (-item[1]["gmv"], -item[1]["sales"], item[0]))[:10]
    return {
        "totals": {**totals, "gmv": money(totals["gmv"])},
        "periods": [{"period": p.isoformat(), **periods[p], "gmv": money(periods[p]["gmv"])} for p in sorted(periods)],
        "top_categories": [{"category": c, "sales": s["sales"], "gmv": money(s["gmv"])} for c, s in top],
    }


@pytest.mark.parametrize("group_by", GROUPS)
def test_platform_report_sums_every_worker(market, db, group_by):
    staff = new_user("staff", is_staff=True)
    for first, last in ((date(2026, 1, 1), date(2026, 12, 31)), (date(2026, 9, 21), date(2026, 10, 20))):
        params = {"from": first.isoformat(), "to": last.isoformat(), "group_by": group_by}
        body = get_report(client_for(staff), "platform", **params).json()
        expected = platform_from_sql(db, first, last, group_by)
        assert body["report"] == "platform" and body["currency"] == "USD"
        assert body["totals"] == expected["totals"]
        assert body["periods"] == expected["periods"]
        assert body["top_categories"] == expected["top_categories"]
    everything = get_report(client_for(staff), "platform", **EVERYTHING).json()
    assert everything["totals"] == {
        "sales": len(ORDERS), "gmv": money(sum(LISTINGS[s][i][1] for _, s, i in ORDERS)),
        "active_sellers": 2, "active_buyers": 4,
    }
    workers_with_sales = {home_of_user(market.users[s].id) for _, s, _ in ORDERS}
    assert len(workers_with_sales) == 2, "the platform report really adds up several workers"


def test_platform_csv_has_the_periods(market):
    staff = new_user("staff", is_staff=True)
    client = client_for(staff)
    periods = get_report(client, "platform", group_by="month", **EVERYTHING).json()["periods"]
    lines, _ = csv_of(get_report(client, "platform", group_by="month", format="csv", **EVERYTHING))
    assert lines[0] == ["period", "sales", "gmv", "active_sellers", "active_buyers"]
    assert lines[1:] == [[str(value) for value in period.values()] for period in periods]


def test_platform_is_for_staff_only(market):
    assert_error(get_report(client_for(market.users["seller1"]), "platform"), 403, "permission_denied")
    assert_error(get_report(client_for(), "platform"), 401, "not_authenticated")


@pytest.mark.parametrize("report", USER_REPORTS)
def test_user_reports_need_a_login(clean_marketplace, report):
    assert_error(get_report(client_for(), report), 401, "not_authenticated")
    assert_error(get_report(client_for(), report, format="csv"), 401, "not_authenticated")


# --------------------------------------------------------------------------- bad parameters


BAD_PARAMS = [
    ({"from": "2026-03-01", "to": "2026-02-01"}, "from"),
    ({"from": "2026-02-30"}, "from"),
    ({"to": "2026-13-01"}, "to"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2016-01-01", "to": "2026-01-08"}, "from"),  # 3661 days
    ({"from": "2030-01-01"}, "from"),  # after the default `to`, today
    ({"group_by": "year"}, "group_by"),
    ({"format": "xml"}, "format"),
]


@pytest.mark.parametrize("params,field", BAD_PARAMS)
def test_bad_parameters_are_refused_before_any_query(clean_marketplace, params, field):
    user, staff = new_user("someone"), new_user("staff", is_staff=True)
    for report, who in [*((r, user) for r in USER_REPORTS), ("platform", staff)]:
        client = client_for(who)
        with contextlib.ExitStack() as stack:
            captured = {
                alias: stack.enter_context(CaptureQueriesContext(connections[alias])) for alias in settings.DATABASES
            }
            response = get_report(client, report, **params)
        error = assert_error(response, 400, "validation_error")
        assert set(error["details"]) == {field}, error
        assert {alias: len(queries) for alias, queries in captured.items()} == dict.fromkeys(settings.DATABASES, 0), (
            report, {alias: [q["sql"] for q in queries] for alias, queries in captured.items()}
        )


def test_the_longest_range_is_allowed(clean_marketplace):
    user = new_user("someone")
    response = get_report(client_for(user), "sales", **{"from": "2016-01-01", "to": "2026-01-07"})  # 3660 days
    assert response.status_code == 200, response.json()
    assert response.json()["totals"] == {"count": 0, "amount": "0.00"} and response.json()["periods"] == []


EXTREME_BAD_PARAMS = [
    ({"to": "0001-01-01"}, "to"),  # the default range would start 29 days before the year 1
    ({"to": "0001-01-30"}, None),  # ... and from 0001-01-01 it does not
    ({"from": "0001-01-01"}, "from"),  # up to today: far more than 3660 days
    ({"from": "0001-01-01", "to": "9999-12-31"}, "from"),
    ({"from": "9999-12-31"}, "from"),  # after today
]


@pytest.mark.parametrize("params,field", EXTREME_BAD_PARAMS)
def test_extreme_dates_are_a_validation_error_or_a_report(clean_marketplace, params, field):
    """Date arithmetic at the ends of the calendar must not overflow into a 500."""
    user, staff = new_user("someone"), new_user("staff", is_staff=True)
    for report, who in [*((r, user) for r in USER_REPORTS), ("platform", staff)]:
        for group_by in GROUPS:
            response = get_report(client_for(who), report, group_by=group_by, **params)
            if field is None:
                assert response.status_code == 200, (report, group_by, response.json())
            else:
                error = assert_error(response, 400, "validation_error")
                assert set(error["details"]) == {field}, error


@pytest.mark.parametrize("params", [
    {"from": "0001-01-01", "to": "0001-01-31"}, {"from": "9999-12-01", "to": "9999-12-31"},
])
def test_ranges_at_the_ends_of_the_calendar_are_answered(clean_marketplace, params):
    user, staff = new_user("someone"), new_user("staff", is_staff=True)
    for report, who in [*((r, user) for r in USER_REPORTS), ("platform", staff)]:
        for group_by in GROUPS:
            for fmt in ("json", "csv"):
                response = get_report(client_for(who), report, group_by=group_by, format=fmt, **params)
                assert response.status_code == 200, (report, group_by, fmt)
