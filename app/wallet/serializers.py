from rest_framework import serializers

from app.core.fields import IdField
from app.core.money import CURRENCY, MoneyField

MAX_DEPOSIT_MINOR = 1_000_000_00


class DepositIn(serializers.Serializer):
    amount = MoneyField(max_minor=MAX_DEPOSIT_MINOR)


class DepositOut(serializers.Serializer):
    id = IdField()
    amount = MoneyField()
    balance = MoneyField(source="balance_after")


class WalletOut(serializers.Serializer):
    balance = MoneyField()
    currency = serializers.SerializerMethodField()

    def get_currency(self, _) -> str:
        return CURRENCY


class LedgerEntryOut(serializers.Serializer):
    id = IdField()
    kind = serializers.CharField()
    amount = MoneyField()
    balance_after = MoneyField()
    reference_id = IdField(allow_null=True)  # null where no purchase or sale is behind the movement
    created_at = serializers.DateTimeField()
