from rest_framework.response import Response
from rest_framework.views import APIView

from app.core.idempotency import fingerprint, idempotency_key_from, run_idempotent
from app.core.pagination import newest_first_page
from sharding.routing import node_for_id

from . import selectors, services
from .serializers import PlacedOrderOut, PurchaseIn, PurchaseOut, SaleOut


class PurchaseListView(APIView):
    def get(self, request):
        return newest_first_page(request, selectors.purchases_of(request.user.id), PurchaseOut)

    def post(self, request):
        key = idempotency_key_from(request)
        params = PurchaseIn(data=request.data)
        params.is_valid(raise_exception=True)
        listing_id, price = params.validated_data["item_id"], params.validated_data["expected_price"]
        status, body = run_idempotent(
            user_id=request.user.id, key=key,
            request_hash=fingerprint("purchase", {"item_id": listing_id, "expected_price": price}),
            nodes=[node_for_id(listing_id)],
            operation=lambda: PlacedOrderOut(services.place_order(request.user, listing_id, price)).data,
        )
        return Response(body, status=status)


class SaleListView(APIView):
    def get(self, request):
        return newest_first_page(request, selectors.sales_of(request.user.id), SaleOut)
