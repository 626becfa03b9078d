from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from app.core.error_codes import CommonErrorCode
from app.core.idempotency import idempotency_key_from
from app.core.openapi import BAD_BODY, IDEMPOTENCY_KEY, NEEDS_LOGIN, PAGE_ERRORS, TRY_AGAIN, errors, paginated
from app.core.pagination import PageParams, newest_first_page
from app.orders.error_codes import OrderErrorCode
from app.wallet.error_codes import WalletErrorCode

from . import selectors, services
from .serializers import PlacedOrderOut, PurchaseIn, PurchaseOut, SaleOut


class PurchaseListView(APIView):
    throttle_scopes = {"POST": "purchase"}
    @extend_schema(
        summary="My purchases, newest first",
        operation_id="purchases_list",
        parameters=[PageParams],
        responses={200: paginated(PurchaseOut), **errors(PAGE_ERRORS, NEEDS_LOGIN)},
    )
    def get(self, request):
        return newest_first_page(request, selectors.purchases_of(request.user.id), PurchaseOut)

    @extend_schema(
        summary="Buy a listing",
        request=PurchaseIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            201: PlacedOrderOut,
            **errors(
                (*BAD_BODY, CommonErrorCode.IDEMPOTENCY_KEY_REQUIRED, OrderErrorCode.OWN_ITEM),
                NEEDS_LOGIN,
                (402, WalletErrorCode.INSUFFICIENT_FUNDS),
                (404, CommonErrorCode.NOT_FOUND),
                (409, OrderErrorCode.ITEM_NOT_AVAILABLE, OrderErrorCode.PRICE_CHANGED),
                (422, CommonErrorCode.IDEMPOTENCY_KEY_REUSED),
                TRY_AGAIN,
            ),
        },
        description=(
            "Debits me, credits the seller, closes the listing and puts a new item in my inventory, atomically. "
            "`expected_price` must be the listing's price (409 `price_changed` otherwise)."
        ),
    )
    def post(self, request):
        key = idempotency_key_from(request)
        params = PurchaseIn(data=request.data)
        params.is_valid(raise_exception=True)
        status, body = services.place_order(
            buyer=request.user, listing_id=params.validated_data["item_id"],
            expected_price=params.validated_data["expected_price"], idempotency_key=key,
        )
        return Response(body, status=status)


class SaleListView(APIView):
    @extend_schema(
        summary="My sales, newest first",
        operation_id="sales_list",
        parameters=[PageParams],
        responses={200: paginated(SaleOut), **errors(PAGE_ERRORS, NEEDS_LOGIN)},
    )
    def get(self, request):
        return newest_first_page(request, selectors.sales_of(request.user.id), SaleOut)
