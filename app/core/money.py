"""Money: integer minor units inside, decimal strings with two places outside."""
import re
from decimal import Decimal

from rest_framework import serializers

CURRENCY = "USD"
MINOR_PER_MAJOR = 100
_PLAIN_DECIMAL = re.compile(r"^-?\d{1,15}(\.\d+)?$")
MONEY_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"


def format_money(minor):
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), MINOR_PER_MAJOR)
    return f"{sign}{whole}.{cents:02d}"


def input_pattern(min_minor, max_minor):
    """The exact regular expression of the decimal strings MoneyField reads between min_minor (0 or 1) and
    max_minor (a power of ten of whole units): no sign, no leading zeros, at most two decimals."""
    whole = max_minor // MINOR_PER_MAJOR
    digits = len(str(whole)) - 1
    if min_minor not in (0, 1) or max_minor % MINOR_PER_MAJOR or whole != 10 ** digits or digits < 1:
        raise ValueError("MoneyField input patterns cover min 0 or 0.01 and a max of 10**n whole units")
    top = f"{whole}(\\.0{{1,2}})?"
    if min_minor == 0:
        return f"^((0|[1-9][0-9]{{0,{digits - 1}}})(\\.[0-9]{{1,2}})?|{top})$"
    return f"^(0\\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{{0,{digits - 1}}}(\\.[0-9]{{1,2}})?|{top})$"


class MoneyField(serializers.Field):
    """An amount: written as "12.50"; read as a decimal string ("12.50", "12.5", "12": no sign, no leading
    zeros, at most two decimals) or, in JSON bodies, a number (12.5), between min_minor and max_minor, as minor
    units (1250). Its OpenAPI description (app.core.openapi.MoneyFieldExtension) says exactly that."""

    default_error_messages = {
        "invalid": "Enter an amount such as \"12.50\".",
        "decimals": "Use at most two decimal places.",
        "min_value": "The amount must be at least {min}.",
        "max_value": "The amount must be at most {max}.",
    }

    def __init__(self, *, min_minor=1, max_minor=100_000_000, numbers=True, **kwargs):
        """numbers=False: strings only (query parameters, which have no numbers)."""
        self.min_minor, self.max_minor, self.numbers = min_minor, max_minor, numbers
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", data):
                self.fail("invalid")
            self._check_shape(data)
            text = data
        elif self.numbers and isinstance(data, (int, float)) and not isinstance(data, bool):
            text = repr(data)
            if not _PLAIN_DECIMAL.match(text):
                self.fail("invalid")
        else:
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

    def _check_shape(self, text):
        """A string in the documented form: the pattern, less what the range checks explain better."""
        whole, _, decimals = text.lstrip("-").partition(".")
        if len(decimals) > 2:
            self.fail("decimals")
        if len(whole) > 1 and whole.startswith("0"):
            self.fail("invalid")  # 007.00: no leading zeros
        if text.startswith("-"):
            self.fail("min_value", min=format_money(self.min_minor))

    def to_representation(self, value):
        return format_money(value)
