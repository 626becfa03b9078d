"""Search and browse listings across every worker.

Each worker filters, scores, orders and limits its own listings; the routing
layer merges the per-worker pages (sharding.fanout.fan_out_page) and pages with
keyset cursors. Matching is PostgreSQL full-text search on a weighted
tsvector (title over description) OR trigram word similarity on the title, so
typos and partial words ("laptp", "lapto") still find "laptop".
"""
import re
from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchRank, TrigramWordSimilarity
from django.db import connections
from django.db.models import F, FloatField, Q
from django.db.models.functions import Cast

from sharding.fanout import fan_out_page
from sharding.page_tokens import keyset_after
from sharding.placement import node_for_user

from .models import Item

# word_similarity above which a title matches a query word (pg_trgm's default, 0.6, misses "laptp").
WORD_SIMILARITY_THRESHOLD = 0.5
MAX_FUZZY_WORDS = 8


@dataclass(frozen=True)
class Sort:
    fields: tuple  # the keyset: ends with id, so it is unique
    types: tuple  # of the keyset's values, to check cursors
    descending: bool


SORTS = {
    "relevance": Sort(("score", "id"), (float, int), descending=True),
    "newest": Sort(("id",), (int,), descending=True),
    "price": Sort(("price", "id"), (int, int), descending=False),
    "-price": Sort(("price", "id"), (int, int), descending=True),
}


@dataclass(frozen=True)
class ListingQuery:
    q: str = ""
    min_price: int | None = None
    max_price: int | None = None
    category: str = ""
    seller_id: int | None = None
    exclude_user_id: int | None = None  # the caller never sees their own listings
    sort: str = "newest"

    @classmethod
    def from_params(cls, params, *, viewer_id):
        """The query of validated ListingSearchIn data, for the API and the search page alike."""
        return cls(
            q=params["q"], min_price=params.get("min_price"), max_price=params.get("max_price"),
            category=params["category"], seller_id=params.get("seller"), sort=params["sort"], exclude_user_id=viewer_id,
        )


def _listings_on(alias, query):
    listings = Item.objects.using(alias).filter(status=Item.LISTED)
    if query.min_price is not None:
        listings = listings.filter(price__gte=query.min_price)
    if query.max_price is not None:
        listings = listings.filter(price__lte=query.max_price)
    if query.category:
        listings = listings.filter(category=query.category)
    if query.seller_id is not None:
        listings = listings.filter(user_id=query.seller_id)
    if query.exclude_user_id is not None:
        listings = listings.exclude(user_id=query.exclude_user_id)
    if query.q:
        words = SearchQuery(query.q, search_type="websearch", config="english")
        # float8, so the score survives the round trip through a cursor exactly.
        score = Cast(SearchRank(F("search_vector"), words) + TrigramWordSimilarity(query.q, "title"), FloatField())
        # A typo-tolerant match needs every query word to be close to a word of the title.
        close_words = Q()
        for word in re.findall(r"\w+", query.q)[:MAX_FUZZY_WORDS]:
            close_words &= Q(title__trigram_word_similar=word)
        matches = Q(search_vector=words) | close_words if close_words else Q(search_vector=words)
        listings = listings.filter(matches).annotate(score=score)
    return listings


def _ordering(sort, query):
    columns = [F(field) for field in sort.fields]
    if query.q and sort.fields[0] == "price":
        # Text matches sorted by price: walking the price index and filtering every row
        # is what the planner picks (it overestimates trigram matches), and it reads tens of
        # thousands of rows for a cheap item's match (EXPLAIN: 300 ms for q=novel, sort=-price).
        # Ordering by an expression makes it collect the matches through the GIN indexes first.
        columns[0] = F("price") + 0
    return [column.desc() if sort.descending else column.asc() for column in columns]


def search_listings(query, *, page_size, cursor=None, allow_partial=False):
    """One page of matching listings in global order: Page(rows, next_cursor, failed).

    allow_partial: a worker that is down or too slow is left out and named in
    `failed`, instead of failing the whole search.
    """
    sort = SORTS[query.sort]

    def page_on(alias, after, limit):
        if query.q:
            with connections[alias].cursor() as cursor:
                cursor.execute("SET LOCAL pg_trgm.word_similarity_threshold = %s", [WORD_SIMILARITY_THRESHOLD])
        listings = _listings_on(alias, query)
        if after is not None:
            listings = listings.filter(keyset_after(sort.fields, after, sort.descending))
        return list(listings.order_by(*_ordering(sort, query))[:limit])

    nodes = [node_for_user(query.seller_id)] if query.seller_id is not None else None  # None: every worker
    return fan_out_page(
        page_on, key=lambda item: tuple(getattr(item, field) for field in sort.fields),
        page_size=page_size, cursor=cursor, cursor_types=sort.types, descending=sort.descending, nodes=nodes,
        allow_partial=allow_partial,
    )
