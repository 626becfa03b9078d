"""An example partner store: keeps a local copy of the marketplace's listings in SQLite, incrementally.

    python examples/partner_sync.py --base-url http://127.0.0.1:8000 --api-key mk_... \\
        [--db partner.sqlite3] [--watch 30]

Each run asks the product feed for the changes since the cursor it stored last
time, applies them in order (listed -> upsert, anything else -> delete) and
stores the new cursor in the same SQLite transaction, so a crash never loses
or repeats a change. (SQLite here plays the partner's own store; the
marketplace itself runs on PostgreSQL.) Only the standard library is needed.
"""
import argparse
import json
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request

SCHEMA = """
CREATE TABLE IF NOT EXISTS product (
  id TEXT PRIMARY KEY, title TEXT, description TEXT, price TEXT, currency TEXT,
  category TEXT, seller_id TEXT, seller_username TEXT, link TEXT, updated_at TEXT
);
CREATE TABLE IF NOT EXISTS sync_state (name TEXT PRIMARY KEY, value TEXT);
"""


def fetch(base_url, api_key, cursor, page_size):
    query = urllib.parse.urlencode({"page_size": page_size, **({"cursor": cursor} if cursor else {})})
    request = urllib.request.Request(
        f"{base_url}/api/partner/v1/products?{query}", headers={"Authorization": f"Api-Key {api_key}"}
    )
    while True:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code != 429:
                raise
            time.sleep(int(error.headers.get("Retry-After", "5")))  # rate limited: wait as told


def apply(db, records):
    for record in records:
        if record["status"] == "listed":
            db.execute(
                "INSERT OR REPLACE INTO product VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record["id"], record["title"], record["description"], record["price"], record["currency"],
                 record["category"], record["seller"]["id"], record["seller"]["username"], record["link"],
                 record["updated_at"]),
            )
        else:  # sold, unlisted or deleted: no longer for sale
            db.execute("DELETE FROM product WHERE id = ?", (record["id"],))


def sync_once(db, base_url, api_key, page_size=100):
    """Apply every change since the stored cursor; returns how many changes were applied."""
    applied = 0
    while True:
        row = db.execute("SELECT value FROM sync_state WHERE name = 'cursor'").fetchone()
        page = fetch(base_url, api_key, row[0] if row else None, page_size)
        with db:  # the changes and the cursor after them commit together
            apply(db, page["results"])
            if page["next"]:
                db.execute("INSERT OR REPLACE INTO sync_state VALUES ('cursor', ?)", (page["next"],))
        applied += len(page["results"])
        if not page["has_more"]:
            return applied


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--db", default="partner.sqlite3")
    parser.add_argument("--watch", type=float, default=0, help="keep polling every N seconds")
    args = parser.parse_args()
    db = sqlite3.connect(args.db)
    db.executescript(SCHEMA)
    while True:
        applied = sync_once(db, args.base_url.rstrip("/"), args.api_key)
        (count,) = db.execute("SELECT count(*) FROM product").fetchone()
        print(f"applied {applied} changes; {count} products for sale")
        if not args.watch:
            return
        time.sleep(args.watch)


if __name__ == "__main__":
    main()
