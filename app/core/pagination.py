"""Keyset pagination for one user's lists: newest first by id (ids grow with time)."""
from rest_framework import serializers
from rest_framework.response import Response

from sharding.cursors import decode_cursor, encode_cursor
from sharding.errors import InvalidCursorError

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class PageParams(serializers.Serializer):
    page_size = serializers.IntegerField(required=False, min_value=1, default=DEFAULT_PAGE_SIZE)
    cursor = serializers.CharField(required=False, allow_blank=False, max_length=500)


def page_params(request):
    """(page_size capped at MAX_PAGE_SIZE, key of the last row seen or None)."""
    params = PageParams(data=request.query_params)
    params.is_valid(raise_exception=True)
    size = min(params.validated_data["page_size"], MAX_PAGE_SIZE)
    cursor = params.validated_data.get("cursor")
    return size, None if cursor is None else decode_cursor(cursor, length=1)


def newest_first_page(request, queryset, serializer_class):
    size, after = page_params(request)
    if after is not None:
        if not isinstance(after[0], int):
            raise InvalidCursorError("the cursor is not one this API returned")
        queryset = queryset.filter(id__lt=after[0])
    rows = list(queryset.order_by("-id")[: size + 1])
    next_cursor = encode_cursor((rows[size - 1].id,)) if len(rows) > size else None
    return Response({"results": serializer_class(rows[:size], many=True).data, "next": next_cursor})
