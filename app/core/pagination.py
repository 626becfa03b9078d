"""Page sizes and keyset pagination for one user's lists: newest first by id (ids grow with time)."""
from rest_framework import serializers
from rest_framework.response import Response

from sharding.cursors import decode_cursor, encode_cursor

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class PageParams(serializers.Serializer):
    page_size = serializers.IntegerField(required=False, min_value=1, default=DEFAULT_PAGE_SIZE)
    cursor = serializers.CharField(required=False, allow_blank=False, max_length=500)


def page_params(request):
    """(page_size capped at MAX_PAGE_SIZE, the opaque cursor or None)."""
    params = PageParams(data=request.query_params)
    params.is_valid(raise_exception=True)
    return min(params.validated_data["page_size"], MAX_PAGE_SIZE), params.validated_data.get("cursor")


def newest_first_page(request, queryset, serializer_class):
    size, cursor = page_params(request)
    if cursor is not None:
        (last_id,) = decode_cursor(cursor, types=(int,))
        queryset = queryset.filter(id__lt=last_id)
    rows = list(queryset.order_by("-id")[: size + 1])
    next_cursor = encode_cursor((rows[size - 1].id,)) if len(rows) > size else None
    return Response({"results": serializer_class(rows[:size], many=True).data, "next": next_cursor})
