from rest_framework import serializers

from app.core.fields import TextField


class FeedParamsIn(serializers.Serializer):
    updated_since = serializers.DateTimeField(required=False)
    category = TextField(max_length=50, required=False, allow_blank=True, default="")
    q = TextField(max_length=200, required=False, allow_blank=True, default="")


class SellerOut(serializers.Serializer):
    id = serializers.RegexField(r"^[0-9]+$")
    username = serializers.CharField()


class PartnerPhotoOut(serializers.Serializer):
    id = serializers.RegexField(r"^[0-9]+$")
    url = serializers.URLField(help_text="The full size (longest side at most 2000 px, JPEG).")
    thumbnail_url = serializers.URLField(help_text="The thumbnail (longest side at most 800 px, JPEG).")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    position = serializers.IntegerField()


class ProductOut(serializers.Serializer):
    """A product as partners see it. Listed and sold ones carry every field; unlisted and deleted ones only
    `id`, `status` and `updated_at` (drop them from your store)."""

    id = serializers.RegexField(r"^[0-9]+$")
    status = serializers.ChoiceField(choices=["listed", "sold", "unlisted", "deleted"])
    title = serializers.CharField(required=False)
    description = serializers.CharField(required=False)
    price = serializers.RegexField(r"^[0-9]+\.[0-9]{2}$", required=False)
    currency = serializers.CharField(required=False)
    category = serializers.CharField(required=False)
    seller = SellerOut(required=False)
    link = serializers.URLField(required=False)
    photos = PartnerPhotoOut(many=True, required=False, help_text="In display order; absolute URLs.")
    created_at = serializers.DateTimeField(required=False)
    updated_at = serializers.DateTimeField()


class ProductFeedOut(serializers.Serializer):
    results = ProductOut(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="Where to continue, also on the last page: store it and poll with `?cursor=` later."
    )
    has_more = serializers.BooleanField(help_text="Whether more changes are waiting right now.")
