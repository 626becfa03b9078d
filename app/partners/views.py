from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from app.catalog.views import item_id_from_url
from app.core.error_codes import CommonErrorCode
from app.core.negotiation import FirstRendererAlways
from app.core.openapi import NEEDS_LOGIN, PAGE_ERRORS, TRY_AGAIN, errors
from app.core.pagination import PageParams, page_params, query_data

from . import merchant
from .auth import ApiKeyAuthentication, HasScope, PartnerKeyRateThrottle
from .feed import feed_page, feed_record, public_product
from .serializers import FeedParamsIn, ProductFeedOut, ProductOut

# What every partner endpoint can answer besides its own errors.
PARTNER_ERRORS = errors(
    NEEDS_LOGIN, (403, CommonErrorCode.PERMISSION_DENIED), (429, CommonErrorCode.THROTTLED), TRY_AGAIN
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
        responses={200: ProductOut, **errors((404, CommonErrorCode.NOT_FOUND)), **PARTNER_ERRORS},
        tags=["partner"],
    )
    def get(self, request, item_id):
        return Response(feed_record(public_product(item_id=item_id_from_url(item_id))))


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
            (200, "text/tab-separated-values"): OpenApiResponse(
                OpenApiTypes.STR, description="Tab-separated, a header row first.",
            ),
            (200, "application/xml"): OpenApiResponse(OpenApiTypes.STR, description="RSS 2.0 with the g: namespace."),
            **errors((404, CommonErrorCode.NOT_FOUND)),  # an extension other than tsv or xml
            **PARTNER_ERRORS,
        },
        tags=["partner"],
    )
    def get(self, request, extension):
        if extension == "tsv":
            content, content_type = merchant.tsv_lines(), "text/tab-separated-values; charset=utf-8"
        else:
            content, content_type = merchant.xml_chunks(settings.SITE_URL), "application/xml; charset=utf-8"
        response = StreamingHttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'inline; filename="google.{extension}"'
        return response
