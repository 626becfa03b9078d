from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from app.catalog.error_codes import CatalogErrorCode
from app.core.error_codes import CommonErrorCode
from app.core.errors import NotFound
from app.core.fields import ID_PATTERN
from app.core.openapi import BAD_BODY, NEEDS_LOGIN, PAGE_ERRORS, TRY_AGAIN, errors, paginated, partial_page
from app.core.pagination import PageParams, newest_first_page, page_params, query_data
from app.core.throttling import ThrottledAfterValidation
from sharding.errors import InvalidIdError
from sharding.page_tokens import decode_cursor
from sharding.placement import parse_routable_id

from . import selectors, services
from .search import SORTS, ListingQuery, search_listings
from .serializers import ItemChangesIn, ItemIn, ItemOut, ListingSearchIn


def item_id_from_url(raw):
    try:
        return parse_routable_id(raw)
    except InvalidIdError:
        raise NotFound("No such item.") from None


# Any other string is a 404, like an id that names no item.
NOT_FOUND = (404, CommonErrorCode.NOT_FOUND)
ITEM_SOLD = (409, CatalogErrorCode.ITEM_SOLD)
ITEM_ID = OpenApiParameter("item_id", str, OpenApiParameter.PATH, pattern=ID_PATTERN, description="The item's id.")


class ItemListView(APIView):
    throttle_scopes = {"POST": "listing"}  # creating listings is limited; reading my inventory is not
    @extend_schema(
        summary="My inventory (listed, unlisted and sold items), newest first",
        operation_id="items_list",  # APIViews get *_retrieve, and GET items/{item_id} is items_retrieve
        parameters=[PageParams],
        responses={200: paginated(ItemOut), **errors(PAGE_ERRORS, NEEDS_LOGIN)},
    )
    def get(self, request):
        return newest_first_page(request, selectors.inventory_of(request.user.id), ItemOut)

    @extend_schema(
        summary="List an item for sale",
        request=ItemIn,
        responses={201: ItemOut, **errors(BAD_BODY, NEEDS_LOGIN)},
        description="`price` from 0.01 to 1000000.00, with at most two decimals.",
    )
    def post(self, request):
        params = ItemIn(data=request.data)
        params.is_valid(raise_exception=True)
        item = services.create_item(owner=request.user, **params.validated_data)
        return Response(ItemOut(item).data, status=201)


class ItemDetailView(APIView):
    def get_permissions(self):
        # Anyone may look at a listed item; changing one needs a login.
        return [AllowAny()] if self.request.method == "GET" else [IsAuthenticated()]

    @extend_schema(
        summary="An item: anyone sees a listed one, only its owner an unlisted or sold one",
        parameters=[ITEM_ID],
        responses={
            200: ItemOut, **errors((401, CommonErrorCode.AUTHENTICATION_FAILED), (404, CommonErrorCode.NOT_FOUND)),
        },
    )
    def get(self, request, item_id):
        viewer = request.user.id if request.user.is_authenticated else None
        return Response(ItemOut(selectors.visible_item(item_id_from_url(item_id), viewer)).data)

    @extend_schema(
        summary="Change my item (or list or unlist it with `status`)",
        parameters=[ITEM_ID],
        request=ItemChangesIn,
        responses={
            200: ItemOut,
            **errors(BAD_BODY, NEEDS_LOGIN, NOT_FOUND, ITEM_SOLD, TRY_AGAIN),
        },
    )
    def patch(self, request, item_id):
        params = ItemChangesIn(data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        item = services.update_item(
            owner_id=request.user.id, item_id=item_id_from_url(item_id), changes=params.validated_data,
        )
        return Response(ItemOut(item).data)

    @extend_schema(
        summary="Delete my item",
        parameters=[ITEM_ID],
        responses={204: None, **errors(NEEDS_LOGIN, NOT_FOUND, ITEM_SOLD, TRY_AGAIN)},
    )
    def delete(self, request, item_id):
        services.delete_item(owner_id=request.user.id, item_id=item_id_from_url(item_id))
        return Response(status=204)


class ListingSearchView(ThrottledAfterValidation, APIView):
    """Listings of other users, across every worker. Anonymous visitors may search too.

    A search counts (in its limits) once its parameters and cursor are good: a refused one makes no query at all.
    """

    permission_classes = [AllowAny]
    throttle_scope = "search"

    @extend_schema(
        summary="Search other users' listings on every worker",
        operation_id="listings_list",
        parameters=[ListingSearchIn, PageParams],
        responses={
            200: partial_page(ItemOut),
            **errors(PAGE_ERRORS, (401, CommonErrorCode.AUTHENTICATION_FAILED), TRY_AGAIN),
        },
        description=(
            "Full-text search of titles and descriptions, with typo-tolerant title matching. `sort`: `relevance` "
            "(the default with `q`, which it needs), `newest` (the default otherwise), `price`, `-price`. "
            "`min_price` must not be above `max_price`. A worker that is down or does not answer in time is left "
            "out: the page then says `partial: true` and names it in `unavailable_nodes`.\n\n"
            "Rules between the parameters, which OpenAPI cannot express (a 400 `validation_error` otherwise): "
            "`min_price` is not above `max_price`, and `sort=relevance` needs a `q` with some text."
        ),
    )
    def get(self, request):
        params = ListingSearchIn(data=query_data(request))
        params.is_valid(raise_exception=True)
        page_size, cursor = page_params(request)
        found = params.validated_data
        if cursor is not None:
            decode_cursor(cursor, types=SORTS[found["sort"]].types)  # InvalidCursorError: a 400
        self.throttle(request)
        query = ListingQuery.from_params(found, viewer_id=request.user.id if request.user.is_authenticated else None)
        page = search_listings(query, page_size=page_size, cursor=cursor, allow_partial=True)
        return Response({
            "results": ItemOut(page.rows, many=True).data, "next": page.next_cursor,
            "partial": bool(page.failed), "unavailable_nodes": page.failed,
        })
