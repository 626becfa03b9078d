from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from app.core.errors import NotFound
from app.core.pagination import newest_first_page, page_params
from sharding.errors import InvalidIdError
from sharding.routing import parse_routable_id

from . import selectors, services
from .search import ListingQuery, search_listings
from .serializers import ItemChangesIn, ItemIn, ItemOut, ListingSearchIn


def item_id_from_url(raw):
    try:
        return parse_routable_id(raw)
    except InvalidIdError:
        raise NotFound("No such item.") from None


class ItemListView(APIView):
    def get(self, request):
        return newest_first_page(request, selectors.inventory_of(request.user.id), ItemOut)

    def post(self, request):
        params = ItemIn(data=request.data)
        params.is_valid(raise_exception=True)
        item = services.create_item(request.user, **params.validated_data)
        return Response(ItemOut(item).data, status=201)


class ItemDetailView(APIView):
    def get_permissions(self):
        # Anyone may look at a listed item; changing one needs a login.
        return [AllowAny()] if self.request.method == "GET" else [IsAuthenticated()]

    def get(self, request, item_id):
        viewer = request.user.id if request.user.is_authenticated else None
        return Response(ItemOut(selectors.visible_item(item_id_from_url(item_id), viewer)).data)

    def patch(self, request, item_id):
        params = ItemChangesIn(data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        item = services.update_item(request.user.id, item_id_from_url(item_id), params.validated_data)
        return Response(ItemOut(item).data)

    def delete(self, request, item_id):
        services.delete_item(request.user.id, item_id_from_url(item_id))
        return Response(status=204)


class ListingSearchView(APIView):
    """Listings of other users, across every worker. Anonymous visitors may search too."""

    permission_classes = [AllowAny]

    def get(self, request):
        params = ListingSearchIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        page_size, cursor = page_params(request)
        found = params.validated_data
        query = ListingQuery(
            q=found["q"], min_price=found.get("min_price"), max_price=found.get("max_price"),
            category=found["category"], seller_id=found.get("seller"), sort=found["sort"],
            exclude_user_id=request.user.id if request.user.is_authenticated else None,
        )
        page = search_listings(query, page_size=page_size, cursor=cursor)
        return Response({"results": ItemOut(page.rows, many=True).data, "next": page.next_cursor})
