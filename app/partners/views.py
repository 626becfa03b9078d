from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from app.catalog.events import PUBLIC_STATUSES
from app.catalog.models import Item
from app.catalog.views import item_id_from_url
from app.core.errors import NotFound
from app.core.negotiation import FirstRendererAlways
from app.core.openapi import PAGE_ERRORS, TRY_AGAIN, errors
from app.core.pagination import PageParams, page_params, query_data
from sharding.routing import node_for_id

from . import merchant
from .auth import ApiKeyAuthentication, HasScope, PartnerKeyRateThrottle
from .feed import feed_page, feed_record
from .serializers import FeedParamsIn, ProductFeedOut, ProductOut


# What every partner endpoint can answer besides its own errors.
PARTNER_ERRORS = errors(
    (401, "not_authenticated", "authentication_failed"), (403, "permission_denied"), (429, "throttled"), TRY_AGAIN
)


class PartnerView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope("products:read")]
    throttle_classes = [PartnerKeyRateThrottle]


class ProductFeedView(PartnerView):
    """Every change to a listing, oldest first. Keep `next` (there even on the last page) and poll
    again with it to see what changed since; `has_more` says whether to ask again right away."""

    @extend_schema(
        summary="Changes to listings since a cursor (incremental sync)",
        operation_id="partner_v1_products_list",
        parameters=[FeedParamsIn, PageParams],
        responses={200: ProductFeedOut, **errors(PAGE_ERRORS), **PARTNER_ERRORS},
        tags=["partner"],
    )
    def get(self, request):
        params = FeedParamsIn(data=query_data(request))
        params.is_valid(raise_exception=True)
        page_size, cursor = page_params(request)
        rows, next_cursor, has_more = feed_page(page_size=page_size, cursor=cursor, **params.validated_data)
        return Response({"results": rows, "next": next_cursor, "has_more": has_more})


class ProductDetailView(PartnerView):
    @extend_schema(
        summary="One listed or sold product",
        operation_id="partner_v1_products_retrieve",
        responses={200: ProductOut, **errors((404, "not_found")), **PARTNER_ERRORS},
        tags=["partner"],
    )
    def get(self, request, item_id):
        item_id = item_id_from_url(item_id)
        item = Item.objects.using(node_for_id(item_id)).filter(id=item_id, status__in=PUBLIC_STATUSES).first()
        if item is None:
            raise NotFound("No such product.")
        return Response(feed_record(item))


class GoogleFeedView(PartnerView):
    """The merchant feed of every listed item, streamed as it is read from the workers."""

    content_negotiation_class = FirstRendererAlways

    @extend_schema(
        summary="Google Merchant Center feed of every listed item with a photo (TSV or RSS 2.0 XML)",
        operation_id="partner_v1_feeds_google_retrieve",
        description=(
            "Google's attributes: `id, title, description, link, image_link, additional_image_link, availability, "
            "price, condition, external_seller_id`. `image_link` is the first photo's full size, "
            "`additional_image_link` up to 10 more (in TSV one cell, comma-separated; in XML one element each). "
            "Items without a photo are left out: Google rejects a product without an image."
        ),
        parameters=[OpenApiParameter("extension", str, OpenApiParameter.PATH, enum=["tsv", "xml"])],
        responses={
            (200, "text/tab-separated-values"): OpenApiResponse(OpenApiTypes.STR, description="Tab-separated, a header row first."),
            (200, "application/xml"): OpenApiResponse(OpenApiTypes.STR, description="RSS 2.0 with the g: namespace."),
            **errors((404, "not_found")),  # an extension other than tsv or xml
            **PARTNER_ERRORS,
        },
        tags=["partner"],
    )
    def get(self, request, extension):
        if extension == "tsv":
            response = StreamingHttpResponse(merchant.tsv_lines(), content_type="text/tab-separated-values; charset=utf-8")
        else:
            response = StreamingHttpResponse(merchant.xml_chunks(settings.SITE_URL), content_type="application/xml; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="google.{extension}"'
        return response
