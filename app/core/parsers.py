"""The API's JSON parser: a body is one JSON object, and a body nested too deeply is a parse error, not a 500."""
from rest_framework import exceptions
from rest_framework.parsers import JSONParser


class JSONObjectParser(JSONParser):
    """DRF's JSONParser, plus two rules every endpoint relies on.

    - Python's json module recurses once per nesting level: a body like 2,000 `[`
      raises RecursionError, which DRF does not catch. It is a 400 `parse_error`.
    - Every endpoint of the API reads an object (`{"amount": ...}`); a list, string,
      number, `true` or `null` is a 400 `validation_error` here, before a view or a
      throttle calls `.get()` on it.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("The request body is nested too deeply.") from None
        if not isinstance(data, dict):
            raise exceptions.ValidationError(
                {"non_field_errors": [f"The request body must be a JSON object, not {_json_type(data)}."]}
            )
        return data


def _json_type(value):
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (str, "a string"), ((int, float), "a number"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return type(value).__name__
