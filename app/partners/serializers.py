from rest_framework import serializers


class FeedParamsIn(serializers.Serializer):
    updated_since = serializers.DateTimeField(required=False)
    category = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    q = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
