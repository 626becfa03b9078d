from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from app.catalog.error_codes import CatalogErrorCode
from app.core.error_codes import CommonErrorCode
from app.core.errors import NotFound, ServiceError
from app.core.fields import ID_PATTERN
from app.core.openapi import BAD_BODY, NEEDS_LOGIN, PAGE_ERRORS, TRY_AGAIN, errors, paginated, partial_page
from app.core.pagination import PageParams, newest_first_page, page_params, query_data
from app.core.throttling import ThrottledAfterValidation
from sharding.errors import InvalidIdError
from sharding.page_tokens import decode_cursor
from sharding.placement import parse_routable_id

from . import selectors, services
from .images import PHOTO_MAX_BYTES
from .search import SORTS, ListingQuery, search_listings
from .selectors import attach_photos
from .serializers import ItemChangesIn, ItemIn, ItemOut, ListingSearchIn, PhotoIn, PhotoOrderIn, PhotoOut


def item_id_from_url(raw):
    try:
        return parse_routable_id(raw)
    except InvalidIdError:
        raise NotFound("No such item.") from None


# Any other string is a 404, like an id that names no item.
NOT_FOUND = (404, CommonErrorCode.NOT_FOUND)
ITEM_SOLD = (409, CatalogErrorCode.ITEM_SOLD)
ITEM_ID = OpenApiParameter("item_id", str, OpenApiParameter.PATH, pattern=ID_PATTERN, description="The item's id.")


class ItemListView(APIView):
    throttle_scopes = {"POST": "listing"}  # creating listings is limited; reading my inventory is not
    @extend_schema(
        summary="My inventory (listed, unlisted and sold items), newest first",
        operation_id="items_list",  # APIViews get *_retrieve, and GET items/{item_id} is items_retrieve
        parameters=[PageParams],
        responses={200: paginated(ItemOut), **errors(PAGE_ERRORS, NEEDS_LOGIN)},
    )
    def get(self, request):
        return newest_first_page(request, selectors.inventory_of(request.user.id), ItemOut, prepare=attach_photos)

    @extend_schema(
        summary="List an item for sale",
        request=ItemIn,
        responses={201: ItemOut, **errors(BAD_BODY, NEEDS_LOGIN)},
        description="`price` from 0.01 to 1000000.00, with at most two decimals.",
    )
    def post(self, request):
        params = ItemIn(data=request.data)
        params.is_valid(raise_exception=True)
        item = services.create_item(owner=request.user, **params.validated_data)
        return Response(ItemOut(item).data, status=201)


class ItemDetailView(APIView):
    def get_permissions(self):
        # Anyone may look at a listed item; changing one needs a login.
        return [AllowAny()] if self.request.method == "GET" else [IsAuthenticated()]

    @extend_schema(
        summary="An item: anyone sees a listed one, only its owner an unlisted or sold one",
        parameters=[ITEM_ID],
        responses={
            200: ItemOut, **errors((401, CommonErrorCode.AUTHENTICATION_FAILED), (404, CommonErrorCode.NOT_FOUND)),
        },
    )
    def get(self, request, item_id):
        viewer = request.user.id if request.user.is_authenticated else None
        return Response(ItemOut(selectors.visible_item(item_id_from_url(item_id), viewer)).data)

    @extend_schema(
        summary="Change my item (or list or unlist it with `status`)",
        parameters=[ITEM_ID],
        request=ItemChangesIn,
        responses={
            200: ItemOut,
            **errors(BAD_BODY, NEEDS_LOGIN, NOT_FOUND, ITEM_SOLD, TRY_AGAIN),
        },
    )
    def patch(self, request, item_id):
        params = ItemChangesIn(data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        item = services.update_item(
            owner_id=request.user.id, item_id=item_id_from_url(item_id), changes=params.validated_data,
        )
        return Response(ItemOut(item).data)

    @extend_schema(
        summary="Delete my item",
        parameters=[ITEM_ID],
        responses={204: None, **errors(NEEDS_LOGIN, NOT_FOUND, ITEM_SOLD, TRY_AGAIN)},
    )
    def delete(self, request, item_id):
        services.delete_item(owner_id=request.user.id, item_id=item_id_from_url(item_id))
        return Response(status=204)


class ListingSearchView(ThrottledAfterValidation, APIView):
    """Listings of other users, across every worker. Anonymous visitors may search too.

    A search counts (in its limits) once its parameters and cursor are good: a refused one makes no query at all.
    """

    permission_classes = [AllowAny]
    throttle_scope = "search"

    @extend_schema(
        summary="Search other users' listings on every worker",
        operation_id="listings_list",
        parameters=[ListingSearchIn, PageParams],
        responses={
            200: partial_page(ItemOut),
            **errors(PAGE_ERRORS, (401, CommonErrorCode.AUTHENTICATION_FAILED), TRY_AGAIN),
        },
        description=(
            "Full-text search of titles and descriptions, with typo-tolerant title matching. `sort`: `relevance` "
            "(the default with `q`, which it needs), `newest` (the default otherwise), `price`, `-price`. "
            "`min_price` must not be above `max_price`. A worker that is down or does not answer in time is left "
            "out: the page then says `partial: true` and names it in `unavailable_nodes`.\n\n"
            "Rules between the parameters, which OpenAPI cannot express (a 400 `validation_error` otherwise): "
            "`min_price` is not above `max_price`, and `sort=relevance` needs a `q` with some text."
        ),
    )
    def get(self, request):
        params = ListingSearchIn(data=query_data(request))
        params.is_valid(raise_exception=True)
        page_size, cursor = page_params(request)
        found = params.validated_data
        if cursor is not None:
            decode_cursor(cursor, types=SORTS[found["sort"]].types)  # InvalidCursorError: a 400
        self.throttle(request)
        query = ListingQuery.from_params(found, viewer_id=request.user.id if request.user.is_authenticated else None)
        page = search_listings(query, page_size=page_size, cursor=cursor, allow_partial=True)
        return Response({
            "results": ItemOut(attach_photos(page.rows), many=True).data, "next": page.next_cursor,
            "partial": bool(page.failed), "unavailable_nodes": page.failed,
        })


# --------------------------------------------------------------------------- photos

PHOTO_ID = OpenApiParameter("photo_id", str, OpenApiParameter.PATH, pattern=ID_PATTERN, description="The photo's id.")
# A request body over this is refused before it is read (413): the file's limit plus room for the multipart frame.
PHOTO_REQUEST_MAX_BYTES = PHOTO_MAX_BYTES + 256 * 1024
PHOTO_CHANGE_ERRORS = (NEEDS_LOGIN, NOT_FOUND, ITEM_SOLD, TRY_AGAIN)


class PhotoListView(APIView):
    parser_classes = [MultiPartParser]
    throttle_scopes = {"POST": "photo"}

    @extend_schema(
        summary="Add a photo to my item (multipart, field `image`)",
        operation_id="items_photos_create",
        parameters=[ITEM_ID],
        request={"multipart/form-data": PhotoIn},
        responses={
            201: PhotoOut,
            **errors(
                (400, CatalogErrorCode.INVALID_IMAGE, CatalogErrorCode.TOO_MANY_PHOTOS,
                 CommonErrorCode.VALIDATION_ERROR, CommonErrorCode.PARSE_ERROR),
                *PHOTO_CHANGE_ERRORS, (413, CatalogErrorCode.REQUEST_TOO_LARGE),
                (415, CommonErrorCode.UNSUPPORTED_MEDIA_TYPE),
            ),
        },
        description=(
            "A JPEG, PNG or WebP image (its content must be what its type says) of at most 10 MB, at least "
            "100 x 100 px, and not a decompression bomb; anything else is a 400 `invalid_image` whose message says "
            "what is wrong, and nothing is stored. An item has at most 10 photos (an 11th: 400 `too_many_photos`). "
            "The photo is verified, turned upright by its EXIF orientation, stripped of all metadata (EXIF, GPS) "
            "and re-encoded as a JPEG full size (longest side at most 2000 px) and thumbnail (at most 800 px); it "
            "becomes the item's last photo. A body over 10.25 MB is refused before it is read (413). A sold "
            "item's photos can't be changed (409 `item_sold`).\n\n"
            "A rule OpenAPI cannot express: the file must be a real image of that kind."
        ),
    )
    def post(self, request, item_id):
        item = item_id_from_url(item_id)
        if int(request.META.get("CONTENT_LENGTH") or 0) > PHOTO_REQUEST_MAX_BYTES:
            raise ServiceError(f"The request is over {PHOTO_REQUEST_MAX_BYTES:,} bytes: a photo may be 10 MB.",
                               code=CatalogErrorCode.REQUEST_TOO_LARGE, status=413)
        services.check_photos_changeable(owner_id=request.user.id, item_id=item)  # 404 / 409 before any reading
        params = PhotoIn(data=request.data)
        params.is_valid(raise_exception=True)
        photo = services.upload_photo(owner_id=request.user.id, item_id=item, upload=params.validated_data["image"])
        return Response(PhotoOut(photo).data, status=201)


class PhotoDetailView(APIView):
    @extend_schema(
        summary="Delete a photo of my item (and its files)",
        operation_id="items_photos_destroy",
        parameters=[ITEM_ID, PHOTO_ID],
        responses={204: None, **errors(*PHOTO_CHANGE_ERRORS)},
    )
    def delete(self, request, item_id, photo_id):
        try:
            photo = parse_routable_id(photo_id)
        except InvalidIdError:
            raise NotFound("No such photo.") from None
        services.delete_photo(owner_id=request.user.id, item_id=item_id_from_url(item_id), photo_id=photo)
        return Response(status=204)


class PhotoOrderView(APIView):
    @extend_schema(
        summary="Set the display order of my item's photos",
        operation_id="items_photos_order_partial_update",
        parameters=[ITEM_ID],
        request=PhotoOrderIn,
        responses={200: PhotoOut(many=True), **errors(BAD_BODY, *PHOTO_CHANGE_ERRORS)},
        description=(
            "`photo_ids` names every photo of the item once, first to last; anything else is a 400 "
            "`validation_error`. Answers the photos in their new order.\n\n"
            "A rule OpenAPI cannot express: the ids must be exactly those of the item's photos."
        ),
    )
    def patch(self, request, item_id):
        item = item_id_from_url(item_id)
        params = PhotoOrderIn(data=request.data)
        params.is_valid(raise_exception=True)
        photos = services.reorder_photos(owner_id=request.user.id, item_id=item,
                                         photo_ids=params.validated_data["photo_ids"])
        return Response(PhotoOut(photos, many=True).data)
