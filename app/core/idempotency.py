"""Idempotent writes: the same Idempotency-Key returns the first response, once the work is done.

The key is claimed with INSERT ... ON CONFLICT DO NOTHING inside the
transaction that does the work: a concurrent request with the same key waits
on the unique index until the first commits, then replays its response.
Business errors (a ServiceError) are stored too, while their changes are
rolled back to a savepoint; any other error rolls everything back, key included.
"""
import hashlib
import json
import re
from datetime import timedelta
from typing import NamedTuple

from django.db import transaction
from django.utils import timezone

from app.core.error_codes import CommonErrorCode
from sharding.placement import all_workers, node_for_user
from sharding.transactions import atomic_on_nodes

from .errors import ServiceError
from .models import IdempotencyKey

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
KEEP_FOR = timedelta(hours=48)


class MissingKey(ServiceError):
    status, code = 400, CommonErrorCode.IDEMPOTENCY_KEY_REQUIRED


class KeyReused(ServiceError):
    status, code = 422, CommonErrorCode.IDEMPOTENCY_KEY_REUSED


def idempotency_key_from(request):
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise MissingKey("This request needs an Idempotency-Key header (any unique string of up to 255 characters).")
    if not KEY_PATTERN.match(key):
        raise MissingKey("The Idempotency-Key must be 1 to 255 printable ASCII characters without spaces.")
    return key


def fingerprint(operation, params):
    canonical = json.dumps([operation, params], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _claim(alias, user_id, key, request_hash):
    IdempotencyKey.objects.using(alias).bulk_create(
        [IdempotencyKey(user_id=user_id, key=key, request_hash=request_hash)], ignore_conflicts=True
    )
    record = IdempotencyKey.objects.using(alias).get(user_id=user_id, key=key)
    if record.request_hash != request_hash:
        raise KeyReused("This Idempotency-Key was already used with different parameters; use a new key.")
    return record


class IdempotentResult(NamedTuple):
    status: int
    body: dict


def run_idempotent(*, user_id, key, request_hash, nodes, operation, status=201) -> IdempotentResult:
    """Run operation() once per (user, key) atomically over `nodes`; returns (status, body).

    operation() does the work and returns the JSON body of the response; it
    runs inside a transaction on every node in `nodes` and the user's own.
    """
    home = node_for_user(user_id)
    participants = {home, *nodes}
    with atomic_on_nodes(participants):
        record = _claim(home, user_id, key, request_hash)
        if record.status_code is not None:
            return IdempotentResult(record.status_code, record.response)
        # Savepoints are rolled back on a business error and otherwise left for
        # COMMIT to release (a RELEASE per node would be a round trip each).
        savepoints = {alias: transaction.savepoint(using=alias) for alias in participants}
        try:
            result = IdempotentResult(status, operation())
        except ServiceError as error:
            for alias, savepoint in savepoints.items():
                transaction.savepoint_rollback(savepoint, using=alias)
            result = IdempotentResult(error.status, error.as_body())
        record.status_code, record.response = result
        record.save(using=home, update_fields=["status_code", "response"])
    return result


def purge_expired_keys():
    """Forget keys older than KEEP_FOR on every worker (a maintenance task)."""
    cutoff = timezone.now() - KEEP_FOR
    for alias in all_workers():
        IdempotencyKey.objects.using(alias).filter(created_at__lt=cutoff).delete()
