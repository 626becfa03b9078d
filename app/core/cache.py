"""The shared cache (rate-limit counts): Django's DatabaseCache on the coordinator, with set() in one round trip.

Django's set() counts the table's rows (to cull), then selects, updates or inserts, and commits: five round trips
to the coordinator, every node's neighbour, on every rate-limited request. Here set() is one upsert, and culling is
left to `manage.py maintenance` (cull_cache, every few seconds), which deletes expired rows first and, only if the
table still holds more than MAX_ENTRIES, the rows that expire soonest (for rate limits: those with the least
history left), never arbitrary live ones. Values are stored exactly as Django stores them, so get() and the other
operations are Django's own.

Keys made from user input (the login limit counts per username) may hold a NUL, which PostgreSQL text, and so
this table, cannot store (a 500 at the first such request): make_key escapes NUL and the backslash, so distinct
keys stay distinct.
"""
import base64
import pickle
from datetime import datetime, timezone

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends import db
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.db import DatabaseError, connections, router
from django.utils.timezone import now as tz_now


def make_key(key, key_prefix, version):
    key = str(key).replace("\\", "\\\\").replace("\x00", "\\0")
    return f"{key_prefix}:{version}:{key}"


class DatabaseCache(db.DatabaseCache):
    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        if timeout is None:
            expires = datetime.max
        else:
            expires = datetime.fromtimestamp(timeout, tz=timezone.utc if settings.USE_TZ else None)
        expires = expires.replace(microsecond=0)
        alias = router.db_for_write(self.cache_model_class)
        connection = connections[alias]
        quote = connection.ops.quote_name
        value = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {quote(self._table)} (cache_key, value, expires) VALUES (%s, %s, %s) "
                    "ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires",
                    [key, value, connection.ops.adapt_datetimefield_value(expires)],
                )
        except DatabaseError:
            return False  # as Django's: a failed cache write is not the request's failure
        return True

    def cull(self):
        """Delete expired rows, then, above MAX_ENTRIES, the rows that expire soonest. Returns rows deleted."""
        alias = router.db_for_write(self.cache_model_class)
        connection = connections[alias]
        table = connection.ops.quote_name(self._table)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE expires < %s",
                           [connection.ops.adapt_datetimefield_value(tz_now())])
            deleted = cursor.rowcount
            cursor.execute(f"SELECT count(*) FROM {table}")
            excess = cursor.fetchone()[0] - self._max_entries
            if excess > 0:
                cursor.execute(f"DELETE FROM {table} WHERE cache_key IN "
                               f"(SELECT cache_key FROM {table} ORDER BY expires LIMIT %s)", [excess])
                deleted += cursor.rowcount
        return deleted


def cull_cache():
    """A maintenance task: keep the shared cache table small (see the module)."""
    backend = caches["default"]
    if isinstance(backend, DatabaseCache):
        backend.cull()
