"""Reads the web pages need, built on the other apps' selectors."""
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model

from app.catalog.models import Item
from app.catalog.selectors import photos_by_item, visible_item
from app.core.errors import NotFound
from app.orders.models import Purchase, Sale
from app.reports.selectors import PURCHASES, SALES, summarize, user_rows
from app.wallet.models import LedgerEntry, Wallet
from sharding.errors import InvalidIdError
from sharding.health import node_health
from sharding.moves import moves_overview
from sharding.overview import cluster_nodes, row_counts_by_worker
from sharding.placement import coordinator, current_placement, node_for_user
from sharding.recovery import in_doubt_transactions


def item_for(item_id, viewer_id=None):
    """visible_item with a URL's id: NotFound for ids of no node, too."""
    try:
        return visible_item(item_id, viewer_id)
    except InvalidIdError:
        raise NotFound("No such item.") from None


def own_item(owner_id, item_id):
    """The viewer's own item; NotFound for anyone else's (never reveal that it exists)."""
    item = item_for(item_id, owner_id)
    if item.user_id != owner_id:
        raise NotFound("No such item.")
    return item


def attach_cover_photos(user_id, purchases):
    """Each purchase's `cover_photo`: the first photo of the item it put in the buyer's inventory, or None."""
    alias = node_for_user(user_id)
    found = photos_by_item(alias, {purchase.item_id for purchase in purchases})
    for purchase in purchases:
        photos = found.get(purchase.item_id)
        purchase.cover_photo = photos[0] if photos else None
    return purchases


# --------------------------------------------------------------------------- reports


def period_starts(first_day, last_day, group_by):
    """The first day of every period that overlaps first_day ... last_day, named as the reports name them
    (date_trunc: a week starts on Monday, a month on its 1st)."""
    if group_by == "week":
        day = first_day - timedelta(days=first_day.weekday())
    elif group_by == "month":
        day = first_day.replace(day=1)
    else:
        day = first_day
    starts = []
    while day <= last_day:
        starts.append(day)
        try:
            if group_by == "month":
                day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
            else:
                day += timedelta(days=7 if group_by == "week" else 1)
        except OverflowError:  # the last period of the calendar (9999-12-31)
            break
    return starts


def activity_report(user_id, first_day, last_day, group_by):
    """The user's sales and purchases per period, from the reports app's sales and purchases reports:
    {"periods": [{"period", "sales", "purchases"}] oldest first, those with either; "sales" and "purchases": totals}."""
    figures = {}
    for report in (SALES, PURCHASES):
        periods, totals = summarize(user_rows(user_id, report, first_day, last_day), report.figures, group_by)
        figures[report.name] = ({row.pop("period"): row for row in periods}, totals)
    (sales, sales_totals), (purchases, purchase_totals) = figures["sales"], figures["purchases"]
    nothing = {"count": 0, "amount": 0}
    return {
        "periods": [
            {"period": start, "sales": sales.get(start, nothing), "purchases": purchases.get(start, nothing)}
            for start in sorted(sales.keys() | purchases.keys())
        ],
        "sales": sales_totals,
        "purchases": purchase_totals,
    }


# --------------------------------------------------------------------------- the cluster (staff)


# The main tables of a worker, counted exactly (count(*)) on the cluster page.
COUNTED_TABLES = (("Wallets", Wallet), ("Ledger entries", LedgerEntry), ("Items", Item), ("Purchases", Purchase),
                  ("Sales", Sale))


@dataclass
class NodeOverview:
    name: str
    role: str
    address: str  # host:port of its PostgreSQL
    bouncer_port: int | None
    up: bool
    latency_ms: float | None
    shards: list | None  # the logical shards a worker holds; None for the coordinator
    row_counts: list | None  # in COUNTED_TABLES' order; None for the coordinator or a worker that did not answer
    in_doubt: list | None  # sharding.recovery.InDoubt of a worker; None if unreachable or the coordinator


def cluster_overview():
    """Every node as the cluster page shows it. Asks every node, and never fails for one that is down."""
    health = {node.name: node for node in node_health()}
    placement = current_placement()  # the catalogue lives on the coordinator, which served this request's session
    # A worker that gives no answer within the fan-out timeout is shown as such, not an error page.
    counts = row_counts_by_worker([model for _, model in COUNTED_TABLES])
    # Our own prepared transactions per worker (None: it did not answer); Citus keeps and recovers its own.
    prepared = in_doubt_transactions()
    nodes = []
    for node in cluster_nodes():
        probe = health.get(node.name)
        nodes.append(NodeOverview(
            name=node.name, role=node.role, address=node.address, bouncer_port=node.bouncer_port,
            up=bool(probe and probe.ok), latency_ms=probe.latency_ms if probe else None, shards=node.shards,
            row_counts=counts.get(node.name) if node.role == "worker" else None,
            in_doubt=prepared.get(node.name, []) if node.role == "worker" else None,
        ))
    workers = [node for node in nodes if node.role == "worker"]
    answered = [node.row_counts for node in workers if node.row_counts is not None]
    return {
        "nodes": nodes,
        "workers": workers,
        "tables": [label for label, _ in COUNTED_TABLES],
        # Over the workers that answered; the page says when one did not.
        "total_rows": [sum(column) for column in zip(*answered, strict=True)] if answered else None,
        "silent_workers": [node.name for node in workers if node.row_counts is None],
        "in_doubt": sorted((entry for node in workers for entry in node.in_doubt or []), key=lambda e: -e.age_seconds),
        "placement_version": placement.version,
        "logical_shards": len(placement.nodes),
        "users": get_user_model().objects.using(coordinator()).count(),
        "moves": moves_overview(),
    }
