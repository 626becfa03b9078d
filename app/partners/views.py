from django.conf import settings
from django.http import StreamingHttpResponse
from rest_framework.response import Response
from rest_framework.views import APIView

from app.catalog.events import PUBLIC_STATUSES
from app.catalog.models import Item
from app.catalog.views import item_id_from_url
from app.core.errors import NotFound
from app.core.pagination import page_params
from sharding.routing import node_for_id

from . import merchant
from .auth import ApiKeyAuthentication, HasScope, PartnerKeyRateThrottle
from .feed import feed_page, feed_record
from .serializers import FeedParamsIn


class PartnerView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope("products:read")]
    throttle_classes = [PartnerKeyRateThrottle]


class ProductFeedView(PartnerView):
    """Every change to a listing, oldest first. Keep `next` (there even on the last page) and poll
    again with it to see what changed since; `has_more` says whether to ask again right away."""

    def get(self, request):
        params = FeedParamsIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        page_size, cursor = page_params(request)
        rows, next_cursor, has_more = feed_page(page_size=page_size, cursor=cursor, **params.validated_data)
        return Response({"results": rows, "next": next_cursor, "has_more": has_more})


class ProductDetailView(PartnerView):
    def get(self, request, item_id):
        item_id = item_id_from_url(item_id)
        item = Item.objects.using(node_for_id(item_id)).filter(id=item_id, status__in=PUBLIC_STATUSES).first()
        if item is None:
            raise NotFound("No such product.")
        return Response(feed_record(item))


class GoogleFeedView(PartnerView):
    """The merchant feed of every listed item, streamed as it is read from the workers."""

    def get(self, request, extension):
        if extension == "tsv":
            response = StreamingHttpResponse(merchant.tsv_lines(), content_type="text/tab-separated-values; charset=utf-8")
        else:
            response = StreamingHttpResponse(merchant.xml_chunks(settings.SITE_URL), content_type="application/xml; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="google.{extension}"'
        return response
