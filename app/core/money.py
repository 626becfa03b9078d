"""Money: integer minor units inside, decimal strings with two places outside."""
import re
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

CURRENCY = "USD"
MINOR_PER_MAJOR = 100
_PLAIN_DECIMAL = re.compile(r"^-?\d{1,15}(\.\d+)?$")
MONEY_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"


def format_money(minor):
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), MINOR_PER_MAJOR)
    return f"{sign}{whole}.{cents:02d}"


# Described as what the API writes; it also reads 12.5, "12.5" and "12" (two decimals are the documented form).
@extend_schema_field({"type": "string", "pattern": MONEY_PATTERN, "example": "12.50"})
class MoneyField(serializers.Field):
    """A positive amount like "12.50" (or the JSON number 12.5), read as minor units (1250)."""

    default_error_messages = {
        "invalid": "Enter an amount such as \"12.50\".",
        "decimals": "Use at most two decimal places.",
        "min_value": "The amount must be at least {min}.",
        "max_value": "The amount must be at most {max}.",
    }

    def __init__(self, *, min_minor=1, max_minor=100_000_000, **kwargs):
        self.min_minor, self.max_minor = min_minor, max_minor
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int, float)):
            self.fail("invalid")
        text = data.strip() if isinstance(data, str) else repr(data)
        if not _PLAIN_DECIMAL.match(text):
            self.fail("invalid")
        value = Decimal(text)
        if value.as_tuple().exponent < -2:
            self.fail("decimals")
        minor = int(value * MINOR_PER_MAJOR)
        if minor < self.min_minor:
            self.fail("min_value", min=format_money(self.min_minor))
        if minor > self.max_minor:
            self.fail("max_value", max=format_money(self.max_minor))
        return minor

    def to_representation(self, value):
        return format_money(value)
