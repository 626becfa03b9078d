from rest_framework import serializers

from app.core.fields import IdField, UserRefField
from app.core.money import MoneyField


class PurchaseIn(serializers.Serializer):
    item_id = IdField(not_found="No such item.")
    expected_price = MoneyField()


class PlacedOrderOut(serializers.Serializer):
    id = IdField()
    item_id = IdField()
    source_item_id = IdField()
    price = MoneyField()
    seller = UserRefField("seller_id", "seller_username")
    balance = MoneyField(source="buyer_balance")
    created_at = serializers.DateTimeField()


class PurchaseOut(serializers.Serializer):
    id = IdField()
    item_id = IdField()
    source_item_id = IdField()
    title = serializers.CharField()
    price = MoneyField()
    seller = UserRefField("seller_id", "seller_username")
    created_at = serializers.DateTimeField()


class SaleOut(serializers.Serializer):
    id = IdField()
    item_id = IdField()
    purchase_id = IdField()
    title = serializers.CharField()
    price = MoneyField()
    buyer = UserRefField("buyer_id", "buyer_username")
    created_at = serializers.DateTimeField()
