from rest_framework import serializers

from app.core.fields import IdField, TextField, UserRefField
from app.core.money import CURRENCY, MoneyField

from .models import Item
from .search import SORTS

MAX_PRICE_MINOR = 1_000_000_00


class ItemIn(serializers.Serializer):
    title = TextField(max_length=200)
    description = TextField(multiline=True, max_length=5000, allow_blank=True, required=False, default="")
    price = MoneyField(max_minor=MAX_PRICE_MINOR)
    category = TextField(max_length=50, allow_blank=True, required=False, default="")


class ItemChangesIn(serializers.Serializer):
    title = TextField(max_length=200, required=False)
    description = TextField(multiline=True, max_length=5000, allow_blank=True, required=False)
    price = MoneyField(max_minor=MAX_PRICE_MINOR, required=False)
    category = TextField(max_length=50, allow_blank=True, required=False)
    status = serializers.ChoiceField(choices=[Item.LISTED, Item.UNLISTED], required=False)


class ItemOut(serializers.Serializer):
    id = IdField()
    title = serializers.CharField()
    description = serializers.CharField()
    price = MoneyField()
    currency = serializers.SerializerMethodField()
    category = serializers.CharField()
    status = serializers.CharField()
    owner = UserRefField("user_id", "owner_username")
    source_item_id = IdField(allow_null=True)  # the listing it was bought from; null for items listed here
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_currency(self, _) -> str:
        return CURRENCY


class ListingSearchIn(serializers.Serializer):
    q = TextField(max_length=200, required=False, allow_blank=True, default="")
    min_price = MoneyField(min_minor=0, max_minor=MAX_PRICE_MINOR, numbers=False, required=False)
    max_price = MoneyField(min_minor=0, max_minor=MAX_PRICE_MINOR, numbers=False, required=False)
    category = TextField(max_length=50, required=False, allow_blank=True, default="")
    seller = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    sort = serializers.ChoiceField(choices=list(SORTS), required=False)

    def validate(self, data):
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"min_price": ["min_price must not be above max_price."]})
        data["q"] = data["q"].strip()
        sort = data.setdefault("sort", "relevance" if data["q"] else "newest")
        if sort == "relevance" and not data["q"]:
            raise serializers.ValidationError({"sort": ["relevance needs a search query q."]})
        return data
