"""Reports over a date range: one user's activity on their worker, and the platform's across every worker.

PostgreSQL does the counting: periods are date_trunc of created_at in UTC,
grouped and summed in SQL, so a report never loads the rows it sums. Rows are
read newest first by id, as the list endpoints read them (a user's ids grow with time).
"""
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek

from app.orders.models import Purchase, Sale
from app.orders.selectors import purchases_of, sales_of
from app.wallet.models import LedgerEntry
from app.wallet.selectors import ledger_of
from sharding.fanout import fan_out

# date_trunc('day' | 'week' | 'month'): a week starts on Monday (ISO), as in PostgreSQL.
PERIODS = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}

# JSON carries at most this many rows; the CSV export has them all.
JSON_ROW_LIMIT = 1000
# Rows per query of a CSV export (each batch is one short query, see newest_first_batches).
CSV_BATCH_SIZE = 2000
# Seconds each worker may take to sum its part of the platform report: it scans
# every sale and purchase in the range, far more than the fan-out default allows for.
PLATFORM_TIMEOUT = 60


@dataclass(frozen=True)
class UserReport:
    name: str
    rows_of: Callable  # user id -> queryset of the user's rows, on the user's worker
    figures: Callable  # () -> {name: aggregate}, fresh expressions for each query
    money: frozenset  # which figures are amounts


def _sales_and_purchases_figures():
    return {"count": Count("id"), "amount": Sum("price", default=0)}


def _ledger_sum(kind=None):
    return Sum("amount", filter=None if kind is None else Q(kind=kind), default=0)


def _transaction_figures():
    # Signed as in the ledger: deposits and sales positive, purchases negative; net is their sum.
    return {
        "count": Count("id"),
        "deposits": _ledger_sum(LedgerEntry.DEPOSIT),
        "purchases": _ledger_sum(LedgerEntry.PURCHASE),
        "sales": _ledger_sum(LedgerEntry.SALE),
        "net": _ledger_sum(),
    }


TRANSACTIONS = UserReport(
    "transactions", ledger_of, _transaction_figures, frozenset({"deposits", "purchases", "sales", "net"})
)
SALES = UserReport("sales", sales_of, _sales_and_purchases_figures, frozenset({"amount"}))
PURCHASES = UserReport("purchases", purchases_of, _sales_and_purchases_figures, frozenset({"amount"}))


def in_range(queryset, first_day, last_day):
    """Rows created on first_day ... last_day inclusive, as UTC calendar days.

    BETWEEN midnight and 23:59:59.999999 is exactly the last day, since
    PostgreSQL timestamps have microsecond resolution.
    """
    return queryset.filter(
        created_at__range=(datetime.combine(first_day, time.min, UTC), datetime.combine(last_day, time.max, UTC))
    )


def summarize(queryset, figures, group_by):
    """([{"period": date, **figures}] oldest first, one per period with rows; {**figures} over all of them)."""
    periods = (
        queryset.annotate(period=PERIODS[group_by]("created_at", tzinfo=UTC))
        .values("period")
        .annotate(**figures())
        .order_by("period")
    )
    return [{**row, "period": row["period"].date()} for row in periods], queryset.aggregate(**figures())


def user_rows(user_id, report, first_day, last_day):
    return in_range(report.rows_of(user_id), first_day, last_day)


def user_report(user_id, report, first_day, last_day, group_by):
    rows = user_rows(user_id, report, first_day, last_day)
    periods, totals = summarize(rows, report.figures, group_by)
    newest = list(rows.order_by("-id")[: JSON_ROW_LIMIT + 1])
    return {
        "totals": totals,
        "periods": periods,
        "rows": newest[:JSON_ROW_LIMIT],
        "rows_truncated": len(newest) > JSON_ROW_LIMIT,
    }


def newest_first_batches(queryset):
    """Every row, newest first, in lists of CSV_BATCH_SIZE read with keyset queries (id < the last one seen).

    QuerySet.iterator() would not bound memory here: server-side cursors are
    off for pgbouncer (transaction pooling), and without them Django fetches
    the whole result at once. Each batch is its own short query on the
    (user_id, -id) index, so no transaction stays open while a client downloads.
    """
    queryset = queryset.order_by("-id")
    batch = list(queryset[:CSV_BATCH_SIZE])
    while batch:
        yield batch
        if len(batch) < CSV_BATCH_SIZE:
            return
        batch = list(queryset.filter(id__lt=batch[-1].id)[:CSV_BATCH_SIZE])


# --------------------------------------------------------------------------- platform


PLATFORM_FIGURES = ("sales", "gmv", "active_sellers", "active_buyers")
PLATFORM_MONEY = frozenset({"gmv"})
TOP_CATEGORIES = 10


def _seller_figures():
    return {"sales": Count("id"), "gmv": Sum("price", default=0), "active_sellers": Count("user_id", distinct=True)}


def _buyer_figures():
    return {"active_buyers": Count("user_id", distinct=True)}


def _platform_on(alias, first_day, last_day, group_by):
    """One worker's part: its sales (on sellers' shards) and purchases (on buyers' shards), summed."""
    sales = in_range(Sale.objects.using(alias), first_day, last_day)
    purchases = in_range(Purchase.objects.using(alias), first_day, last_day)
    seller_periods, seller_totals = summarize(sales, _seller_figures, group_by)
    buyer_periods, buyer_totals = summarize(purchases, _buyer_figures, group_by)
    return {
        "periods": seller_periods + buyer_periods,
        "totals": {**seller_totals, **buyer_totals},
        # Every category, not this worker's top ten: the top ten of the sums is not the sum of the top tens.
        "categories": list(sales.values("category").annotate(sales=Count("id"), gmv=Sum("price"))),
    }


def platform_report(first_day, last_day, group_by):
    """The platform's figures over every worker.

    Each worker's sums and counts simply add up, the distinct ones too: a user's
    rows all live on that user's worker, so no seller or buyer is counted by two
    workers, and per-worker distinct counts add up to the platform's.
    """
    parts = fan_out(
        lambda alias: _platform_on(alias, first_day, last_day, group_by), timeout=PLATFORM_TIMEOUT
    ).results.values()
    totals = Counter(dict.fromkeys(PLATFORM_FIGURES, 0))
    periods, categories = defaultdict(Counter), defaultdict(Counter)
    for part in parts:
        totals.update(part["totals"])
        for row in part["periods"]:
            periods[row.pop("period")].update(row)
        for row in part["categories"]:
            categories[row.pop("category")].update(row)
    by_gmv = sorted(categories.items(), key=lambda item: (-item[1]["gmv"], -item[1]["sales"], item[0]))
    return {
        "totals": dict(totals),
        "periods": [
            {"period": period, **{name: sums[name] for name in PLATFORM_FIGURES}}
            for period, sums in sorted(periods.items())
        ],
        "top_categories": [
            {"category": category, "sales": sums["sales"], "gmv": sums["gmv"]}
            for category, sums in by_gmv[:TOP_CATEGORIES]
        ],
    }
