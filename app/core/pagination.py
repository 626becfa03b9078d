"""Page sizes and keyset pagination for one user's lists, newest first by id (ids grow with time): the API's and
the pages'."""
from rest_framework import serializers
from rest_framework.response import Response

from sharding.page_tokens import decode_cursor, encode_cursor

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def query_data(request):
    """The query parameters as a plain dict, for a serializer: `?cursor=` is then an empty cursor (a 400), not a
    missing one, as the OpenAPI description says (DRF reads an empty form value as no value at all)."""
    return request.query_params.dict()


class PageParams(serializers.Serializer):
    page_size = serializers.IntegerField(
        required=False, min_value=1, default=DEFAULT_PAGE_SIZE, help_text=f"At most {MAX_PAGE_SIZE} are returned.",
    )
    cursor = serializers.CharField(
        required=False, allow_blank=False, max_length=500,
        help_text="The `next` of the previous page, as it was; any other string is a 400 `invalid_cursor`.",
    )


def page_params(request):
    """(page_size capped at MAX_PAGE_SIZE, the opaque cursor or None)."""
    params = PageParams(data=query_data(request))
    params.is_valid(raise_exception=True)
    return min(params.validated_data["page_size"], MAX_PAGE_SIZE), params.validated_data.get("cursor")


def newest_first(queryset, *, cursor, size):
    """One page of rows, newest first by id: (rows, next cursor or None). A cursor that is not one of ours
    raises InvalidCursorError (a 400 on the API and on the pages)."""
    if cursor is not None:
        (last_id,) = decode_cursor(cursor, types=(int,))
        queryset = queryset.filter(id__lt=last_id)
    rows = list(queryset.order_by("-id")[: size + 1])
    next_cursor = encode_cursor((rows[size - 1].id,)) if len(rows) > size else None
    return rows[:size], next_cursor


def newest_first_page(request, queryset, serializer_class, prepare=None):
    """A page of `queryset`, newest first; `prepare(rows)` may load what the rows need (photos) in bulk."""
    size, cursor = page_params(request)
    rows, next_cursor = newest_first(queryset, cursor=cursor, size=size)
    if prepare is not None:
        rows = prepare(rows)
    return Response({"results": serializer_class(rows, many=True).data, "next": next_cursor})
