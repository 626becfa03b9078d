from rest_framework import serializers

from app.core.fields import IdField, user_ref
from app.core.money import MoneyField


class PurchaseIn(serializers.Serializer):
    item_id = IdField()
    expected_price = MoneyField()


class PlacedOrderOut(serializers.Serializer):
    id = IdField()
    item_id = IdField()
    source_item_id = IdField()
    price = MoneyField()
    seller = serializers.SerializerMethodField()
    balance = MoneyField(source="buyer_balance")
    created_at = serializers.DateTimeField()

    def get_seller(self, purchase):
        return user_ref(purchase.seller_id, purchase.seller_username)


class PurchaseOut(serializers.Serializer):
    id = IdField()
    item_id = IdField()
    source_item_id = IdField()
    title = serializers.CharField()
    price = MoneyField()
    seller = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_seller(self, purchase):
        return user_ref(purchase.seller_id, purchase.seller_username)


class SaleOut(serializers.Serializer):
    id = IdField()
    item_id = IdField()
    purchase_id = IdField()
    title = serializers.CharField()
    price = MoneyField()
    buyer = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_buyer(self, sale):
        return user_ref(sale.buyer_id, sale.buyer_username)
