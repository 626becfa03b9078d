"""Building blocks of the OpenAPI description (drf-spectacular): the error shape, pages, shared parameters.

Views describe themselves with @extend_schema(responses={200: Out, **errors((400, "validation_error"))}).
"""
import functools

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from .idempotency import KEY_PATTERN


class ErrorDetailOut(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. `validation_error`; listed per response.")
    message = serializers.CharField(help_text="For people; may change.")
    details = serializers.DictField(help_text="Per-field messages for `validation_error`, otherwise mostly empty.")


class ErrorOut(serializers.Serializer):
    """Every error of the API: {"error": {"code", "message", "details"}}."""

    error = ErrorDetailOut()


def errors(*statuses_and_codes):
    """{status: OpenApiResponse(ErrorOut)} from tuples (status, code, ...), e.g. errors((409, "item_sold"))."""
    return {
        status: OpenApiResponse(ErrorOut, description="Error codes: " + ", ".join(f"`{code}`" for code in codes) + ".")
        for status, *codes in statuses_and_codes
    }


# The errors any endpoint that needs a login can answer.
NEEDS_LOGIN = (401, "not_authenticated", "authentication_failed")
# The errors of a JSON request body that does not parse or validate.
BAD_BODY = (400, "validation_error", "parse_error")
# The errors of ?page_size= and ?cursor= (the parameters of app.core.pagination.PageParams).
PAGE_ERRORS = (400, "validation_error", "invalid_cursor")
# A node did not answer in time, or a row stayed locked: the request can be retried.
TRY_AGAIN = (503, "try_again")


@functools.cache  # one component per row serializer, however many endpoints list it
def paginated(row_serializer):
    """{"results": [rows], "next": cursor or null}, the shape of every list endpoint."""
    return type(f"Paginated{row_serializer.__name__}List", (serializers.Serializer,), {
        "results": row_serializer(many=True),
        "next": serializers.CharField(
            allow_null=True, help_text="The `cursor` of the next page; null on the last page."
        ),
        "__doc__": f"A page of {row_serializer.__name__} rows, newest first unless the endpoint says otherwise.",
    })


@functools.cache
def partial_page(row_serializer):
    """A page gathered from every worker, which says which workers it lacks when some did not answer."""
    return type(f"Partial{row_serializer.__name__}Page", (paginated(row_serializer),), {
        "partial": serializers.BooleanField(help_text="True when some workers did not answer: results are missing."),
        "unavailable_nodes": serializers.ListField(
            child=serializers.CharField(), help_text="The workers whose listings are missing from this page."
        ),
        "__doc__": f"A page of {row_serializer.__name__} rows from every worker that answered.",
    })


RETRY_AFTER = {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait before trying again."}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, plus a 429 `throttled` with its Retry-After header on every operation of a view with
    rate limits (which, through DEFAULT_THROTTLE_CLASSES, is every API view), declared or not by the view."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None or not self.view.throttle_classes:
            return operation
        responses = operation.setdefault("responses", {})
        if "429" not in responses:
            responses["429"] = {
                "content": {"application/json": {"schema": self.resolve_serializer(ErrorOut, "response").ref}},
                "description": "Error codes: `throttled`.",
            }
        responses["429"]["description"] += " Over a rate limit: wait the `Retry-After` seconds."
        responses["429"].setdefault("headers", {})["Retry-After"] = RETRY_AFTER
        return operation


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255},
    OpenApiParameter.HEADER,
    required=True,
    pattern=KEY_PATTERN.pattern,
    description=(
        "Any unique string (1 to 255 printable ASCII characters, no spaces). The same key again returns the first "
        "response; with different parameters it is a 422 `idempotency_key_reused`. Keys are per user, kept 48 hours."
    ),
)


class ApiKeyAuthScheme(OpenApiAuthenticationExtension):
    """Partner stores' `Authorization: Api-Key <key>` (drf-spectacular knows DRF's Token scheme, not this one)."""

    target_class = "app.partners.auth.ApiKeyAuthentication"
    optional = True  # the partner API may not be there yet
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix=self.target.keyword)


class TokenAuthScheme(OpenApiAuthenticationExtension):
    """Users' `Authorization: Token <token>` (knox tokens through app.accounts.authentication)."""

    target_class = "app.accounts.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix=self.target.authenticate_header(None))


_HEALTH = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "role": {"type": "string", "enum": ["coordinator", "worker"]},
                    "ok": {"type": "boolean"},
                    "latency_ms": {"type": "number", "nullable": True},
                },
                "required": ["name", "role", "ok", "latency_ms"],
            },
        },
        "in_doubt_transactions": {"type": "integer", "minimum": 0},
    },
    "required": ["status", "nodes", "in_doubt_transactions"],
}


def add_health(result, generator, request, public):
    """A postprocessing hook: describes /health/, a plain Django view (a DRF wrapper would change its behaviour)."""
    result["components"]["schemas"]["Health"] = _HEALTH
    health = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
    result["paths"]["/health/"] = {"get": {
        "operationId": "health_retrieve",
        "summary": "Whether every node of the cluster answers",
        "tags": ["health"],
        "security": [{}],
        "responses": {
            "200": {**health, "description": "Every node answers."},
            "503": {**health, "description": "Some node does not answer (`status` is `degraded`)."},
        },
    }}
    return result
