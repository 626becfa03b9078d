"""Image files for the photo tests, made with Pillow: good ones, and each kind of bad one."""
import io
import struct
import zlib

from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def jpeg(size=(3000, 2000), colour=(200, 30, 30), orientation=None, gps=True):
    """A JPEG as a phone takes it: EXIF with a GPS position (and an orientation, when given)."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    if orientation:
        exif[ORIENTATION] = orientation
    if gps:
        gps_ifd = exif.get_ifd(GPS_IFD)
        gps_ifd[1], gps_ifd[2] = "N", (52.0, 31.0, 12.0)
        gps_ifd[3], gps_ifd[4] = "E", (13.0, 24.0, 36.0)
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def png(size=(400, 300), colour=(30, 120, 200)):
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def webp(size=(640, 480), colour=(30, 160, 60)):
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "WEBP")
    return out.getvalue()


def bomb(width=9_000, height=8_000):
    """A PNG of a few hundred bytes whose header claims width x height pixels (a decompression bomb): 72 million
    by default, under Pillow's own limit (about 89 million), over ours."""
    data = bytearray(png((100, 100)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def has_gps(data):
    image = Image.open(io.BytesIO(data))
    return bool(image.getexif().get_ifd(GPS_IFD)) or "exif" in image.info


def size_of(data):
    return Image.open(io.BytesIO(data)).size


def give_photo(item):
    """Add a small photo to an item through the services (the Google feeds list only items with one)."""
    from django.core.files.base import ContentFile

    from app.catalog.images import process_image
    from app.catalog.services import add_photo

    return add_photo(owner_id=item.user_id, item_id=item.id,
                     image=process_image(ContentFile(png((120, 120)), name="p.png")))
