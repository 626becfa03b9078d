"""Listing photos as files: checking an upload, re-encoding it without metadata, and where the files go.

An upload is refused (400 `invalid_image`, nothing stored) unless it is a JPEG, PNG or WebP whose content is
what its type says, at most PHOTO_MAX_BYTES, at least PHOTO_MIN_SIDE px on each side, and not a decompression
bomb (a small file that claims more than PHOTO_MAX_PIXELS pixels). A good one is verified, turned upright by
its EXIF orientation, and re-encoded from its pixels alone (no EXIF, GPS, ICC or XMP survives) as a JPEG full
size (longest side at most FULL_SIDE) and thumbnail (at most THUMBNAIL_SIDE).

Files go to Django's default storage (settings.STORAGES: the local MEDIA_ROOT, or S3 through django-storages)
under random names, `photos/<2 hex>/<32 random hex>.jpg`: nothing in them tells the seller or the item.
"""
import io
import secrets
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, UnidentifiedImageError

from app.catalog.error_codes import CatalogErrorCode
from app.core.errors import ServiceError

PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_PIXELS = 60_000_000  # about 9500 x 6300: more than any phone takes
PHOTO_MIN_SIDE = 100  # Google Merchant Center refuses smaller images
FULL_SIDE = 2000
THUMBNAIL_SIDE = 800
JPEG_QUALITY = 85
PREFIX = "photos"

# What a client may say the file is, and the Pillow format its content must then be.
CONTENT_TYPES = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/pjpeg": "JPEG", "image/png": "PNG",
                 "image/webp": "WEBP"}
EXTENSIONS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
UNTYPED = {"", "application/octet-stream"}  # no claim made: the content decides
ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP"}


class InvalidImage(ServiceError):
    status, code = 400, CatalogErrorCode.INVALID_IMAGE


@dataclass(frozen=True)
class Rendition:
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class ProcessedImage:
    """An upload that passed every check, re-encoded: what add_photo stores."""

    full: Rendition
    thumbnail: Rendition


def _claimed_format(upload):
    content_type = (getattr(upload, "content_type", "") or "").split(";")[0].strip().lower()
    if content_type not in UNTYPED and content_type not in CONTENT_TYPES:
        raise InvalidImage(f"The file is sent as {content_type}: send a JPEG, PNG or WebP image.",
                           details={"image": ["Not an image type."]})
    claimed = CONTENT_TYPES.get(content_type)
    name = getattr(upload, "name", "") or ""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    by_name = EXTENSIONS.get(extension)
    if claimed and by_name and claimed != by_name:
        raise InvalidImage(f"The file is sent as {content_type} but named .{extension}.",
                           details={"image": ["Its type does not match its name."]})
    return claimed or by_name, content_type or (f".{extension}" if extension else "")


def _open(data):
    """Image.open with decompression bombs as InvalidImage, whatever Pillow's own limit is."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb() from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise InvalidImage("The file is not an image (JPEG, PNG or WebP).",
                               details={"image": ["Not an image."]}) from None
    width, height = image.size
    if width * height > PHOTO_MAX_PIXELS:
        raise _bomb(width, height)
    return image


def _bomb(width=None, height=None):
    size = f" ({width} x {height} px)" if width else ""
    return InvalidImage(
        f"The image claims too many pixels{size}, at most {PHOTO_MAX_PIXELS:,} are accepted: "
        "it looks like a decompression bomb.", details={"image": ["Too many pixels."]},
    )


def _flatten(image):
    """RGB pixels (transparency on white), nothing else: a fresh image carries no metadata of the upload."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    rgb = image.convert("RGB")
    clean = Image.new("RGB", rgb.size)
    clean.paste(rgb)
    return clean


def _encode(image, longest_side):
    copy = image.copy()
    copy.thumbnail((longest_side, longest_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    copy.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return Rendition(out.getvalue(), copy.width, copy.height)


def process_image(upload) -> ProcessedImage:
    """Check an uploaded file (an UploadedFile, or any file object with `size`, `name`, `content_type`) and
    make its two renditions. InvalidImage says what is wrong."""
    size = getattr(upload, "size", None)
    if size is not None and size > PHOTO_MAX_BYTES:
        raise InvalidImage(f"The file is {size:,} bytes; at most {PHOTO_MAX_BYTES:,} (10 MB) are accepted.",
                           details={"image": ["Too large."]})
    claimed, said = _claimed_format(upload)
    upload.seek(0)
    data = upload.read(PHOTO_MAX_BYTES + 1)
    if len(data) > PHOTO_MAX_BYTES:
        raise InvalidImage(f"The file is over {PHOTO_MAX_BYTES:,} bytes (10 MB).", details={"image": ["Too large."]})
    if not data:
        raise InvalidImage("The file is empty.", details={"image": ["Empty."]})
    image = _open(data)
    if image.format not in ALLOWED_FORMATS:
        raise InvalidImage(f"The file is a {image.format} image: only JPEG, PNG and WebP are accepted.",
                           details={"image": ["Not a JPEG, PNG or WebP."]})
    if claimed and claimed != image.format:
        raise InvalidImage(f"The file is sent as {said} but its content is a {image.format} image.",
                           details={"image": ["Its content does not match its type."]})
    try:
        image.verify()  # structure and checksums; the image must be opened again afterwards
        image = _open(data)
        if image.format == "JPEG":
            image.draft("RGB", (FULL_SIDE, FULL_SIDE))  # decode at a reduced scale when it is much larger
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
        upright = ImageOps.exif_transpose(image)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(*image.size) from None
    except Exception:  # noqa: BLE001 - a truncated or corrupt file fails in many ways inside the decoders
        raise InvalidImage("The file is damaged: it could not be read as an image.",
                           details={"image": ["Damaged."]}) from None
    if min(upright.size) < PHOTO_MIN_SIDE:
        raise InvalidImage(
            f"The image is {upright.width} x {upright.height} px; it must be at least "
            f"{PHOTO_MIN_SIDE} x {PHOTO_MIN_SIDE} px.", details={"image": ["Too small."]},
        )
    flat = _flatten(upright)
    return ProcessedImage(full=_encode(flat, FULL_SIDE), thumbnail=_encode(flat, THUMBNAIL_SIDE))


# --------------------------------------------------------------------------- storage


def new_name():
    """A fresh, unguessable file name (128 random bits) that tells nothing of the seller or the item."""
    token = secrets.token_hex(16)
    return f"{PREFIX}/{token[:2]}/{token}.jpg"


def save_rendition(rendition: Rendition) -> str:
    """Store the bytes under a new name; the name the storage chose."""
    return default_storage.save(new_name(), ContentFile(rendition.data))


def copy_file(name: str) -> str:
    """A copy of a stored file under a new name (a purchase gives the buyer's item its own files)."""
    with default_storage.open(name, "rb") as source:
        data = source.read()
    return default_storage.save(new_name(), ContentFile(data))


def delete_files(names) -> None:
    """Delete stored files; one already gone is no error (the clean-up may have been first)."""
    for name in names:
        if name:
            default_storage.delete(name)


def storage_url(name: str) -> str:
    return default_storage.url(name)


def absolute_url(name: str) -> str:
    """The file's URL for partners and feeds: the storage's own when it is absolute (S3), else on SITE_URL."""
    url = default_storage.url(name)
    return url if url.startswith(("http://", "https://")) else f"{settings.SITE_URL}{url}"
