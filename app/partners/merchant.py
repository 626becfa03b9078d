"""A Google Merchant Center style product feed (TSV or RSS 2.0 XML), streamed.

Every product carries `image_link` (its first photo's full size) and up to 10 `additional_image_link`s (the
others); items without a photo are left out, since Google rejects products without an image. In TSV the
additional links are one cell, comma-separated, as Google reads that column; in XML each is an element.

Titles and descriptions are cleaned again on the way out (app.core.text.clean_text): rows saved before
they were cleaned on saving must not make the XML ill-formed for every partner. TSV cells that a
spreadsheet would run as a formula get a leading ' (app.core.text.spreadsheet_cell, as in the CSV reports).
"""
import csv
import io
from xml.sax.saxutils import escape

from app.catalog.events import listing_url
from app.catalog.images import absolute_url
from app.core.money import CURRENCY, format_money
from app.core.text import clean_text, spreadsheet_cell

from .feed import listed_items_in_id_order

COLUMNS = ["id", "title", "description", "link", "image_link", "additional_image_link", "availability", "price",
           "condition", "external_seller_id"]
MAX_ADDITIONAL_IMAGES = 10


def image_links(item):
    """(image_link, [additional_image_link, ...]): the full sizes, in display order."""
    urls = [absolute_url(photo.image) for photo in item.photos]
    return urls[0], urls[1:1 + MAX_ADDITIONAL_IMAGES]


def merchant_row(item):
    # Google's required attributes (the item has a photo: listed_items_in_id_order(with_photos=True)).
    image_link, additional = image_links(item)
    return {
        "id": str(item.id),
        "title": clean_text(item.title)[:150],
        "description": clean_text(item.description, multiline=True)[:5000] or clean_text(item.title),
        "link": listing_url(item.id),
        "image_link": image_link,
        "additional_image_link": additional,
        "availability": "in_stock",
        "price": f"{format_money(item.price)} {CURRENCY}",
        "condition": "used",  # a peer-to-peer marketplace: sellers sell what they own
        "external_seller_id": str(item.user_id),
    }


def tsv_lines():
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for item in listed_items_in_id_order(with_photos=True):
        row = merchant_row(item)
        row["additional_image_link"] = ",".join(row["additional_image_link"])
        writer.writerow({
            key: spreadsheet_cell(value.replace("\t", " ").replace("\n", " "))
            for key, value in row.items()
        })
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def xml_chunks(site_url):
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">\n<channel>\n'
        f"<title>Marketplace listings</title>\n<link>{escape(site_url)}</link>\n"
        "<description>Every item listed for sale</description>\n"
    )
    for item in listed_items_in_id_order(with_photos=True):
        fields = "".join(
            f"<g:{name}>{escape(value)}</g:{name}>"
            for name, values in merchant_row(item).items()
            for value in (values if isinstance(values, list) else [values])
        )
        yield f"<item>{fields}</item>\n"
    yield "</channel>\n</rss>\n"
