"""Partners' webhook endpoints: register (the signing secret is shown once), list, delete."""
from rest_framework.response import Response
from rest_framework.views import APIView

from app.core.errors import NotFound

from . import webhooks
from .auth import ApiKeyAuthentication, HasScope, PartnerKeyRateThrottle
from .webhook_serializers import WebhookEndpointCreatedOut, WebhookEndpointIn, WebhookEndpointOut


class WebhookView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope("webhooks:manage")]
    throttle_classes = [PartnerKeyRateThrottle]


class WebhookListView(WebhookView):
    def get(self, request):
        endpoints = webhooks.endpoints_of(request.auth.partner)
        return Response({"results": WebhookEndpointOut(endpoints, many=True).data})

    def post(self, request):
        params = WebhookEndpointIn(data=request.data)
        params.is_valid(raise_exception=True)
        endpoint = webhooks.create_endpoint(request.auth.partner, **params.validated_data)
        return Response(WebhookEndpointCreatedOut(endpoint).data, status=201)


class WebhookDetailView(WebhookView):
    def delete(self, request, endpoint_id):
        if not endpoint_id.isdigit() or len(endpoint_id) > 18:
            raise NotFound("No such webhook endpoint.")
        webhooks.delete_endpoint(request.auth.partner, int(endpoint_id))
        return Response(status=204)
