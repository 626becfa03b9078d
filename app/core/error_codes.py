"""The error codes every part of the API shares: the `code` of {"error": {"code", "message", "details"}}.

Each app lists its own business codes in its error_codes.py (as Saleor does). Services raise them and views
list them in the OpenAPI description from the same enum, so a code is never typed twice. StrEnum members are
strings: they serialise, compare and store as their value.
"""
from enum import StrEnum


class CommonErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    VALIDATION_ERROR = "validation_error"
    PARSE_ERROR = "parse_error"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    THROTTLED = "throttled"
    CONFLICT = "conflict"
    INVALID_CURSOR = "invalid_cursor"
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    TRY_AGAIN = "try_again"
    SERVER_ERROR = "server_error"
