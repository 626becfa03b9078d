from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from app.core.fields import IdField, TextField, UserRefField
from app.core.money import CURRENCY, MoneyField

from .images import absolute_url
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


class PhotoOut(serializers.Serializer):
    """A photo: its full size (longest side at most 2,000 px) and its thumbnail (at most 800 px), both JPEG."""

    id = IdField()
    url = serializers.SerializerMethodField(help_text="The full size (longest side at most 2000 px).")
    thumbnail_url = serializers.SerializerMethodField(help_text="The thumbnail (longest side at most 800 px).")
    width = serializers.IntegerField(help_text="Of the full size, in px.")
    height = serializers.IntegerField(help_text="Of the full size, in px.")
    position = serializers.IntegerField(help_text="The display order, 0 first.")

    def get_url(self, photo) -> str:
        return absolute_url(photo.image)

    def get_thumbnail_url(self, photo) -> str:
        return absolute_url(photo.thumbnail)


class PhotoIn(serializers.Serializer):
    image = serializers.FileField(
        help_text="A JPEG, PNG or WebP image of at most 10 MB and at least 100 x 100 px.", allow_empty_file=False,
    )


class PhotoOrderIn(serializers.Serializer):
    photo_ids = serializers.ListField(
        child=IdField(), max_length=10, allow_empty=True,
        help_text="Every photo of the item, each once, in the new display order.",
    )


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
    photos = serializers.SerializerMethodField(help_text="Its photos in display order (at most 10).")
    thumbnail_url = serializers.SerializerMethodField(help_text="The first photo's thumbnail; null without photos.")

    def get_currency(self, _) -> str:
        return CURRENCY

    @extend_schema_field(PhotoOut(many=True))
    def get_photos(self, item):
        return PhotoOut(item.photos, many=True).data

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_thumbnail_url(self, item):
        cover = item.cover_photo
        return absolute_url(cover.thumbnail) if cover else None


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
