"""Building blocks of the OpenAPI description (drf-spectacular): the error shape, pages, shared parameters.

Views describe themselves with @extend_schema(responses={200: Out, **errors((400, "validation_error"))}).
"""
import functools

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from app.core.error_codes import CommonErrorCode

from .fields import ID_INPUT_PATTERN, ID_PATTERN, SOME_TEXT_PATTERN
from .idempotency import KEY_PATTERN
from .money import MINOR_PER_MAJOR, MONEY_PATTERN, input_pattern


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
NEEDS_LOGIN = (401, CommonErrorCode.NOT_AUTHENTICATED, CommonErrorCode.AUTHENTICATION_FAILED)
# The errors of a JSON request body that does not parse or validate.
BAD_BODY = (400, CommonErrorCode.VALIDATION_ERROR, CommonErrorCode.PARSE_ERROR)
# The errors of ?page_size= and ?cursor= (the parameters of app.core.pagination.PageParams).
PAGE_ERRORS = (400, CommonErrorCode.VALIDATION_ERROR, CommonErrorCode.INVALID_CURSOR)
# A node did not answer in time, or a row stayed locked: the request can be retried.
TRY_AGAIN = (503, CommonErrorCode.TRY_AGAIN)


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


class MoneyFieldExtension(OpenApiSerializerFieldExtension):
    """Money as written ("12.50") and, exactly, as read: a decimal string in range, or in JSON bodies a number."""

    target_class = "app.core.money.MoneyField"

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        if direction == "response":
            return {"type": "string", "pattern": MONEY_PATTERN, "example": "12.50"}
        low, high = field.min_minor / MINOR_PER_MAJOR, field.max_minor / MINOR_PER_MAJOR
        text = {
            "type": "string", "pattern": input_pattern(field.min_minor, field.max_minor), "example": "12.50",
            "description": f"From {low:.2f} to {high:.2f}, at most two decimals, no sign or leading zeros.",
        }
        if not field.numbers:
            return text
        number = {"type": "number", "minimum": low, "maximum": high, "multipleOf": 0.01, "example": 12.5}
        return {"oneOf": [text, number]}


class IdFieldExtension(OpenApiSerializerFieldExtension):
    """Ids are strings of digits; as read, without a leading zero and at most 19 of them."""

    target_class = "app.core.fields.IdField"

    def map_serializer_field(self, auto_schema, direction):
        pattern = ID_PATTERN if direction == "response" else ID_INPUT_PATTERN
        return {"type": "string", "pattern": pattern, "example": "237200661043774472"}


class TextFieldExtension(OpenApiSerializerFieldExtension):
    """A CharField's description, plus (read, required) the need for some text besides control characters
    and whitespace, which are taken away before the check."""

    target_class = "app.core.fields.TextField"
    priority = 1

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "request" and not self.target.allow_blank:
            schema["pattern"] = SOME_TEXT_PATTERN
        return schema


# What str.strip() takes away (as DRF trims a CharField), as a character class.
_WHITESPACE = "\\x09-\\x0d\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


class CharFieldExtension(OpenApiSerializerFieldExtension):
    """DRF refuses a NUL in any CharField it reads (and PostgreSQL could not store one): the description says so.
    TextField takes control characters out instead, and has its own extension (a higher priority)."""

    target_class = "rest_framework.fields.CharField"
    match_subclasses = True
    priority = -1

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "request" and schema.get("type") == "string" and "pattern" not in schema:
            field = self.target
            if field.trim_whitespace and not field.allow_blank:  # blank once trimmed is a 400 as well
                schema["pattern"] = f"^[^\\x00]*[^\\x00{_WHITESPACE}][^\\x00]*$"
            else:
                schema["pattern"] = "^[^\\x00]*$"
        return schema


class ApiKeyAuthScheme(OpenApiAuthenticationExtension):
    """Partner stores' `Authorization: Api-Key <key>` (drf-spectacular knows DRF's Token scheme, not this one)."""

    target_class = "app.partners.auth.ApiKeyAuthentication"
    optional = True  # the partner API may not be there yet
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix=self.target.keyword)


_MOVE = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "shard": {"type": "integer", "minimum": 0},
        "source": {"type": "string"},
        "target": {"type": "string"},
        "state": {"type": "string"},
        "rows_copied": {"type": "integer"},
        "rows_total": {"type": "integer"},
        "lag_bytes": {"type": "integer", "nullable": True},
        "write_pause_ms": {"type": "number", "nullable": True},
        "duration_s": {"type": "number", "nullable": True},
        "started_at": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "shard", "source", "target", "state", "rows_copied", "rows_total", "lag_bytes",
                 "write_pause_ms", "duration_s", "started_at"],
}


class TokenAuthScheme(OpenApiAuthenticationExtension):
    """Users' `Authorization: Token <token>` (knox tokens through app.accounts.authentication)."""

    target_class = "app.accounts.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=self.target.authenticate_header(None)
        )


_HEALTH = {
    "type": "object",
    "description": "Everyone gets `status`; the other fields only staff (a logged-in session) and monitoring "
                   "with the token (`Authorization: Bearer <HEALTH_MONITORING_TOKEN>`).",
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
        "shard_moves": {
            "type": "object",
            "properties": {
                "in_progress": {"type": "array", "items": {"$ref": "#/components/schemas/ShardMove"}},
                "recent": {"type": "array", "items": {"$ref": "#/components/schemas/ShardMove"}},
            },
            "required": ["in_progress", "recent"],
        },
    },
    "required": ["status"],
}

MONITORING_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "The monitoring token (`HEALTH_MONITORING_TOKEN`) as `Authorization: Bearer <token>`: "
                   "/health/ then shows every node, in-doubt transactions and shard moves.",
}


def add_health(result, generator, request, public):
    """A postprocessing hook: describes /health/, a plain Django view (a DRF wrapper would change its behaviour)."""
    result["components"]["schemas"]["ShardMove"] = _MOVE
    result["components"]["schemas"]["Health"] = _HEALTH
    result["components"].setdefault("securitySchemes", {})["healthMonitoringToken"] = MONITORING_SCHEME
    health = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
    result["paths"]["/health/"] = {"get": {
        "operationId": "health_retrieve",
        "summary": "Whether every node of the cluster answers",
        "description": (
            "Open to anyone, who gets `{\"status\"}` only. Staff users (a logged-in session) and monitoring that "
            "sends the monitoring token also get every node with its latency, the in-doubt two-phase "
            "transactions and the shard moves. A wrong token is the same as none."
        ),
        "tags": ["health"],
        "security": [{}, {"healthMonitoringToken": []}],
        "responses": {
            "200": {**health, "description": "Every node answers."},
            "503": {**health, "description": "Some node does not answer (`status` is `degraded`)."},
        },
    }}
    return result
