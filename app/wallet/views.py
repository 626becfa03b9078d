from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from app.core.error_codes import CommonErrorCode
from app.core.idempotency import idempotency_key_from
from app.core.openapi import BAD_BODY, IDEMPOTENCY_KEY, NEEDS_LOGIN, PAGE_ERRORS, TRY_AGAIN, errors, paginated
from app.core.pagination import PageParams, newest_first_page
from app.wallet.error_codes import WalletErrorCode

from . import selectors, services
from .serializers import DepositIn, DepositOut, LedgerEntryOut, WalletOut


class WalletView(APIView):
    @extend_schema(summary="My balance", responses={200: WalletOut, **errors(NEEDS_LOGIN)})
    def get(self, request):
        return Response(WalletOut({"balance": selectors.balance_of(request.user.id)}).data)


class DepositView(APIView):
    throttle_scope = "deposit"
    @extend_schema(
        summary="Add money to my wallet",
        request=DepositIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            201: DepositOut,
            **errors(
                (*BAD_BODY, CommonErrorCode.IDEMPOTENCY_KEY_REQUIRED), NEEDS_LOGIN,
                (422, CommonErrorCode.IDEMPOTENCY_KEY_REUSED, WalletErrorCode.DEPOSIT_LIMIT_EXCEEDED), TRY_AGAIN,
            ),
        },
        description=(
            "`amount` from 0.01 to 1000000.00, with at most two decimals. A user deposits at most the daily "
            "deposit limit (10000.00 by default) per UTC day: a deposit over it is a 422 `deposit_limit_exceeded` "
            "(`details`: `limit`, `deposited_today`, `remaining_today`), stored under its Idempotency-Key like "
            "any other answer."
        ),
    )
    def post(self, request):
        key = idempotency_key_from(request)
        params = DepositIn(data=request.data)
        params.is_valid(raise_exception=True)
        status, body = services.deposit_funds(
            user_id=request.user.id, amount=params.validated_data["amount"], idempotency_key=key,
        )
        return Response(body, status=status)


class LedgerView(APIView):
    @extend_schema(
        summary="Every movement of my balance, newest first",
        operation_id="wallet_ledger_list",
        parameters=[PageParams],
        responses={200: paginated(LedgerEntryOut), **errors(PAGE_ERRORS, NEEDS_LOGIN)},
    )
    def get(self, request):
        return newest_first_page(request, selectors.ledger_of(request.user.id), LedgerEntryOut)
