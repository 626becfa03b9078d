"""One error shape for the whole API: {"error": {"code", "message", "details"}}."""
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from sharding.breaker import note_failure, retry_after_seconds, unavailable_nodes
from sharding.errors import InvalidCursorError
from sharding.transactions import LockTimeoutError, ShardMovedError


class ServiceError(Exception):
    """A business rule said no. Services raise it; the API turns it into its status and code."""

    status = 400
    code = "bad_request"

    def __init__(self, message, *, code=None, status=None, details=None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}

    def as_body(self):
        return error_body(self.code, self.message, self.details)


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class PaymentRequired(ServiceError):
    status, code = 402, "insufficient_funds"


def error_body(code, message, details=None):
    return {"error": {"code": code, "message": message, "details": details or {}}}


# DRF exceptions by class, most specific first: (status, code, message or None for the exception's own).
_DRF_CODES = [
    (exceptions.ParseError, "parse_error", "The request body is not valid JSON."),
    (exceptions.ValidationError, "validation_error", "The request has invalid fields."),
    (exceptions.NotAuthenticated, "not_authenticated", "Authentication credentials were not provided."),
    (exceptions.AuthenticationFailed, "authentication_failed", None),
    (exceptions.PermissionDenied, "permission_denied", None),
    (exceptions.NotFound, "not_found", "Not found."),
    (exceptions.MethodNotAllowed, "method_not_allowed", None),
    (exceptions.NotAcceptable, "not_acceptable", None),
    (exceptions.UnsupportedMediaType, "unsupported_media_type", None),
    (exceptions.Throttled, "throttled", None),
]


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response(exc.as_body(), status=exc.status)
    if isinstance(exc, InvalidCursorError):
        return Response(error_body("invalid_cursor", str(exc)), status=400)
    note_failure(exc)
    nodes = unavailable_nodes(exc)
    if nodes is not None:  # a node is down, unreachable or too slow: never a 500
        return Response(
            error_body("try_again", "Some of our data nodes did not answer in time; try again.", {"nodes": nodes}),
            status=503, headers={"Retry-After": str(retry_after_seconds())},
        )
    if isinstance(exc, (LockTimeoutError, ShardMovedError)):
        return Response(
            error_body("try_again", "The resource is busy; try again."), status=503, headers={"Retry-After": "1"}
        )
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
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _wants_json(request):
        return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)
    return defaults.server_error(request)
