from rest_framework.response import Response
from rest_framework.views import APIView

from app.core.idempotency import fingerprint, idempotency_key_from, run_idempotent
from app.core.pagination import newest_first_page
from sharding.routing import node_for_user

from . import selectors, services
from .serializers import DepositIn, DepositOut, LedgerEntryOut, WalletOut


class WalletView(APIView):
    def get(self, request):
        return Response(WalletOut({"balance": selectors.balance_of(request.user.id)}).data)


class DepositView(APIView):
    def post(self, request):
        key = idempotency_key_from(request)
        params = DepositIn(data=request.data)
        params.is_valid(raise_exception=True)
        amount = params.validated_data["amount"]
        status, body = run_idempotent(
            user_id=request.user.id, key=key, request_hash=fingerprint("deposit", {"amount": amount}),
            nodes=[node_for_user(request.user.id)],
            operation=lambda: DepositOut(services.deposit(request.user.id, amount)).data,
        )
        return Response(body, status=status)


class LedgerView(APIView):
    def get(self, request):
        return newest_first_page(request, selectors.ledger_of(request.user.id), LedgerEntryOut)
