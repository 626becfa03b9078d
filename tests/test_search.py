"""Search across workers equals a reference computed straight from every worker, for every sort and page."""
import random

import psycopg2
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from app.catalog.models import Item
from app.catalog.search import WORD_SIMILARITY_THRESHOLD
from sharding.config import direct_dsn
from sharding.placement import node_for_user
from tests.conftest import worker_names

NOUNS = ["laptop", "camera", "guitar", "bicycle", "novel", "teapot", "drill", "jacket", "lamp", "record"]
ADJECTIVES = ["vintage", "refurbished", "portable", "handmade", "signed", "boxed", "rare", "compact"]
CATEGORIES = ["electronics", "books", "home", "music", "sports"]
PRICES = [100, 250, 999, 1500, 2000, 4999, 10000]  # few distinct prices: many ties across workers
LISTINGS = 600


@pytest.fixture(scope="module")
def catalog(django_db_blocker):
    """600+ listings by 40 sellers on every worker, plus unlisted and sold ones, made once for the module."""
    with django_db_blocker.unblock():
        _reset()
        users = get_user_model().objects.bulk_create(
            get_user_model()(username=f"seller{i}", email=f"seller{i}@example.com") for i in range(40)
        )
        rng = random.Random(7)
        by_node = {}
        for n in range(LISTINGS + 60):
            owner = rng.choice(users)
            status = Item.LISTED if n < LISTINGS else rng.choice([Item.UNLISTED, Item.SOLD])
            noun = rng.choice(NOUNS)
            by_node.setdefault(node_for_user(owner.id), []).append(Item(
                user_id=owner.id, owner_username=owner.username, status=status,
                title=f"{rng.choice(ADJECTIVES)} {noun}", description=f"A {noun} in good shape, #{n}.",
                category=rng.choice(CATEGORIES), price=rng.choice(PRICES),
            ))
        for alias, items in by_node.items():
            Item.objects.using(alias).bulk_create(items)
        assert len(by_node) == len(worker_names())
        yield users
        _reset()


def _reset():
    for name in worker_names():
        with psycopg2.connect(**direct_dsn(settings.CLUSTER_CONFIG, name)) as conn, conn.cursor() as cursor:
            cursor.execute("TRUNCATE catalog_item")
    coordinator = next(n["name"] for n in settings.CLUSTER_CONFIG["nodes"] if n["role"] == "coordinator")
    with psycopg2.connect(**direct_dsn(settings.CLUSTER_CONFIG, coordinator)) as conn, conn.cursor() as cursor:
        cursor.execute("TRUNCATE auth_user CASCADE")


def reference(*, q="", sort, category=None, min_price=None, max_price=None, exclude_user=None):
    """Every matching listing, queried straight from each worker in SQL and sorted in Python."""
    conditions, params = ["status = 'listed'"], {"q": q, "category": category, "low": min_price, "high": max_price}
    if category:
        conditions.append("category = %(category)s")
    if min_price is not None:
        conditions.append("price >= %(low)s")
    if max_price is not None:
        conditions.append("price <= %(high)s")
    if exclude_user is not None:
        conditions.append(f"user_id <> {int(exclude_user)}")
    score = "0::float8"
    if q:
        fuzzy = " AND ".join(f"%(w{i})s <%% title" for i, _ in enumerate(q.split()))
        params.update({f"w{i}": word for i, word in enumerate(q.split())})
        conditions.append(f"(search_vector @@ websearch_to_tsquery('english', %(q)s) OR ({fuzzy}))")
        score = (
            "(ts_rank(search_vector, websearch_to_tsquery('english', %(q)s)) + word_similarity(%(q)s, title))::float8"
        )
    rows = []
    for name in worker_names():
        with psycopg2.connect(**direct_dsn(settings.CLUSTER_CONFIG, name)) as conn, conn.cursor() as cursor:
            cursor.execute("SET pg_trgm.word_similarity_threshold = %s", [WORD_SIMILARITY_THRESHOLD])
            cursor.execute(f"SELECT id, price, {score} FROM catalog_item WHERE {' AND '.join(conditions)}", params)
            rows.extend(cursor.fetchall())
    keys = {
        "newest": lambda r: (-r[0],),
        "price": lambda r: (r[1], r[0]),
        "-price": lambda r: (-r[1], -r[0]),
        "relevance": lambda r: (-r[2], -r[0]),
    }
    return [str(row[0]) for row in sorted(rows, key=keys[sort])]


def page_through(client, params, page_size):
    seen, cursor = [], None
    while True:
        query = {**params, "page_size": page_size, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/listings", query)
        assert response.status_code == 200, response.json()
        body = response.json()
        assert len(body["results"]) <= page_size
        seen.extend(item["id"] for item in body["results"])
        cursor = body["next"]
        if cursor is None:
            return seen


CASES = [
    ({"sort": "newest"}, {}),
    ({"sort": "price"}, {}),
    ({"sort": "-price"}, {}),
    ({"sort": "price", "category": "books"}, {"category": "books"}),
    ({"sort": "-price", "min_price": "9.99", "max_price": "20.00"}, {"min_price": 999, "max_price": 2000}),
    ({"q": "camera"}, {"q": "camera", "sort": "relevance"}),
    ({"q": "vintage guitar"}, {"q": "vintage guitar", "sort": "relevance"}),
    ({"q": "laptp"}, {"q": "laptp", "sort": "relevance"}),
    ({"q": "drill", "sort": "price"}, {"q": "drill", "sort": "price"}),
    ({"q": "lamp", "sort": "newest", "category": "home"}, {"q": "lamp", "sort": "newest", "category": "home"}),
]


# Page size 1 pages through ties one row at a time; the search cases keep it short.
PAGINGS = [(params, expected, size) for params, expected in CASES for size in (37, 100)] + [
    (params, expected, 1) for params, expected in CASES if "q" in params
]


@pytest.mark.parametrize("params,expected,page_size", PAGINGS, ids=[f"{p}-{size}" for p, _, size in PAGINGS])
def test_paging_to_the_end_equals_the_reference(catalog, params, expected, page_size):
    expected = reference(**{"sort": params.get("sort", "newest"), **expected})
    assert expected, "the case must match something"
    seen = page_through(APIClient(), params, page_size)
    assert seen == expected


def test_logged_in_caller_never_sees_their_own_listings(catalog):
    caller = catalog[0]
    client = APIClient()
    client.force_authenticate(caller)
    seen = page_through(client, {"sort": "price"}, 100)
    assert seen == reference(sort="price", exclude_user=caller.id)
    own = set(map(
        str, Item.objects.using(node_for_user(caller.id)).filter(user_id=caller.id).values_list("id", flat=True)
    ))
    assert own and not own & set(seen)


def test_typos_and_partial_words_find_the_listing(catalog):
    for query in ("laptp", "lapto", "LAPTOP", "camra", "bicycl"):
        titles = [item["title"] for item in APIClient().get("/api/v1/listings", {"q": query}).json()["results"]]
        assert titles, query
        assert all(query.lower()[:3] in title.lower() for title in titles), (query, titles)


def test_sold_and_unlisted_items_never_appear(catalog):
    hidden = set()
    for name in worker_names():
        hidden |= set(map(str, Item.objects.using(name).exclude(status=Item.LISTED).values_list("id", flat=True)))
    assert hidden
    for params in ({"sort": "newest"}, {"q": "camera"}, {"q": "vintage"}):
        assert not hidden & set(page_through(APIClient(), params, 100))


@pytest.mark.own_engine  # which of our workers a query goes to
def test_seller_filter_asks_only_that_sellers_worker(catalog):
    seller = catalog[3]
    other_workers = [alias for alias in worker_names() if alias != node_for_user(seller.id)]
    with CaptureQueriesContext(connections[other_workers[0]]) as elsewhere:
        found = APIClient().get("/api/v1/listings", {"seller": seller.id, "page_size": 100}).json()["results"]
    assert found and {item["owner"]["id"] for item in found} == {str(seller.id)}
    assert len(elsewhere) == 0


def test_new_listings_arriving_while_paging_cause_no_duplicates_or_gaps(catalog):
    before = reference(sort="newest")
    client = APIClient()
    first = client.get("/api/v1/listings", {"page_size": 50}).json()
    owner = catalog[5]
    Item.objects.using(node_for_user(owner.id)).bulk_create(
        Item(user_id=owner.id, owner_username=owner.username, title="fresh lamp", price=500) for _ in range(5)
    )
    try:
        seen = [item["id"] for item in first["results"]]
        seen += page_through(client, {"cursor": first["next"]}, 50)
        assert seen == before
    finally:
        Item.objects.using(node_for_user(owner.id)).filter(title="fresh lamp").delete()


BAD_PARAMS = [
    ({"min_price": "20.00", "max_price": "10.00"}, "validation_error"),
    ({"sort": "cheapest"}, "validation_error"),
    ({"sort": "relevance"}, "validation_error"),
    ({"min_price": "abc"}, "validation_error"),
    ({"page_size": "0"}, "validation_error"),
    ({"seller": "x"}, "validation_error"),
    ({"q": "x" * 201}, "validation_error"),
    ({"cursor": "not-a-cursor"}, "invalid_cursor"),
]


@pytest.mark.parametrize("params,code", BAD_PARAMS, ids=[str(p)[:40] for p, _ in BAD_PARAMS])
def test_bad_parameters_are_refused_before_any_query(params, code):
    contexts = [CaptureQueriesContext(connections[alias]) for alias in settings.DATABASES]
    for context in contexts:
        context.__enter__()
    try:
        response = APIClient().get("/api/v1/listings", params)
    finally:
        for context in contexts:
            context.__exit__(None, None, None)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert [len(context) for context in contexts] == [0] * len(contexts)


def test_cursor_of_another_sort_is_refused(catalog):
    cursor = APIClient().get("/api/v1/listings", {"sort": "price", "page_size": 5}).json()["next"]
    response = APIClient().get("/api/v1/listings", {"sort": "newest", "cursor": cursor})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_cursor"
