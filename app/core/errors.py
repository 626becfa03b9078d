"""One error shape for the whole API: {"error": {"code", "message", "details"}}."""
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from app.core.error_codes import CommonErrorCode
from sharding.breaker import note_failure, retry_after_seconds, unavailable_nodes
from sharding.errors import InvalidCursorError
from sharding.transactions import LockTimeoutError, ShardMovedError


class ServiceError(Exception):
    """A business rule said no. Services raise it; the API turns it into its status and code."""

    status = 400
    code: str = CommonErrorCode.BAD_REQUEST

    def __init__(self, message, *, code=None, status=None, details=None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}

    def as_body(self):
        return error_body(self.code, self.message, self.details)


class NotFound(ServiceError):
    status, code = 404, CommonErrorCode.NOT_FOUND


class Conflict(ServiceError):
    status, code = 409, CommonErrorCode.CONFLICT


def error_body(code, message, details=None):
    return {"error": {"code": code, "message": message, "details": details or {}}}


# DRF exceptions by class, most specific first: (status, code, message or None for the exception's own).
_DRF_CODES = [
    (exceptions.ParseError, CommonErrorCode.PARSE_ERROR, "The request body is not valid JSON."),
    (exceptions.ValidationError, CommonErrorCode.VALIDATION_ERROR, "The request has invalid fields."),
    (exceptions.NotAuthenticated, CommonErrorCode.NOT_AUTHENTICATED, "Authentication credentials were not provided."),
    (exceptions.AuthenticationFailed, CommonErrorCode.AUTHENTICATION_FAILED, None),
    (exceptions.PermissionDenied, CommonErrorCode.PERMISSION_DENIED, None),
    (exceptions.NotFound, CommonErrorCode.NOT_FOUND, "Not found."),
    (exceptions.MethodNotAllowed, CommonErrorCode.METHOD_NOT_ALLOWED, None),
    (exceptions.NotAcceptable, CommonErrorCode.NOT_ACCEPTABLE, None),
    (exceptions.UnsupportedMediaType, CommonErrorCode.UNSUPPORTED_MEDIA_TYPE, None),
    (exceptions.Throttled, CommonErrorCode.THROTTLED, None),
]


def error_response_for(exc):
    """(status, body, headers) of the errors the API and the pages answer alike, or None for any other.

    A business rule (ServiceError), a page link whose cursor is not ours, a node that is down, unreachable or too
    slow (never a 500; a connection-level failure also opens its breaker), a row lock not granted in time, a shard
    that moved while the operation ran.
    """
    if isinstance(exc, ServiceError):
        return exc.status, exc.as_body(), {}
    if isinstance(exc, InvalidCursorError):
        return 400, error_body(CommonErrorCode.INVALID_CURSOR, str(exc)), {}
    note_failure(exc)
    nodes = unavailable_nodes(exc)
    if nodes is not None:
        body = error_body(CommonErrorCode.TRY_AGAIN, "Some of our data nodes did not answer in time; try again.",
                          {"nodes": nodes})
        return 503, body, {"Retry-After": str(retry_after_seconds())}
    if isinstance(exc, (LockTimeoutError, ShardMovedError)):
        return 503, error_body(CommonErrorCode.TRY_AGAIN, "The resource is busy; try again."), {"Retry-After": "1"}
    return None


def exception_handler(exc, context):
    known = error_response_for(exc)
    if known is not None:
        status, body, headers = known
        return Response(body, status=status, headers=headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling (and logging) takes over
    code, message = next(
        ((code, message) for exc_class, code, message in _DRF_CODES if isinstance(exc, exc_class)), ("error", None)
    )
    details = exc.detail if isinstance(exc, exceptions.ValidationError) else {}
    if isinstance(details, list):
        details = {"non_field_errors": details}
    response.data = error_body(code, message or str(exc.detail), details)
    return response


def _wants_json(request):
    return request.path.startswith(("/api/", "/health"))


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body(CommonErrorCode.NOT_FOUND, "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _wants_json(request):
        return JsonResponse(error_body(CommonErrorCode.SERVER_ERROR, "Something went wrong on our side."), status=500)
    return defaults.server_error(request)
