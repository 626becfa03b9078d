"""A Google Merchant Center style product feed (TSV or RSS 2.0 XML), streamed.

Titles and descriptions are cleaned again on the way out (app.core.text.clean_text): rows saved before
they were cleaned on saving must not make the XML ill-formed for every partner. TSV cells that a
spreadsheet would run as a formula get a leading ' (app.core.text.spreadsheet_cell, as in the CSV reports).
"""
import csv
import io
from xml.sax.saxutils import escape

from app.catalog.events import listing_url
from app.core.money import CURRENCY, format_money
from app.core.text import clean_text, spreadsheet_cell

from .feed import listed_items_in_id_order

COLUMNS = ["id", "title", "description", "link", "availability", "price", "condition", "external_seller_id"]


def merchant_row(item):
    # Google's required attributes; we hold no images, so image_link is left out.
    return {
        "id": str(item.id),
        "title": clean_text(item.title)[:150],
        "description": clean_text(item.description, multiline=True)[:5000] or clean_text(item.title),
        "link": listing_url(item.id),
        "availability": "in_stock",
        "price": f"{format_money(item.price)} {CURRENCY}",
        "condition": "used",  # a peer-to-peer marketplace: sellers sell what they own
        "external_seller_id": str(item.user_id),
    }


def tsv_lines():
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for item in listed_items_in_id_order():
        writer.writerow({
            key: spreadsheet_cell(value.replace("\t", " ").replace("\n", " "))
            for key, value in merchant_row(item).items()
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
    for item in listed_items_in_id_order():
        fields = "".join(f"<g:{name}>{escape(value)}</g:{name}>" for name, value in merchant_row(item).items())
        yield f"<item>{fields}</item>\n"
    yield "</channel>\n</rss>\n"
