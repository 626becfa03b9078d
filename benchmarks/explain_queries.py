"""EXPLAIN (ANALYZE, BUFFERS) of the hot queries on one worker of a seeded cluster.

    CLUSTER_NAME=bench-search1 .venv/bin/python -m benchmarks.explain_queries > benchmarks/results/explain.md

The indexes in app/*/models.py were chosen by reading this output: every query
here should be an index scan (or a bitmap scan of the GIN indexes for text),
never a sequential scan of a large table.
"""
import os


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    import django

    django.setup()
    from django.db import connections

    from app.catalog.search import SORTS, ListingQuery, _listings_on, _ordering
    from app.catalog.selectors import inventory_of
    from app.orders.selectors import purchases_of, sales_of
    from app.wallet.selectors import ledger_of
    from sharding.placement import all_workers, node_for_user

    alias = all_workers()[0]
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT user_id FROM catalog_item GROUP BY user_id ORDER BY count(*) DESC LIMIT 1")
        (busy_user,) = cursor.fetchone()
    assert node_for_user(busy_user) == alias

    def search(**fields):
        query = ListingQuery(**fields)
        return _listings_on(alias, query).order_by(*_ordering(SORTS[query.sort], query))[:21]

    queries = {
        "browse newest": search(sort="newest"),
        "browse by price": search(sort="price"),
        "category, newest": search(category="books", sort="newest"),
        "category and price range, by price": search(
            category="electronics", min_price=1000, max_price=20000, sort="price"
        ),
        "text, relevance": search(q="camera", sort="relevance"),
        "two words, relevance": search(q="vintage laptop", sort="relevance"),
        "typo, relevance": search(q="camra", sort="relevance"),
        "text, by price (descending)": search(q="novel", sort="-price"),
        "inventory of a user": inventory_of(busy_user).order_by("-id")[:21],
        "ledger of a user": ledger_of(busy_user).order_by("-id")[:21],
        "purchases of a user": purchases_of(busy_user).order_by("-id")[:21],
        "sales of a user": sales_of(busy_user).order_by("-id")[:21],
    }
    print(f"# EXPLAIN of the hot queries on {alias}\n")
    print("Command: `CLUSTER_NAME=<cluster> .venv/bin/python -m benchmarks.explain_queries`\n")
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM catalog_item WHERE status = 'listed'")
        print(f"{cursor.fetchone()[0]} listed items on this worker.\n")
        cursor.execute("SET pg_trgm.word_similarity_threshold = 0.5")
        for name, queryset in queries.items():
            sql, params = queryset.query.sql_with_params()
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            print(f"## {name}\n\n```\n{plan}\n```\n")


if __name__ == "__main__":
    main()
