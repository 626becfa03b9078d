from rest_framework import serializers

from app.core.errors import ServiceError

from .models import EVENTS
from .webhooks.destinations import check_endpoint_url


class WebhookEndpointIn(serializers.Serializer):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENTS), allow_empty=False, min_length=1, max_length=len(EVENTS) * 2,
    )

    def validate_url(self, value):
        try:
            return check_endpoint_url(value)
        except ServiceError as exc:
            raise serializers.ValidationError(exc.message) from None


class WebhookEndpointOut(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.CharField())
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    disabled_at = serializers.DateTimeField(allow_null=True)


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret = serializers.CharField(help_text="Signs every delivery (HMAC-SHA256); shown only in this response.")
