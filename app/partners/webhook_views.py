"""Partners' webhook endpoints: register (the signing secret is shown once), list, delete."""
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework.response import Response
from rest_framework.views import APIView

from app.core.error_codes import CommonErrorCode
from app.core.errors import NotFound
from app.core.openapi import BAD_BODY, errors

from .auth import ApiKeyAuthentication, HasScope, PartnerKeyRateThrottle
from .views import PARTNER_ERRORS
from .webhook_serializers import WebhookEndpointCreatedOut, WebhookEndpointIn, WebhookEndpointOut
from .webhooks.services import create_endpoint, delete_endpoint, endpoints_of


class WebhookView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope("webhooks:manage")]
    throttle_classes = [PartnerKeyRateThrottle]


class WebhookListView(WebhookView):
    @extend_schema(
        summary="My webhook endpoints (without their secrets)",
        operation_id="partner_v1_webhooks_list",
        responses={
            200: inline_serializer("WebhookEndpointList", {"results": WebhookEndpointOut(many=True)}),
            **PARTNER_ERRORS,
        },
        tags=["partner"],
    )
    def get(self, request):
        endpoints = endpoints_of(partner=request.auth.partner)
        return Response({"results": WebhookEndpointOut(endpoints, many=True).data})

    @extend_schema(
        summary="Register a webhook endpoint; its signing secret is in this response only",
        operation_id="partner_v1_webhooks_create",
        request=WebhookEndpointIn,
        responses={201: WebhookEndpointCreatedOut, **errors(BAD_BODY), **PARTNER_ERRORS},
        tags=["partner"],
    )
    def post(self, request):
        params = WebhookEndpointIn(data=request.data)
        params.is_valid(raise_exception=True)
        endpoint = create_endpoint(partner=request.auth.partner, **params.validated_data)
        return Response(WebhookEndpointCreatedOut(endpoint).data, status=201)


class WebhookDetailView(WebhookView):
    @extend_schema(
        summary="Delete one of my webhook endpoints",
        operation_id="partner_v1_webhooks_destroy",
        responses={204: None, **errors((404, CommonErrorCode.NOT_FOUND)), **PARTNER_ERRORS},
        tags=["partner"],
    )
    def delete(self, request, endpoint_id):
        if not endpoint_id.isdigit() or len(endpoint_id) > 18:
            raise NotFound("No such webhook endpoint.")
        delete_endpoint(partner=request.auth.partner, endpoint_id=int(endpoint_id))
        return Response(status=204)
